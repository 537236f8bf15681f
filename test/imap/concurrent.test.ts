// Several sessions on one mailbox: changes made in one reach the others as untagged EXISTS,
// EXPUNGE and FETCH FLAGS on NOOP and in IDLE (RFC 3501 7.3.1, 7.4.1, 7.4.2; RFC 2177), and
// never as EXPUNGE in the middle of a FETCH, STORE or SEARCH (RFC 3501 7.4.1).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { flow, quote, requires, scratch, wire } from './kit.js';
import { fetches, type Response, type Wire } from '../clients/imap.js';

const msg = (subject: string): Buffer => Buffer.from(`From: a@example.com\r\nSubject: ${subject}\r\n\r\nbody ${subject}\r\n`);

async function pair(t: TestContext, count = 3): Promise<{ a: Wire; b: Wire; name: string }> {
  const name = await scratch(t, Array.from({ length: count }, (_, i) => msg(`c${i + 1}`)));
  const a = await wire(t);
  const b = await wire(t);
  (await a.command(`SELECT ${quote(name)}`)).ok();
  (await b.command(`SELECT ${quote(name)}`)).ok();
  return { a, b, name };
}

function flagsIn(responses: Response[], seq: number): string {
  const item = fetches(responses).get(seq);
  return JSON.stringify(item?.FLAGS ?? null);
}

/** NOOP until a response matches (a server may deliver a change on the next NOOP). */
async function noopUntil(raw: Wire, test: (responses: Response[]) => boolean, tries = 20): Promise<Response[]> {
  const seen: Response[] = [];
  for (let i = 0; i < tries; i++) {
    seen.push(...(await raw.command('NOOP')).ok().untagged);
    if (test(seen)) return seen;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`not seen after ${tries} NOOPs: ${seen.map((r) => r.text).join(' | ')}`);
}

test('NOOP brings EXISTS for a message appended in another session', async (t) => {
  const { a, b, name } = await pair(t);
  (await b.command([`APPEND ${quote(name)} `, msg('new')])).ok();
  const seen = await noopUntil(a, (rs) => rs.some((r) => r.name === 'EXISTS'));
  assert.equal(seen.filter((r) => r.name === 'EXISTS').at(-1)?.number, 4);
  const item = fetches((await a.command('FETCH 4 BODY.PEEK[HEADER.FIELDS (SUBJECT)]')).ok()).get(4);
  assert.match(String(item?.['BODY[HEADER.FIELDS (SUBJECT)]']), /Subject: new/);
});

test('NOOP brings FETCH FLAGS for flags changed in another session', async (t) => {
  const { a, b } = await pair(t);
  (await b.command('STORE 2 +FLAGS.SILENT (\\Flagged $Shared)')).ok();
  const seen = await noopUntil(a, (rs) => fetches(rs).has(2));
  assert.match(flagsIn(seen, 2), /\\\\Flagged/);
  assert.match(flagsIn(seen, 2), /\$Shared/);
});

test('NOOP brings EXPUNGE for messages expunged in another session; sequence numbers follow', async (t) => {
  const { a, b } = await pair(t, 4);
  const uidsBefore = [...fetches((await a.command('FETCH 1:* UID')).ok()).values()].map((item) => Number(item.UID));
  (await b.command('STORE 2:3 +FLAGS.SILENT (\\Deleted)')).ok();
  (await b.command('EXPUNGE')).ok();
  const seen = await noopUntil(a, (rs) => rs.filter((r) => r.name === 'EXPUNGE').length === 2);
  const left = [...uidsBefore];
  for (const response of seen.filter((r) => r.name === 'EXPUNGE')) left.splice(response.number - 1, 1);
  assert.deepEqual(left, [uidsBefore[0], uidsBefore[3]]);
  const now = [...fetches((await a.command('FETCH 1:* UID')).ok()).entries()].sort(([x], [y]) => x - y).map(([, item]) => Number(item.UID));
  assert.deepEqual(now, left);
});

test('no EXPUNGE while answering FETCH, STORE or SEARCH; it comes on the next NOOP', async (t) => {
  const { a, b } = await pair(t, 3);
  (await b.command('STORE 1 +FLAGS.SILENT (\\Deleted)')).ok();
  (await b.command('EXPUNGE')).ok();
  for (const command of ['FETCH 1:* FLAGS', 'STORE 3 +FLAGS.SILENT (\\Seen)', 'SEARCH ALL']) {
    const reply = (await a.command(command)).ok();
    assert.equal(reply.all('EXPUNGE').length, 0, `EXPUNGE during ${command}: ${reply}`);
  }
  const seen = await noopUntil(a, (rs) => rs.some((r) => r.name === 'EXPUNGE'));
  assert.equal(seen.find((r) => r.name === 'EXPUNGE')?.number, 1);
});

