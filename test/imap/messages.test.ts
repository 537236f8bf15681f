// Selected-state commands (RFC 3501 6.3.1-6.3.2, 6.3.11, 6.4): SELECT, EXAMINE, APPEND,
// CHECK, CLOSE, EXPUNGE, STORE, COPY, UID; sequence sets with "*" and ranges (9).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { capabilities, flow, imaplib, pyOk, quote, removeMailbox, scratch, target, uniqueName, wire } from './kit.js';
import { fetches, fetchOf, str, type Reply, type Response, type Value } from '../clients/imap.js';

const msg = (subject: string, extra = ''): Buffer =>
  Buffer.from(`From: a@example.com\r\nTo: b@example.com\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@example.com>\r\n\r\nbody of ${subject}\r\n${extra}`);

const five = (): { body: Buffer; date: string }[] =>
  ['m1', 'm2', 'm3', 'm4', 'm5'].map((s, i) => ({ body: msg(s), date: `0${i + 1}-Feb-2019 10:00:00 +0000` }));

function flagsOf(value: Value | undefined): string[] {
  assert.ok(Array.isArray(value), `FLAGS is not a list: ${JSON.stringify(value)}`);
  // \Recent is session state that servers set differently; the tests look at the others.
  return (value as string[])
    .map((flag) => flag.toLowerCase())
    .filter((flag) => flag !== '\\recent')
    .sort();
}

function uidsBySeq(reply: Reply): number[] {
  return [...fetches(reply).entries()].sort(([a], [b]) => a - b).map(([, item]) => Number(item.UID));
}

/** Applies "* n EXPUNGE" responses in order to a list of UIDs (RFC 3501 7.4.1). */
function applyExpunges(uids: number[], responses: Response[]): number[] {
  const left = [...uids];
  for (const response of responses.filter((r) => r.name === 'EXPUNGE')) {
    assert.ok(response.number >= 1 && response.number <= left.length, `EXPUNGE ${response.number} out of range`);
    left.splice(response.number - 1, 1);
  }
  return left;
}

test('SELECT answers FLAGS, EXISTS, RECENT, UIDVALIDITY, UIDNEXT, PERMANENTFLAGS and [READ-WRITE]', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, [{ body: msg('seen'), flags: ['\\Seen'] }, ...five().slice(1)]);
  const reply = (await raw.command(`SELECT ${quote(name)}`)).ok();
  assert.equal(reply.code, 'READ-WRITE', String(reply));
  const unseen = reply.untagged.map((response) => response.code ?? '').find((code) => code.startsWith('UNSEEN '));
  if (unseen) assert.equal(unseen, 'UNSEEN 2', 'UNSEEN names the first unseen message');
  assert.equal(reply.all('EXISTS')[0]?.number, 5, String(reply));
  assert.equal(reply.all('RECENT').length, 1, String(reply));
  const flags = reply.all('FLAGS')[0];
  assert.ok(flags, String(reply));
  const listed = flagsOf(flags.values[1]);
  for (const flag of ['\\answered', '\\flagged', '\\deleted', '\\seen', '\\draft']) assert.ok(listed.includes(flag), `${flag} not in ${flags.text}`);
  const codes = reply.untagged.map((response) => response.code ?? '');
  assert.ok(codes.some((code) => /^UIDVALIDITY \d+$/.test(code)), String(reply));
  assert.ok(codes.some((code) => /^UIDNEXT \d+$/.test(code)), String(reply));
  assert.ok(codes.some((code) => /^PERMANENTFLAGS \(.*\)$/.test(code)), String(reply));
});

test('EXAMINE is read-only: [READ-ONLY], STORE refused, FETCH BODY[] does not set \\Seen', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, [msg('ro')]);
  const reply = (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  assert.equal(reply.code, 'READ-ONLY', String(reply));
  // Refused with NO, or (as Dovecot does) OK without any change.
  const store = await raw.command('STORE 1 +FLAGS (\\Flagged)');
  assert.match(store.status, /^(NO|OK)$/, String(store));
  (await raw.command('FETCH 1 BODY[]')).ok();
  const flags = fetchOf((await raw.command('FETCH 1 FLAGS')).ok(), 1);
  assert.deepEqual(flagsOf(flags.FLAGS), [], JSON.stringify(flags));
});

