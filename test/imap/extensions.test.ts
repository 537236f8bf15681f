// UIDPLUS (RFC 4315), MOVE (RFC 6851), LITERAL+ (RFC 7888), UNSELECT (RFC 3691), CONDSTORE
// and QRESYNC (RFC 7162), QUOTA (RFC 9208), APPENDLIMIT (RFC 7889), COMPRESS (RFC 4978).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constants, createDeflateRaw, createInflateRaw } from 'node:zlib';
import { capabilities, flow, imaplib, pyOk, quote, requires, scratch, target, wire } from './kit.js';
import { fetches, fetchOf, Wire, type Reply } from '../clients/imap.js';

const msg = (subject: string, pad = 0): Buffer =>
  Buffer.from(`From: a@example.com\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@example.com>\r\n\r\n${'y'.repeat(pad)}body ${subject}\r\n`);

const five = (): Buffer[] => ['u1', 'u2', 'u3', 'u4', 'u5'].map((s) => msg(s));

async function uids(raw: Wire): Promise<number[]> {
  return [...fetches((await raw.command('FETCH 1:* UID')).ok()).entries()].sort(([a], [b]) => a - b).map(([, item]) => Number(item.UID));
}

/** Expands a UID set such as "4:6,9" (RFC 3501 9, uid-set). */
function expand(set: string): number[] {
  return set.split(',').flatMap((range) => {
    const [a, b] = range.split(':').map(Number) as [number, number | undefined];
    if (b === undefined) return [a];
    const [lo, hi] = a <= b ? [a, b] : [b, a];
    return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
  });
}

function modseqOf(reply: Reply, seq: number): bigint {
  const value = fetchOf(reply, seq).MODSEQ;
  assert.ok(Array.isArray(value) && value.length === 1, `MODSEQ of ${seq}: ${JSON.stringify(value)}`);
  return BigInt(String(value[0]));
}

function codeValue(reply: Reply, name: string): string | undefined {
  for (const response of [...reply.untagged, reply.tagged]) {
    const code = response.code;
    if (code?.toUpperCase().startsWith(`${name} `)) return code.slice(name.length + 1);
  }
  return undefined;
}

test('UIDPLUS: APPENDUID names the new UID, COPYUID maps source to destination UIDs', async (t) => {
  if (!(await requires(t, 'UIDPLUS'))) return;
  const raw = await wire(t);
  const from = await scratch(t, five());
  const to = await scratch(t);
  const appended = (await raw.command([`APPEND ${quote(from)} `, msg('u6')])).ok();
  const [validity, uid] = (appended.code ?? '').split(' ').slice(1);
  assert.match(appended.code ?? '', /^APPENDUID \d+ \d+$/, String(appended));
  (await raw.command(`SELECT ${quote(from)}`)).ok();
  const sourceUids = await uids(raw);
  assert.equal(sourceUids.at(-1), Number(uid));
  const status = (await raw.command(`STATUS ${quote(from)} (UIDVALIDITY)`)).ok();
  assert.match(status.all('STATUS')[0]?.text ?? '', new RegExp(`UIDVALIDITY ${validity}\\b`));
  const copy = (await raw.command(`UID COPY ${sourceUids[1]}:${sourceUids[3]} ${quote(to)}`)).ok();
  const match = /^COPYUID (\d+) (\S+) (\S+)$/.exec(copy.code ?? '');
  assert.ok(match, String(copy));
  assert.deepEqual(expand(match[2]!), sourceUids.slice(1, 4));
  (await raw.command(`EXAMINE ${quote(to)}`)).ok();
  assert.deepEqual(expand(match[3]!), await uids(raw));
});

test('UIDPLUS: UID EXPUNGE removes only the named \\Deleted messages', async (t) => {
  if (!(await requires(t, 'UIDPLUS'))) return;
  const raw = await wire(t);
  const name = await scratch(t, five());
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const all = await uids(raw);
  (await raw.command('STORE 1:3 +FLAGS.SILENT (\\Deleted)')).ok();
  const reply = (await raw.command(`UID EXPUNGE ${all[1]}:${all[4]}`)).ok();
  assert.equal(reply.all('EXPUNGE').length, 2, String(reply));
  assert.deepEqual(await uids(raw), [all[0], all[3], all[4]]);
  const flags = fetchOf((await raw.command('FETCH 1 FLAGS')).ok(), 1);
  assert.match(JSON.stringify(flags.FLAGS), /Deleted/);
});