test('MOVE in one session: the source watcher gets EXPUNGE, the destination watcher gets EXISTS', async (t) => {
  if (!(await requires(t, 'MOVE'))) return;
  const { a, b } = await pair(t, 3);
  const destination = await scratch(t, [msg('d1')]);
  const watcher = await wire(t);
  (await watcher.command(`SELECT ${quote(destination)}`)).ok();
  const uids = [...fetches((await a.command('FETCH 1:* UID')).ok()).entries()].sort(([x], [y]) => x - y).map(([, item]) => Number(item.UID));
  (await b.command(`MOVE 1:2 ${quote(destination)}`)).ok();
  const source = await noopUntil(a, (rs) => rs.filter((r) => r.name === 'EXPUNGE').length === 2);
  const left = [...uids];
  for (const response of source.filter((r) => r.name === 'EXPUNGE')) left.splice(response.number - 1, 1);
  assert.deepEqual(left, [uids[2]]);
  const dest = await noopUntil(watcher, (rs) => rs.some((r) => r.name === 'EXISTS' && r.number === 3));
  assert.ok(dest.length > 0);
});

test('no EXPUNGE is sent while no command is in progress', async (t) => {
  const { a, b } = await pair(t, 2);
  (await b.command('STORE 1 +FLAGS.SILENT (\\Deleted)')).ok();
  (await b.command('EXPUNGE')).ok();
  // RFC 3501 7.4.1: the other session must not get it unasked; give a server time to misbehave.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const unasked = a.pending();
  assert.equal(unasked.filter((r) => r.name === 'EXPUNGE').length, 0, unasked.map((r) => r.text).join(' | '));
  await noopUntil(a, (rs) => rs.some((r) => r.name === 'EXPUNGE'));
});

test('the selected mailbox deleted by another session: no crash, the session and the server go on', async (t) => {
  const { a, b, name } = await pair(t, 2);
  (await b.command('CLOSE')).ok();
  (await b.command(`DELETE ${quote(name)}`)).ok();
  // Servers differ (BYE, NO, or EXPUNGEs); whatever a says, it must answer or hang up, not hang.
  const noop = await a.command('NOOP').catch((error: Error) => error);
  if (!(noop instanceof Error)) {
    const fetch = await a.command('FETCH 1:* FLAGS').catch((error: Error) => error);
    if (!(fetch instanceof Error)) assert.match(fetch.status, /^(OK|NO|BAD)$/);
  }
  (await b.command('LIST "" INBOX')).ok();
  const fresh = await wire(t);
  (await fresh.command('EXAMINE INBOX')).ok();
});

test('FETCH and STORE of a message another session expunged, not yet reported: data or NO, then EXPUNGE', async (t) => {
  const { a, b } = await pair(t, 3);
  (await b.command('STORE 1 +FLAGS.SILENT (\\Deleted)')).ok();
  (await b.command('EXPUNGE')).ok();
  // RFC 3501 7.4.1 leaves the choice; what matters is a sane answer and the right numbers afterwards.
  const fetch = await a.command('FETCH 1 (UID BODY.PEEK[])');
  assert.match(fetch.status, /^(OK|NO)$/, String(fetch));
  const store = await a.command('STORE 1 +FLAGS (\\Flagged)');
  assert.match(store.status, /^(OK|NO)$/, String(store));
  const seen = await noopUntil(a, (rs) => rs.some((r) => r.name === 'EXPUNGE'));
  assert.equal(seen.find((r) => r.name === 'EXPUNGE')?.number, 1);
  const left = [...fetches((await a.command('FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]')).ok()).values()];
  assert.deepEqual(left.map((item) => String(item['BODY[HEADER.FIELDS (SUBJECT)]']).trim()), ['Subject: c2', 'Subject: c3']);
});

test('\\Recent: a new message is recent in at most one session', async (t) => {
  const { a, b, name } = await pair(t, 1);
  const writer = await wire(t);
  (await writer.command([`APPEND ${quote(name)} `, msg('recent')])).ok();
  await noopUntil(a, (rs) => rs.some((r) => r.name === 'EXISTS'));
  await noopUntil(b, (rs) => rs.some((r) => r.name === 'EXISTS'));
  const inA = (await a.command('SEARCH RECENT')).ok().all('SEARCH')[0]?.text.split(' ').slice(2) ?? [];
  const inB = (await b.command('SEARCH RECENT')).ok().all('SEARCH')[0]?.text.split(' ').slice(2) ?? [];
  assert.ok(!(inA.includes('2') && inB.includes('2')), `message 2 recent in both sessions: A ${inA}, B ${inB}`);
});