test('SELECT of a missing mailbox gets NO and leaves the selected state', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, [msg('x')]);
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const missing = await raw.command(`SELECT ${quote(`${name}-missing`)}`);
  assert.equal(missing.status, 'NO', String(missing));
  const fetch = await raw.command('FETCH 1 FLAGS');
  assert.match(fetch.status, /^(BAD|NO)$/, `FETCH after a failed SELECT: ${fetch}`);
});

test('APPEND keeps flags, INTERNALDATE and size; a missing mailbox gets NO [TRYCREATE]', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t);
  const body = msg('appended');
  (await raw.command([`APPEND ${quote(name)} (\\Flagged $Quill) "14-Jul-2020 10:20:30 +0200" `, body])).ok();
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const item = fetchOf((await raw.command('FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)')).ok(), 1);
  const flags = flagsOf(item.FLAGS);
  assert.ok(flags.includes('\\flagged') && flags.includes('$quill'), JSON.stringify(flags));
  assert.equal(new Date(str(item.INTERNALDATE).replace(/^(\d+)-(\w+)-(\d+) /, '$2 $1 $3 ')).getTime(), Date.parse('2020-07-14T08:20:30Z'));
  assert.equal(Number(item['RFC822.SIZE']), body.length);
  const missing = await raw.command([`APPEND ${quote(`${name}-missing`)} `, body]);
  assert.equal(missing.status, 'NO', String(missing));
  assert.equal(missing.code, 'TRYCREATE', String(missing));
});

test('APPEND takes a date-time with a space-padded day; keywords are case-insensitive', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t);
  (await raw.command([`APPEND ${quote(name)} ($Project) " 5-Feb-2021 10:00:00 +0100" `, msg('padded')])).ok();
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const item = fetchOf((await raw.command('FETCH 1 INTERNALDATE')).ok(), 1);
  assert.equal(new Date(str(item.INTERNALDATE).trim().replace(/^(\d+)-(\w+)-(\d+) /, '$2 $1 $3 ')).getTime(), Date.parse('2021-02-05T09:00:00Z'));
  const search = (await raw.command('SEARCH KEYWORD $PROJECT')).ok();
  assert.equal(search.all('SEARCH')[0]?.text, '* SEARCH 1');
  (await raw.command('STORE 1 -FLAGS ($project)')).ok();
  assert.deepEqual(flagsOf(fetchOf((await raw.command('FETCH 1 FLAGS')).ok(), 1).FLAGS), []);
});

test('read-only mailbox: EXPUNGE removes nothing, COPY out of it works, unknown STATUS items get BAD', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, [{ body: msg('ro1'), flags: ['\\Deleted'] }, msg('ro2')]);
  const to = await scratch(t);
  (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  // Refused with NO, or (as Dovecot does for EXPUNGE) OK with nothing removed.
  const expunge = await raw.command('EXPUNGE');
  assert.match(expunge.status, /^(NO|OK)$/, String(expunge));
  assert.equal(expunge.all('EXPUNGE').length, 0, String(expunge));
  (await raw.command(`COPY 1:2 ${quote(to)}`)).ok();
  const status = (await raw.command(`STATUS ${quote(name)} (MESSAGES)`)).ok();
  assert.match(status.all('STATUS')[0]?.text ?? '', /\(MESSAGES 2\)/);
  const copied = (await raw.command(`STATUS ${quote(to)} (MESSAGES)`)).ok();
  assert.match(copied.all('STATUS')[0]?.text ?? '', /\(MESSAGES 2\)/);
  const unknown = await raw.command(`STATUS ${quote(name)} (MESSAGES NOT-AN-ITEM)`);
  assert.equal(unknown.status, 'BAD', String(unknown));
});