test('MOVE and UID MOVE: COPYUID, EXPUNGE responses, messages gone from the source', async (t) => {
  if (!(await requires(t, 'MOVE'))) return;
  const raw = await wire(t);
  const from = await scratch(t, five());
  const to = await scratch(t);
  (await raw.command(`SELECT ${quote(from)}`)).ok();
  const before = await uids(raw);
  const move = (await raw.command(`MOVE 2:3 ${quote(to)}`)).ok();
  assert.equal(move.all('EXPUNGE').length, 2, String(move));
  if ((await capabilities()).has('UIDPLUS')) {
    const copyuid = codeValue(move, 'COPYUID');
    assert.ok(copyuid, `no COPYUID in ${move}`);
    assert.deepEqual(expand(copyuid.split(' ')[1]!), before.slice(1, 3));
  }
  const uidMove = (await raw.command(`UID MOVE ${before[4]} ${quote(to)}`)).ok();
  assert.equal(uidMove.all('EXPUNGE').length, 1, String(uidMove));
  assert.deepEqual(await uids(raw), [before[0], before[3]]);
  const missing = await raw.command(`MOVE 1 ${quote(`${to}-missing`)}`);
  assert.equal(missing.status, 'NO', String(missing));
  assert.equal(missing.code, 'TRYCREATE', String(missing));
  (await raw.command(`EXAMINE ${quote(to)}`)).ok();
  const subjects = fetches((await raw.command('FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]')).ok());
  assert.deepEqual([...subjects.values()].map((item) => String(item['BODY[HEADER.FIELDS (SUBJECT)]']).trim()), ['Subject: u2', 'Subject: u3', 'Subject: u5']);
});

test('LITERAL+: non-synchronizing literals in APPEND and LOGIN need no continuation', async (t) => {
  if (!(await requires(t, 'LITERAL+'))) return;
  const raw = await wire(t);
  const name = await scratch(t);
  const body = msg('plus');
  const reply = (await raw.command([`APPEND ${quote(name)} (\\Seen) `, { plus: body }])).ok();
  assert.equal(reply.untagged.filter((r) => r.kind === 'continuation').length, 0, String(reply));
  (await raw.command([`SELECT `, { plus: Buffer.from(name) }])).ok();
  const item = fetchOf((await raw.command('FETCH 1 BODY.PEEK[]')).ok(), 1);
  assert.ok(Buffer.from(item['BODY[]'] as Buffer).equals(body));
});

test('UNSELECT leaves the mailbox without expunging', async (t) => {
  if (!(await requires(t, 'UNSELECT'))) return;
  const raw = await wire(t);
  const name = await scratch(t, five());
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  (await raw.command('STORE 1:2 +FLAGS.SILENT (\\Deleted)')).ok();
  const reply = (await raw.command('UNSELECT')).ok();
  assert.equal(reply.all('EXPUNGE').length, 0);
  const fetch = await raw.command('FETCH 1 FLAGS');
  assert.match(fetch.status, /^(BAD|NO)$/, String(fetch));
  const status = (await raw.command(`STATUS ${quote(name)} (MESSAGES)`)).ok();
  assert.match(status.all('STATUS')[0]?.text ?? '', /\(MESSAGES 5\)/);
  const again = await raw.command('UNSELECT');
  assert.match(again.status, /^(BAD|NO)$/, `UNSELECT with nothing selected: ${again}`);
});