test('\\Recent: two sessions taking turns at new mail, with expunges between, keep RECENT and SEARCH RECENT in step', async (t) => {
  const { a, b, name } = await pair(t, 2);
  // The writer selects the mailbox only to expunge, after both sessions have claimed what is new.
  const writer = await wire(t);
  const recentOf = (responses: Response[]): number | undefined => responses.filter((r) => r.name === 'RECENT').at(-1)?.number;
  const uidsOf = async (session: Wire, criteria: string): Promise<string[]> => (await session.command(`UID SEARCH ${criteria}`)).ok().all('SEARCH')[0]?.text.split(' ').slice(2) ?? [];
  // 80 rounds: each session ends up holding claims interleaved with the other's (more ranges
  // than a view keeps before compacting them), and every fifth round expunges one message.
  for (let round = 0; round < 80; round++) {
    (await writer.command([`APPEND ${quote(name)} `, msg(`turn${round}`)])).ok();
    const [first, second] = round % 2 === 0 ? [a, b] : [b, a];
    for (const session of [first, second]) await noopUntil(session, (rs) => rs.some((r) => r.name === 'EXISTS'));
    if (round % 5 === 4) {
      (await writer.command(`SELECT ${quote(name)}`)).ok();
      const uids = await uidsOf(writer, 'ALL');
      (await writer.command(`UID STORE ${uids[Math.floor(uids.length / 2)]} +FLAGS.SILENT (\\Deleted)`)).ok();
      (await writer.command('CLOSE')).ok();
      for (const session of [a, b]) {
        const seen = await noopUntil(session, (rs) => rs.some((r) => r.name === 'EXPUNGE'));
        assert.equal(recentOf(seen), undefined, 'RECENT goes with EXISTS, not EXPUNGE');
      }
    }
  }
  const inA = await uidsOf(a, 'RECENT');
  const inB = await uidsOf(b, 'RECENT');
  assert.equal(inA.filter((uid) => inB.includes(uid)).length, 0, `recent in both sessions: A ${inA}, B ${inB}`);
  assert.ok(inA.length >= 30 && inB.length >= 30, `both sessions claimed: A ${inA}, B ${inB}`);
  // Every message is recent in exactly one session: the first to see it.
  assert.equal(inA.length + inB.length, (await uidsOf(a, 'ALL')).length);
  // The RECENT that goes with the next EXISTS agrees with SEARCH RECENT in each session.
  (await writer.command([`APPEND ${quote(name)} `, msg('last')])).ok();
  for (const session of [a, b]) {
    const seen = await noopUntil(session, (rs) => rs.some((r) => r.name === 'EXISTS'));
    const now = await uidsOf(session, 'RECENT');
    assert.equal(recentOf(seen), now.length, `RECENT ${recentOf(seen)} against SEARCH RECENT ${now}`);
  }
});

test('two sessions appending at once: every message lands once, UIDs unique and ascending, a watcher sees them all', async (t) => {
  const { a, name } = await pair(t, 0);
  const writers = [await wire(t), await wire(t)];
  await Promise.all(
    writers.map(async (writer, w) => {
      for (let i = 0; i < 40; i++) (await writer.command([`APPEND ${quote(name)} `, msg(`w${w}-${i}`)])).ok();
    }),
  );
  const seen = await noopUntil(a, (rs) => rs.some((r) => r.name === 'EXISTS' && r.number === 80));
  assert.ok(seen.length > 0);
  const all = [...fetches((await a.command('FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])')).ok()).entries()].sort(([x], [y]) => x - y);
  const uids = all.map(([, item]) => Number(item.UID));
  assert.equal(new Set(uids).size, 80);
  assert.ok(uids.every((uid, i) => i === 0 || uid > uids[i - 1]!), 'UIDs ascend with sequence numbers');
  const subjects = new Set(all.map(([, item]) => String(item['BODY[HEADER.FIELDS (SUBJECT)]']).trim()));
  assert.equal(subjects.size, 80);
});

test('a read-only (EXAMINE) session is told of changes too', async (t) => {
  const { b, name } = await pair(t);
  const reader = await wire(t);
  (await reader.command(`EXAMINE ${quote(name)}`)).ok();
  (await b.command('STORE 1 +FLAGS.SILENT (\\Answered)')).ok();
  (await b.command([`APPEND ${quote(name)} `, msg('more')])).ok();
  const seen = await noopUntil(reader, (rs) => rs.some((r) => r.name === 'EXISTS') && fetches(rs).has(1));
  assert.match(flagsIn(seen, 1), /Answered/);
});