test('APPEND to the selected mailbox announces the new message with EXISTS', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, [msg('first')]);
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const append = (await raw.command([`APPEND ${quote(name)} `, msg('second')])).ok();
  const noop = (await raw.command('NOOP')).ok();
  const exists = [...append.all('EXISTS'), ...noop.all('EXISTS')];
  assert.equal(exists.at(-1)?.number, 2, `${append}\n${noop}`);
});

test('FETCH BODY[], a partial BODY[TEXT] and RFC822.TEXT set \\Seen and report it; BODY.PEEK[] and RFC822.HEADER do not', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, five());
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  (await raw.command('FETCH 1 BODY.PEEK[]')).ok();
  assert.ok(!flagsOf(fetchOf((await raw.command('FETCH 1 FLAGS')).ok(), 1).FLAGS).includes('\\seen'));
  for (const [seq, item] of [[2, 'BODY[]'], [3, 'BODY[TEXT]<0.4>'], [4, 'RFC822.TEXT']] as const) {
    const reply = (await raw.command(`FETCH ${seq} ${item}`)).ok();
    const all = fetches(reply).get(seq) ?? {};
    assert.ok(all.FLAGS, `RFC 3501 6.4.5: a FETCH that sets \\Seen includes FLAGS: ${reply}`);
    assert.ok(flagsOf(all.FLAGS).includes('\\seen'), String(reply));
  }
  (await raw.command('FETCH 5 (RFC822.HEADER BODY.PEEK[TEXT])')).ok();
  assert.ok(!flagsOf(fetchOf((await raw.command('FETCH 5 FLAGS')).ok(), 5).FLAGS).includes('\\seen'));
});

test('STORE FLAGS, +FLAGS, -FLAGS answer the new flags; .SILENT answers none', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, five());
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  let reply = (await raw.command('STORE 1:2 +FLAGS (\\Flagged $Work)')).ok();
  assert.deepEqual(flagsOf(fetchOf(reply, 1).FLAGS), ['$work', '\\flagged']);
  assert.deepEqual(flagsOf(fetchOf(reply, 2).FLAGS), ['$work', '\\flagged']);
  reply = (await raw.command('STORE 2 -FLAGS (\\Flagged)')).ok();
  assert.deepEqual(flagsOf(fetchOf(reply, 2).FLAGS), ['$work']);
  reply = (await raw.command('STORE 3 FLAGS (\\Answered \\Draft)')).ok();
  assert.deepEqual(flagsOf(fetchOf(reply, 3).FLAGS), ['\\answered', '\\draft']);
  reply = (await raw.command('STORE 4:5 +FLAGS.SILENT (\\Seen)')).ok();
  assert.equal(reply.all('FETCH').length, 0, String(reply));
  reply = (await raw.command('STORE 5 FLAGS.SILENT ()')).ok();
  assert.equal(reply.all('FETCH').length, 0, String(reply));
  const all = fetches((await raw.command('FETCH 1:5 FLAGS')).ok());
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((seq) => flagsOf(all.get(seq)?.FLAGS)),
    [['$work', '\\flagged'], ['$work'], ['\\answered', '\\draft'], ['\\seen'], []],
  );
});

test('EXPUNGE removes \\Deleted messages with EXPUNGE responses that renumber correctly', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, five());
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const uids = uidsBySeq((await raw.command('FETCH 1:* UID')).ok());
  (await raw.command('STORE 2,4:5 +FLAGS.SILENT (\\Deleted)')).ok();
  const reply = (await raw.command('EXPUNGE')).ok();
  assert.equal(reply.all('EXPUNGE').length, 3, String(reply));
  const left = applyExpunges(uids, reply.untagged);
  assert.deepEqual(left, [uids[0], uids[2]]);
  assert.deepEqual(uidsBySeq((await raw.command('FETCH 1:* UID')).ok()), left);
});