test('CONDSTORE: HIGHESTMODSEQ, FETCH MODSEQ, CHANGEDSINCE, STORE UNCHANGEDSINCE and [MODIFIED], SEARCH MODSEQ', async (t) => {
  if (!(await requires(t, 'CONDSTORE'))) return;
  const raw = await wire(t);
  const name = await scratch(t, five());
  const selected = (await raw.command(`SELECT ${quote(name)} (CONDSTORE)`)).ok();
  const highest = codeValue(selected, 'HIGHESTMODSEQ');
  assert.match(highest ?? '', /^\d+$/, String(selected));
  const before = (await raw.command('FETCH 1:5 (MODSEQ)')).ok();
  const seq1 = modseqOf(before, 1);
  assert.ok(seq1 <= BigInt(highest!));
  const store = (await raw.command('STORE 2 +FLAGS (\\Flagged)')).ok();
  const after2 = modseqOf(store, 2);
  assert.ok(after2 > BigInt(highest!), `${after2} > ${highest}`);
  const changed = (await raw.command(`FETCH 1:* (FLAGS) (CHANGEDSINCE ${highest})`)).ok();
  assert.deepEqual([...fetches(changed).keys()], [2], String(changed));
  const conditional = (await raw.command(`STORE 1,2 (UNCHANGEDSINCE ${highest}) +FLAGS (\\Seen)`)).ok();
  assert.match(conditional.code ?? '', /^MODIFIED 2$/, String(conditional));
  const flags = fetches((await raw.command('FETCH 1:2 FLAGS')).ok());
  assert.match(JSON.stringify(flags.get(1)?.FLAGS), /Seen/);
  assert.doesNotMatch(JSON.stringify(flags.get(2)?.FLAGS), /Seen/);
  const search = (await raw.command(`SEARCH MODSEQ ${after2}`)).ok();
  assert.match(search.all('SEARCH')[0]?.text ?? '', /^\* SEARCH (1 2|2 1) \(MODSEQ \d+\)$/, String(search));
  const status = (await raw.command(`STATUS ${quote(name)} (HIGHESTMODSEQ)`)).ok();
  assert.match(status.all('STATUS')[0]?.text ?? '', /HIGHESTMODSEQ \d+/);
});

test('QRESYNC: SELECT with known UIDVALIDITY and MODSEQ answers VANISHED (EARLIER) and changed FLAGS', async (t) => {
  if (!(await requires(t, 'QRESYNC'))) return;
  const raw = await wire(t);
  const name = await scratch(t, five());
  (await raw.command('ENABLE QRESYNC')).ok();
  const selected = (await raw.command(`SELECT ${quote(name)}`)).ok();
  const validity = codeValue(selected, 'UIDVALIDITY');
  const highest = codeValue(selected, 'HIGHESTMODSEQ');
  assert.ok(validity && highest, String(selected));
  const all = await uids(raw);
  (await raw.command('STORE 1 +FLAGS (\\Answered)')).ok();
  (await raw.command('STORE 4 +FLAGS.SILENT (\\Deleted)')).ok();
  const expunge = (await raw.command('EXPUNGE')).ok();
  assert.equal(expunge.all('EXPUNGE').length, 0, `with QRESYNC enabled, VANISHED replaces EXPUNGE: ${expunge}`);
  assert.match(expunge.all('VANISHED')[0]?.text ?? '', new RegExp(`^\\* VANISHED ${all[3]}$`), String(expunge));
  (await raw.command('UNSELECT')).ok();
  const resync = (await raw.command(`SELECT ${quote(name)} (QRESYNC (${validity} ${highest} ${all[0]}:${all[4]}))`)).ok();
  const vanished = resync.all('VANISHED')[0];
  assert.match(vanished?.text ?? '', /^\* VANISHED \(EARLIER\) /i, String(resync));
  assert.deepEqual(expand(vanished!.text.split(' ').at(-1)!), [all[3]]);
  const changed = [...fetches(resync).values()].map((item) => Number(item.UID));
  assert.ok(changed.includes(all[0]!), `changed FLAGS for UID ${all[0]}: ${resync}`);
  assert.ok(!changed.includes(all[1]!), String(resync));
});

test('QRESYNC: refused before ENABLE; [CLOSED] on a switch of mailbox; VANISHED during IDLE', async (t) => {
  if (!(await requires(t, 'QRESYNC', 'IDLE'))) return;
  const raw = await wire(t);
  const name = await scratch(t, five());
  const other = await scratch(t);
  const early = await raw.command(`SELECT ${quote(name)} (QRESYNC (1 1))`);
  assert.equal(early.status, 'BAD', `RFC 7162 3.2.5, QRESYNC before ENABLE: ${early}`);
  (await raw.command('ENABLE QRESYNC')).ok();
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const switched = (await raw.command(`EXAMINE ${quote(other)}`)).ok();
  assert.ok(switched.untagged.some((r) => r.code === 'CLOSED'), `RFC 7162 3.2.11: [CLOSED] first: ${switched}`);
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const all = await uids(raw);
  raw.write('Q1 IDLE\r\n');
  assert.equal((await raw.next()).kind, 'continuation');
  const actor = await wire(t);
  (await actor.command(`SELECT ${quote(name)}`)).ok();
  (await actor.command('STORE 2 +FLAGS.SILENT (\\Deleted)')).ok();
  (await actor.command('EXPUNGE')).ok();
  const seen = await raw.waitFor((r) => r.name === 'VANISHED' || r.name === 'EXPUNGE');
  assert.equal(seen.at(-1)!.text, `* VANISHED ${all[1]}`);
  raw.write('DONE\r\n');
  (await raw.finish('Q1', 'IDLE')).ok();
});