test('IDLE: EXISTS, FETCH FLAGS and EXPUNGE arrive while idling, DONE ends it with OK', async (t) => {
  if (!(await requires(t, 'IDLE'))) return;
  const { a, b, name } = await pair(t);
  a.write('I1 IDLE\r\n');
  const start = await a.next();
  assert.equal(start.kind, 'continuation', start.text);
  (await b.command([`APPEND ${quote(name)} `, msg('idle')])).ok();
  const exists = await a.waitFor((r) => r.name === 'EXISTS');
  assert.equal(exists.at(-1)!.number, 4);
  (await b.command('STORE 2 +FLAGS.SILENT (\\Seen)')).ok();
  const flags = await a.waitFor((r) => r.name === 'FETCH');
  assert.match(flagsIn(flags, 2), /Seen/);
  (await b.command('STORE 3 +FLAGS.SILENT (\\Deleted)')).ok();
  (await b.command('EXPUNGE')).ok();
  const expunge = await a.waitFor((r) => r.name === 'EXPUNGE');
  assert.equal(expunge.at(-1)!.number, 3);
  a.write('DONE\r\n');
  (await a.finish('I1', 'IDLE')).ok();
  (await a.command('NOOP')).ok();
});

test('IDLE works without a selected mailbox, and "done" is case-insensitive', async (t) => {
  if (!(await requires(t, 'IDLE'))) return;
  const raw = await wire(t);
  raw.write('I2 IDLE\r\n');
  assert.equal((await raw.next()).kind, 'continuation');
  raw.write('done\r\n');
  (await raw.finish('I2', 'IDLE (authenticated state)')).ok();
  (await raw.command('NOOP')).ok();
});

test('IDLE: every idling session wakes up for one change', async (t) => {
  if (!(await requires(t, 'IDLE'))) return;
  const name = await scratch(t, [msg('x')]);
  const idlers: Wire[] = [];
  for (let i = 0; i < 5; i++) {
    const each = await wire(t);
    (await each.command(`EXAMINE ${quote(name)}`)).ok();
    each.write('W1 IDLE\r\n');
    assert.equal((await each.next()).kind, 'continuation');
    idlers.push(each);
  }
  const writer = await wire(t);
  (await writer.command([`APPEND ${quote(name)} `, msg('wake')])).ok();
  await Promise.all(
    idlers.map(async (each) => {
      const got = await each.waitFor((r) => r.name === 'EXISTS');
      assert.equal(got.at(-1)!.number, 2);
      each.write('DONE\r\n');
      (await each.finish('W1', 'IDLE')).ok();
    }),
  );
});

test('imapflow: exists, flags and expunge events from another session while idling', async (t) => {
  if (!(await requires(t, 'IDLE'))) return;
  const name = await scratch(t, [msg('f1'), msg('f2')]);
  const watcher = await flow(t);
  const actor = await wire(t);
  await watcher.mailboxOpen(name);
  const events: string[] = [];
  /** Resolves when an event matching the pattern has arrived; fails after 10 s. */
  const seen = async (pattern: RegExp): Promise<void> => {
    const until = Date.now() + 10_000;
    while (!events.some((event) => pattern.test(event))) {
      if (Date.now() > until) throw new Error(`no event like ${pattern}; events so far: ${events.join(' ')}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  watcher.on('exists', (data: { count: number }) => events.push(`exists:${data.count}`));
  watcher.on('flags', (data: { seq: number; flags: Set<string> }) => events.push(`flags:${data.seq}:${[...data.flags].join(',')}`));
  watcher.on('expunge', (data: { seq: number }) => events.push(`expunge:${data.seq}`));
  const idle = watcher.idle();
  await new Promise((resolve) => setTimeout(resolve, 100));
  (await actor.command([`APPEND ${quote(name)} `, msg('f3')])).ok();
  await seen(/^exists:3$/);
  (await actor.command(`SELECT ${quote(name)}`)).ok();
  (await actor.command('STORE 1 +FLAGS.SILENT (\\Flagged)')).ok();
  await seen(/^flags:1:.*\\Flagged/);
  (await actor.command('STORE 2 +FLAGS.SILENT (\\Deleted)')).ok();
  (await actor.command('EXPUNGE')).ok();
  await seen(/^expunge:2$/);
  await watcher.noop();
  await idle;
});