test('CLOSE expunges silently and returns to the authenticated state; CHECK succeeds', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, five());
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  (await raw.command('CHECK')).ok();
  (await raw.command('STORE 1:3 +FLAGS.SILENT (\\Deleted)')).ok();
  const reply = (await raw.command('CLOSE')).ok();
  assert.equal(reply.all('EXPUNGE').length, 0, String(reply));
  const fetch = await raw.command('FETCH 1 FLAGS');
  assert.match(fetch.status, /^(BAD|NO)$/, `FETCH after CLOSE: ${fetch}`);
  const status = (await raw.command(`STATUS ${quote(name)} (MESSAGES)`)).ok();
  assert.match(status.all('STATUS')[0]?.text ?? '', /\(MESSAGES 2\)/);
});

test('CLOSE after EXAMINE expunges nothing', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, [{ body: msg('keep'), flags: ['\\Deleted'] }]);
  (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  (await raw.command('CLOSE')).ok();
  const status = (await raw.command(`STATUS ${quote(name)} (MESSAGES)`)).ok();
  assert.match(status.all('STATUS')[0]?.text ?? '', /\(MESSAGES 1\)/);
});

test('COPY keeps flags and bytes; a missing destination gets NO [TRYCREATE]', async (t) => {
  const raw = await wire(t);
  const bodies = five().map((m) => m.body);
  const from = await scratch(t, five());
  const to = await scratch(t);
  (await raw.command(`SELECT ${quote(from)}`)).ok();
  (await raw.command('STORE 2 +FLAGS.SILENT (\\Flagged $Copied)')).ok();
  const dates = fetches((await raw.command('FETCH 2:3 INTERNALDATE')).ok());
  (await raw.command(`COPY 2:3 ${quote(to)}`)).ok();
  const missing = await raw.command(`COPY 1 ${quote(`${to}-missing`)}`);
  assert.equal(missing.status, 'NO', String(missing));
  assert.equal(missing.code, 'TRYCREATE', String(missing));
  (await raw.command(`EXAMINE ${quote(to)}`)).ok();
  const copied = fetches((await raw.command('FETCH 1:* (FLAGS BODY.PEEK[] INTERNALDATE)')).ok());
  assert.equal(copied.size, 2);
  assert.equal(str(copied.get(1)?.INTERNALDATE), str(dates.get(2)?.INTERNALDATE), 'RFC 3501 6.4.7: COPY keeps INTERNALDATE');
  assert.deepEqual(flagsOf(copied.get(1)?.FLAGS), ['$copied', '\\flagged']);
  assert.ok((copied.get(1)?.['BODY[]'] as Buffer).equals(bodies[1]!));
  assert.ok((copied.get(2)?.['BODY[]'] as Buffer).equals(bodies[2]!));
});

test('sequence sets: ranges, lists, "*", reversed ranges; UID FETCH and UID STORE answer UIDs', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, five());
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const uids = uidsBySeq((await raw.command('FETCH 1:* UID')).ok());
  assert.equal(uids.length, 5);
  assert.ok(uids.every((uid, i) => i === 0 || uid > uids[i - 1]!), `UIDs not ascending: ${uids}`);
  const seqs = async (set: string): Promise<number[]> => [...fetches((await raw.command(`FETCH ${set} FLAGS`)).ok()).keys()].sort((a, b) => a - b);
  assert.deepEqual(await seqs('2:*'), [2, 3, 4, 5]);
  assert.deepEqual(await seqs('*:4'), [4, 5]);
  assert.deepEqual(await seqs('4:2'), [2, 3, 4]);
  assert.deepEqual(await seqs('1,3,5'), [1, 3, 5]);
  assert.deepEqual(await seqs('*'), [5]);
  assert.deepEqual(await seqs('1:2,4:*'), [1, 2, 4, 5]);
  const uidFetch = (await raw.command(`UID FETCH ${uids[1]}:${uids[3]} FLAGS`)).ok();
  assert.deepEqual(uidsBySeq(uidFetch), uids.slice(1, 4));
  const beyond = (await raw.command(`UID FETCH ${uids[4]! + 100}:* FLAGS`)).ok();
  assert.deepEqual(uidsBySeq(beyond), [uids[4]], 'UID n:* includes the last message even when n is past it');
  const none = (await raw.command(`UID FETCH ${uids[4]! + 100} FLAGS`)).ok();
  assert.equal(none.all('FETCH').length, 0, String(none));
  const store = (await raw.command(`UID STORE ${uids[2]} +FLAGS (\\Seen)`)).ok();
  assert.equal(Number(fetchOf(store, 3).UID), uids[2], String(store));
  const outOfRange = await raw.command('FETCH 9 FLAGS');
  assert.match(outOfRange.status, /^(BAD|NO)$/, String(outOfRange));
});