test('QRESYNC: UID FETCH (CHANGEDSINCE n VANISHED) reports expunged UIDs as VANISHED (EARLIER)', async (t) => {
  if (!(await requires(t, 'QRESYNC'))) return;
  const raw = await wire(t);
  const name = await scratch(t, five());
  (await raw.command('ENABLE QRESYNC')).ok();
  const selected = (await raw.command(`SELECT ${quote(name)}`)).ok();
  const highest = codeValue(selected, 'HIGHESTMODSEQ');
  const all = await uids(raw);
  (await raw.command('STORE 1 +FLAGS.SILENT (\\Answered)')).ok();
  (await raw.command('STORE 4 +FLAGS.SILENT (\\Deleted)')).ok();
  (await raw.command('EXPUNGE')).ok();
  // RFC 7162 3.2.6.
  const fetch = (await raw.command(`UID FETCH 1:* (FLAGS) (CHANGEDSINCE ${highest} VANISHED)`)).ok();
  assert.match(fetch.all('VANISHED')[0]?.text ?? '', new RegExp(`^\\* VANISHED \\(EARLIER\\) ${all[3]}$`, 'i'), String(fetch));
  assert.deepEqual([...fetches(fetch).values()].map((item) => Number(item.UID)), [all[0]]);
});

test('QUOTA: GETQUOTAROOT INBOX names a root; STORAGE usage grows with APPEND', async (t) => {
  if (!(await requires(t, 'QUOTA'))) return;
  const raw = await wire(t);
  const name = await scratch(t);
  const read = async (): Promise<[number, number]> => {
    const reply = (await raw.command(`GETQUOTAROOT ${quote(name)}`)).ok();
    const root = reply.all('QUOTAROOT')[0];
    assert.ok(root, String(reply));
    assert.ok(root.values.length >= 3, `a root for the mailbox: ${root.text}`);
    const quota = reply.all('QUOTA')[0];
    assert.ok(quota, String(reply));
    const list = quota.values[2] as string[];
    const i = list.findIndex((v) => v.toUpperCase() === 'STORAGE');
    assert.ok(i >= 0, quota.text);
    const again = (await raw.command(`GETQUOTA ${quote(String(quota.values[1]))}`)).ok();
    assert.equal(again.all('QUOTA').length, 1, String(again));
    return [Number(list[i + 1]), Number(list[i + 2])];
  };
  const [used, limit] = await read();
  assert.ok(limit > 0 && used <= limit, `${used} of ${limit}`);
  (await raw.command([`APPEND ${quote(name)} `, msg('big', 40 * 1024)])).ok();
  const [after] = await read();
  assert.ok(after >= used + 39, `STORAGE (KiB) went from ${used} to ${after} after a 40 KiB APPEND`);
  const client = await flow(t);
  const quota = await client.getQuota(name);
  assert.ok(quota && quota.storage && quota.storage.limit! > 0, JSON.stringify(quota));
});

test('APPENDLIMIT: a literal over the advertised limit is refused before it is sent', async (t) => {
  const cap = [...(await capabilities())].find((c) => c.startsWith('APPENDLIMIT='));
  // The only limit form tested here is the global one in CAPABILITY (RFC 7889 3.1).
  if (!cap) return t.skip('server does not advertise APPENDLIMIT=<n>');
  const limit = Number(cap.split('=')[1]);
  const raw = await wire(t);
  const name = await scratch(t);
  raw.write(`L1 APPEND ${quote(name)} {${limit + 1}}\r\n`);
  const answer = await raw.next();
  assert.notEqual(answer.kind, 'continuation', 'the server asked for the oversized literal');
  assert.match(answer.text, /^L1 NO\b/, answer.text);
  assert.match(answer.code ?? '', /^TOOBIG/, answer.text);
  (await raw.command('NOOP')).ok();
  const status = (await raw.command(`STATUS ${quote(name)} (MESSAGES)`)).ok();
  assert.match(status.all('STATUS')[0]?.text ?? '', /\(MESSAGES 0\)/);
});

test('COMPRESS=DEFLATE: after the OK both directions are raw DEFLATE and commands go on working', async (t) => {
  if (!(await requires(t, 'COMPRESS=DEFLATE'))) return;
  const body = msg('deflate', 20_000);
  const name = await scratch(t, [body]);
  const raw = await Wire.login(await target());
  t.after(() => raw.socket.destroy());
  (await raw.command('COMPRESS DEFLATE')).ok();
  raw.socket.removeAllListeners('data');
  const inflate = createInflateRaw();
  const deflate = createDeflateRaw();
  raw.socket.on('data', (chunk: Buffer) => inflate.write(chunk));
  deflate.on('data', (chunk: Buffer) => raw.socket.write(chunk));
  const received: Buffer[] = [];
  inflate.on('data', (chunk: Buffer) => received.push(chunk));
  const text = (): string => Buffer.concat(received).toString('latin1');
  const send = (line: string): void => {
    deflate.write(line);
    deflate.flush(constants.Z_SYNC_FLUSH);
  };
  const until = async (pattern: RegExp): Promise<void> => {
    const end = Date.now() + 10_000;
    while (!pattern.test(text())) {
      if (Date.now() > end) throw new Error(`no ${pattern} in: ${text().slice(-300)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  send('Z0 COMPRESS DEFLATE\r\n');
  await until(/^Z0 /m);
  assert.match(text(), /^Z0 (NO|BAD)\b/m, 'a second COMPRESS is refused');
  send(`Z1 EXAMINE ${quote(name)}\r\nZ2 FETCH 1 BODY.PEEK[]\r\n`);
  await until(/^Z2 OK/m);
  assert.ok(Buffer.concat(received).includes(Buffer.concat([Buffer.from(`{${body.length}}\r\n`), body])), 'BODY[] arrives intact through DEFLATE');
  send('Z3 LOGOUT\r\n');
  await until(/^Z3 OK/m);
});

test('COMPRESS=DEFLATE: no bytes follow the OK until there is a response to send', async (t) => {
  if (!(await requires(t, 'COMPRESS=DEFLATE'))) return;
  const raw = await Wire.login(await target());
  t.after(() => raw.socket.destroy());
  const chunks: Buffer[] = [];
  raw.socket.removeAllListeners('data');
  raw.socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  raw.write('C1 COMPRESS DEFLATE\r\n');
  await new Promise((resolve) => setTimeout(resolve, 300));
  const all = Buffer.concat(chunks);
  const end = all.indexOf('\r\n', all.indexOf('C1 OK')) + 2;
  assert.ok(end > 1, all.toString('latin1'));
  // imapflow (and any client that switches after reading the OK) loses bytes sent in the same read.
  assert.equal(all.subarray(end).toString('hex'), '', 'bytes after the COMPRESS OK before the client sent anything');
});

test('imaplib: enable, namespace, getquotaroot, uid move, unselect', async (t) => {
  if (!(await requires(t, 'ENABLE', 'NAMESPACE', 'QUOTA', 'MOVE', 'UNSELECT', 'CONDSTORE'))) return;
  const from = await scratch(t, five());
  const to = await scratch(t);
  const where = await target();
  const results = await imaplib(where.accounts[0]!, [
    ['enable', 'CONDSTORE'],
    ['namespace'],
    ['getquotaroot', quote(from)],
    ['select', quote(from)],
    ['uid', 'SEARCH', 'ALL'],
    ['unselect'],
  ]);
  assert.equal(pyOk(results[0])[0], 'OK');
  assert.match(String(pyOk(results[1])[1][0]), /^\(\("[^"]*" "\/"\)\)/);
  const [quotaRoot, quota] = pyOk(results[2])[1] as [Buffer[], Buffer[]];
  assert.ok(quotaRoot.length >= 1 && quota.length >= 1, JSON.stringify(pyOk(results[2])));
  const uids = String(pyOk(results[4])[1][0]).split(' ');
  assert.equal(uids.length, 5);
  assert.equal(pyOk(results[5])[0], 'OK');
  const moved = await imaplib(where.accounts[0]!, [['select', quote(from)], ['uid', 'MOVE', `${uids[0]}:${uids[1]}`, quote(to)], ['status', quote(to), '(MESSAGES)']]);
  assert.equal(pyOk(moved[1])[0], 'OK');
  assert.match(String(pyOk(moved[2])[1][0]), /MESSAGES 2/);
});