test('UID COPY copies by UID', async (t) => {
  const raw = await wire(t);
  const from = await scratch(t, five());
  const to = await scratch(t);
  (await raw.command(`SELECT ${quote(from)}`)).ok();
  const uids = uidsBySeq((await raw.command('FETCH 1:* UID')).ok());
  (await raw.command(`UID COPY ${uids[0]},${uids[4]} ${quote(to)}`)).ok();
  (await raw.command(`EXAMINE ${quote(to)}`)).ok();
  const subjects = fetches((await raw.command('FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]')).ok());
  assert.deepEqual([...subjects.values()].map((item) => str(item['BODY[HEADER.FIELDS (SUBJECT)]']).trim()), ['Subject: m1', 'Subject: m5']);
});

test('UIDs are never reused: a message appended after an expunge gets a higher UID', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, [msg('r1'), msg('r2')]);
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const [, last] = uidsBySeq((await raw.command('FETCH 1:* UID')).ok());
  (await raw.command('STORE 2 +FLAGS.SILENT (\\Deleted)')).ok();
  (await raw.command('EXPUNGE')).ok();
  (await raw.command([`APPEND ${quote(name)} `, msg('r3')])).ok();
  (await raw.command('NOOP')).ok();
  const now = uidsBySeq((await raw.command('FETCH 1:* UID')).ok());
  assert.equal(now.length, 2);
  assert.ok(now[1]! > last!, `new UID ${now[1]} after expunged ${last}`);
});

test('SELECT of another mailbox leaves \\Deleted messages of the first in place', async (t) => {
  const raw = await wire(t);
  const first = await scratch(t, [msg('s1'), msg('s2')]);
  const second = await scratch(t);
  (await raw.command(`SELECT ${quote(first)}`)).ok();
  (await raw.command('STORE 1 +FLAGS.SILENT (\\Deleted)')).ok();
  const reply = (await raw.command(`SELECT ${quote(second)}`)).ok();
  assert.equal(reply.all('EXPUNGE').length, 0, String(reply));
  const status = (await raw.command(`STATUS ${quote(first)} (MESSAGES)`)).ok();
  assert.match(status.all('STATUS')[0]?.text ?? '', /\(MESSAGES 2\)/);
});

test('200 messages: sequence numbers stay right through STORE and EXPUNGE of every third', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t);
  const count = 200;
  // Pipelined APPENDs: with LITERAL+ no round trip per message.
  const plus = (await capabilities()).has('LITERAL+');
  for (let i = 1; i <= count; i++) {
    const body = msg(`bulk-${i}`);
    if (plus) raw.write(Buffer.concat([Buffer.from(`B${i} APPEND ${quote(name)} {${body.length}+}\r\n`), body, Buffer.from('\r\n')]));
    else (await raw.command([`APPEND ${quote(name)} `, body])).ok();
  }
  if (plus) for (let i = 1; i <= count; i++) (await raw.finish(`B${i}`, `APPEND ${i}`)).ok();
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const uids = uidsBySeq((await raw.command('FETCH 1:* UID')).ok());
  assert.equal(uids.length, count);
  const doomed = uids.map((_, i) => i + 1).filter((seq) => seq % 3 === 0);
  (await raw.command(`STORE ${doomed.join(',')} +FLAGS.SILENT (\\Deleted)`)).ok();
  const search = (await raw.command('SEARCH DELETED')).ok();
  assert.equal(search.all('SEARCH')[0]?.text, `* SEARCH ${doomed.join(' ')}`);
  const expunge = (await raw.command('EXPUNGE')).ok();
  const left = applyExpunges(uids, expunge.untagged);
  assert.deepEqual(left, uids.filter((_, i) => (i + 1) % 3 !== 0));
  assert.deepEqual(uidsBySeq((await raw.command('FETCH 1:* UID')).ok()), left);
  const bodies = fetches((await raw.command('FETCH 1:* BODY.PEEK[]', { timeoutMs: 30_000 })).ok());
  assert.equal(bodies.size, left.length);
  const kept = Array.from({ length: count }, (_, i) => i + 1).filter((i) => i % 3 !== 0);
  for (const [seq, item] of bodies) assert.ok(Buffer.from(item['BODY[]'] as Buffer).equals(msg(`bulk-${kept[seq - 1]}`)), `BODY[] of ${seq}`);
  const subjects = fetches((await raw.command('FETCH 66 BODY.PEEK[HEADER.FIELDS (SUBJECT)]')).ok());
  assert.match(str(subjects.get(66)?.['BODY[HEADER.FIELDS (SUBJECT)]']), /bulk-98\b/, 'message 66 is the 98th appended once 32 before it are gone');
});

test('imapflow: append, fetch, flags, copy, delete', async (t) => {
  const client = await flow(t);
  const name = await scratch(t);
  const other = await scratch(t);
  await client.append(name, msg('f1'));
  await client.append(name, msg('f2'), ['\\Seen']);
  const lock = await client.getMailboxLock(name);
  try {
    const list = await client.fetchAll('1:*', { uid: true, flags: true, envelope: true, source: true });
    assert.deepEqual(list.map((m) => m.envelope?.subject), ['f1', 'f2']);
    assert.ok(list[1]!.flags?.has('\\Seen'));
    assert.ok(list[0]!.source?.equals(msg('f1')));
    await client.messageFlagsAdd('1', ['\\Flagged']);
    const one = await client.fetchOne('1', { flags: true });
    assert.ok(one && one.flags?.has('\\Flagged'));
    const copied = await client.messageCopy('1:2', other);
    assert.ok(copied);
    await client.messageDelete('1');
    assert.equal(client.mailbox && client.mailbox.exists, 1);
  } finally {
    lock.release();
  }
  const st = await client.status(other, { messages: true });
  assert.equal(st && st.messages, 2);
});

test('imaplib: select, append, search, fetch, store, copy, expunge, uid', async (t) => {
  const where = await target();
  const name = await scratch(t, [msg('p1'), msg('p2')]);
  const copyTo = uniqueName('qpy');
  t.after(() => removeMailbox(copyTo));
  const results = await imaplib(where.accounts[0]!, [
    ['append', quote(name), '(\\Seen)', null, msg('p3')],
    ['select', quote(name)],
    ['search', null, 'ALL'],
    ['fetch', '3', '(FLAGS BODY.PEEK[])'],
    ['store', '1', '+FLAGS', '(\\Deleted)'],
    ['create', copyTo],
    ['copy', '2:3', copyTo],
    ['expunge'],
    ['uid', 'SEARCH', 'ALL'],
    ['close'],
  ]);
  assert.equal(pyOk(results[0])[0], 'OK');
  assert.deepEqual(pyOk(results[1])[1], [Buffer.from('3')]);
  assert.deepEqual(pyOk(results[2])[1], [Buffer.from('1 2 3')]);
  const fetched = pyOk(results[3])[1][0] as Buffer[];
  assert.match(fetched[0]!.toString(), /FLAGS \(.*\\Seen.*\)/);
  assert.ok(fetched[1]!.equals(msg('p3')));
  assert.equal(pyOk(results[6])[0], 'OK');
  assert.deepEqual(pyOk(results[7])[1], [Buffer.from('1')]);
  assert.equal(String(pyOk(results[8])[1][0]).split(' ').length, 2);
  assert.equal(pyOk(results[9])[0], 'OK');
});
