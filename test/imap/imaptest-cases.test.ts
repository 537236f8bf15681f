// Cases from Dovecot's imaptest scripted groups (src/tests in github.com/dovecot/imaptest) that
// Quillmail failed: each test names its group. Run the real imaptest as described in
// docs and issue 18; these keep the fixed behaviour from coming back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crlf } from '../fixtures/messages.js';
import { quote, requires, scratch, target, wire } from './kit.js';
import { fetches, type Response, type Wire } from '../clients/imap.js';

const msg = (subject: string): Buffer => crlf(`From: a@example.com\nSubject: ${subject}\n\nbody ${subject}\n`);

/** NOOP until a response matches (a server may deliver a change on the next NOOP). */
async function noopUntil(raw: Wire, done: (responses: Response[]) => boolean): Promise<Response[]> {
  const seen: Response[] = [];
  for (let i = 0; i < 20; i++) {
    seen.push(...(await raw.command('NOOP')).ok().untagged);
    if (done(seen)) return seen;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`not seen after 20 NOOPs: ${seen.map((r) => r.text).join(' | ')}`);
}

/** The keywords of the FLAGS responses so far, and fails when a FETCH names a keyword before FLAGS did (RFC 3501 7.2.6). */
function checkKeywordsAnnounced(responses: Response[], known: Set<string>): void {
  for (const response of responses) {
    const flagsList = (text: string): string[] => /\(([^)]*)\)/.exec(text)?.[1]?.split(' ').filter(Boolean) ?? [];
    if (response.name === 'FLAGS') for (const flag of flagsList(response.text)) known.add(flag.toLowerCase());
    if (response.name === 'FETCH') {
      const flags = /FLAGS \(([^)]*)\)/.exec(response.text)?.[1]?.split(' ').filter(Boolean) ?? [];
      for (const flag of flags) if (!flag.startsWith('\\')) assert.ok(known.has(flag.toLowerCase()), `${flag} in "${response.text}" before any FLAGS named it`);
    }
  }
}

const numbers = (text: string | undefined, name: string): number[] =>
  (text ?? '')
    .replace(new RegExp(`^\\* ${name} ?`, 'i'), '')
    .split(' ')
    .filter(Boolean)
    .map(Number);

test('imaptest sort-addresses: SORT (CC) sorts a group by its name (RFC 5256 3, first addr-mailbox)', async (t) => {
  if (!(await requires(t, 'SORT'))) return;
  const name = await scratch(t, [
    { body: crlf('From: user2@domain2.org\nCc: user2@domain2.org (foo bar)\n\n1\n'), date: '22-Feb-2008 00:06:23 +0000' },
    { body: crlf('From: user2@domain1.org\nCc: user2: blah@domain1.org;\n\n2\n'), date: '22-Feb-2008 01:06:23 +0000' },
    { body: crlf('From: user1@domain1.org\nCc: user1@domain1.org\n\n3\n'), date: '22-Feb-2008 02:06:23 +0000' },
  ]);
  const raw = await wire(t);
  (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  const sort = async (keys: string): Promise<number[]> => numbers((await raw.command(`SORT (${keys}) US-ASCII ALL`)).ok().all('SORT')[0]?.text, 'SORT');
  assert.deepEqual(await sort('CC'), [3, 1, 2]);
  assert.deepEqual(await sort('REVERSE CC'), [1, 2, 3]);
  assert.deepEqual(await sort('CC REVERSE ARRIVAL'), [3, 2, 1]);
});

test('imaptest thread: REFERENCES drops an earlier parent even when the new link would loop (RFC 5256 3, 1B)', async (t) => {
  if (!(await requires(t, 'THREAD=REFERENCES'))) return;
  const name = await scratch(t, [
    { body: crlf('Message-ID: <a@b>\n\nbody\n'), date: '22-Feb-2008 17:06:23 +0000' },
    { body: crlf('Message-Id: <b@b>\nReferences: <a@b> <c@b>\n\nbody\n'), date: '22-Feb-2008 15:06:23 +0000' },
    { body: crlf('Message-Id: <c@b>\nReferences: <b@b>\n\nbody\n'), date: '22-Feb-2008 16:06:25 +0000' },
  ]);
  const raw = await wire(t);
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const thread = async (): Promise<string> => ((await raw.command('THREAD REFERENCES US-ASCII ALL')).ok().all('THREAD')[0]?.text ?? '').replace(/^\* THREAD ?/i, '');
  assert.equal(await thread(), '(3 2)(1)');
  (await raw.command('STORE 1 +FLAGS \\Deleted')).ok();
  (await raw.command('EXPUNGE')).ok();
  assert.equal(await thread(), '(2 1)');
});

test('RFC 3501 7.2.6: a keyword added in another session comes in FLAGS and PERMANENTFLAGS before a FETCH shows it', async (t) => {
  const name = await scratch(t, [msg('k1'), msg('k2')]);
  const a = await wire(t);
  const b = await wire(t);
  const known = new Set<string>();
  checkKeywordsAnnounced((await a.command(`SELECT ${quote(name)}`)).ok().untagged, known);
  (await b.command(`SELECT ${quote(name)}`)).ok();
  (await b.command('STORE 2 +FLAGS.SILENT ($Fresh1 $Fresh2)')).ok();
  const seen = await noopUntil(a, (rs) => fetches(rs).has(2));
  checkKeywordsAnnounced(seen, known);
  const permanent = seen.find((r) => r.code?.toUpperCase().startsWith('PERMANENTFLAGS'));
  assert.match(permanent?.code ?? '', /\$Fresh1.*\$Fresh2.*\\\*/i, 'PERMANENTFLAGS names the new keywords and still \\*');
  // Two messages with a new keyword each, caught up in one go: the FLAGS before them names both.
  (await b.command('STORE 1 +FLAGS.SILENT ($Pair1)')).ok();
  (await b.command('STORE 2 +FLAGS.SILENT ($Pair2)')).ok();
  checkKeywordsAnnounced(await noopUntil(a, (rs) => fetches(rs).has(1) && fetches(rs).has(2)), known);
  // The session's own STORE and FETCH also name a new keyword in FLAGS first.
  checkKeywordsAnnounced((await a.command('STORE 1 +FLAGS ($Own)')).ok().untagged, known);
  (await b.command('STORE 1 +FLAGS.SILENT ($Other)')).ok();
  checkKeywordsAnnounced((await a.command('FETCH 1:* FLAGS')).ok().untagged, known);
  // A new session is told of every keyword in use at SELECT.
  const c = await wire(t);
  const fresh = new Set<string>();
  checkKeywordsAnnounced((await c.command(`SELECT ${quote(name)}`)).ok().untagged, fresh);
  for (const keyword of ['$fresh1', '$fresh2', '$own', '$other']) assert.ok(fresh.has(keyword), `SELECT's FLAGS names ${keyword}`);
  checkKeywordsAnnounced((await c.command('FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])')).ok().untagged, fresh);
});

test('imaptest copy: messages copied in by another session are announced with EXISTS and RECENT (RFC 3501 7.3.2)', async (t) => {
  const source = await scratch(t, [msg('c1'), msg('c2'), msg('c3')]);
  const target = await scratch(t);
  const a = await wire(t);
  const b = await wire(t);
  (await a.command(`SELECT ${quote(source)}`)).ok();
  (await b.command(`SELECT ${quote(target)}`)).ok();
  (await a.command(`COPY 1:2 ${quote(target)}`)).ok();
  const seen = await noopUntil(b, (rs) => rs.some((r) => r.name === 'EXISTS'));
  assert.equal(seen.find((r) => r.name === 'EXISTS')?.number, 2);
  assert.equal(seen.find((r) => r.name === 'RECENT')?.number, 2, seen.map((r) => r.text).join(' | '));
  (await a.command(`COPY 3 ${quote(target)}`)).ok();
  const more = await noopUntil(b, (rs) => rs.some((r) => r.name === 'EXISTS'));
  assert.equal(more.find((r) => r.name === 'RECENT')?.number, 3);
});

test('imaptest esearch-condstore: OK [HIGHESTMODSEQ] on the first CONDSTORE-enabling FETCH; ESEARCH MODSEQ of the messages returned', async (t) => {
  if (!(await requires(t, 'ESEARCH', 'CONDSTORE'))) return;
  const name = await scratch(t, [msg('e1'), msg('e2'), msg('e3'), msg('e4')]);
  const raw = await wire(t);
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const first = (await raw.command('FETCH 1 MODSEQ')).ok();
  assert.ok(first.untagged.some((r) => /^HIGHESTMODSEQ \d+$/i.test(r.code ?? '')), String(first));
  const modseq: Record<number, number> = {};
  for (const seq of [1, 3, 2, 4]) {
    const stored = (await raw.command(`STORE ${seq} +FLAGS \\Seen`)).ok();
    modseq[seq] = Number(/MODSEQ \((\d+)\)/.exec(stored.all('FETCH')[0]?.text ?? '')?.[1]);
  }
  const esearch = async (returns: string, set: string): Promise<string> =>
    ((await raw.command(`SEARCH RETURN (${returns}) ${set} MODSEQ "/flags/\\\\seen" all 1`, { tag: 'T' })).ok().all('ESEARCH')[0]?.text ?? '').replace(/^\* ESEARCH \(TAG "T"\) /i, '');
  assert.equal(await esearch('MIN', '1:3'), `MIN 1 MODSEQ ${modseq[1]}`);
  assert.equal(await esearch('MAX', '1:3'), `MAX 3 MODSEQ ${modseq[3]}`);
  assert.equal(await esearch('', '1:3'), `ALL 1:3 MODSEQ ${modseq[2]}`);
  assert.equal(await esearch('MIN MAX', '2:3'), `MIN 2 MAX 3 MODSEQ ${modseq[2]}`);
});

test('imaptest id: an ID line of 30 pairs with 1024-octet values is accepted (RFC 2971)', async (t) => {
  const raw = await wire(t);
  const pairs = Array.from({ length: 30 }, (_, i) => `"${`f${i}`.padEnd(30, 'x')}" "${'v'.repeat(1024)}"`).join(' ');
  const reply = await raw.command(`ID (${pairs})`);
  assert.equal(reply.status, 'OK', reply.tagged.text);
  assert.equal(reply.all('ID').length, 1);
  (await raw.command('NOOP')).ok();
  // Other commands keep the normal line limit (Quillmail's limits.lineLength; Dovecot has one limit for all).
  if (!(await target()).external) assert.equal((await raw.command(`NOOP ${'x'.repeat(9000)}`)).status, 'BAD');
});

test('imaptest atoms: a mailbox name atom with "[" and "&" gets NO, and the session goes on', async (t) => {
  const raw = await wire(t);
  const name = "!#$&'+,-.0123456789:;<=>?@^_`|[}";
  const selected = await raw.command(`SELECT ${name}`);
  assert.equal(selected.status, 'NO', selected.tagged.text);
  (await raw.command(`LIST "" ${name}%*`)).ok();
  (await raw.command('NOOP')).ok();
});

/** Names and flags of LIST/LSUB responses, with the extended data as text. */
function listed(responses: Response[], name = 'LIST'): { name: string; flags: string[]; extra: string }[] {
  return responses
    .filter((r) => r.name === name)
    .map((r) => {
      const values = r.values;
      const flags = (values[1] as string[]).map((f) => String(f).toLowerCase());
      return { name: String(values[3]), flags, extra: JSON.stringify(values.slice(4)).toUpperCase() };
    });
}

test('imaptest subscribe: CREATE does not subscribe; LSUB "%" shows unsubscribed parents of subscribed names as \\Noselect', async (t) => {
  const raw = await wire(t);
  const top = `${await scratch(t)}`;
  for (const each of ['test', 'test2/', 'test3/', 'test2/test', 'test3/test3']) (await raw.command(`CREATE ${quote(`${top}/${each}`)}`)).ok();
  for (const each of ['test', 'test2/test', 'test3/test3']) (await raw.command(`SUBSCRIBE ${quote(`${top}/${each}`)}`)).ok();
  const lsub = async (pattern: string): Promise<{ name: string; flags: string[] }[]> => listed((await raw.command(`LSUB "" ${quote(pattern)}`)).ok().untagged, 'LSUB');
  const level = await lsub(`${top}/%`);
  assert.deepEqual(level.map((e) => e.name).sort(), [`${top}/test`, `${top}/test2`, `${top}/test3`]);
  assert.ok(!level.find((e) => e.name === `${top}/test`)!.flags.includes('\\noselect'));
  for (const parent of ['test2', 'test3']) assert.ok(level.find((e) => e.name === `${top}/${parent}`)!.flags.includes('\\noselect'), JSON.stringify(level));
  for (const each of ['test', 'test2/test', 'test3/test3']) (await raw.command(`UNSUBSCRIBE ${quote(`${top}/${each}`)}`)).ok();
  assert.deepEqual(await lsub(`${top}/*`), []);
});

test('imaptest listext: RECURSIVEMATCH needs SUBSCRIBED; a deleted subscribed mailbox lists as \\NonExistent; CHILDINFO', async (t) => {
  if (!(await requires(t, 'LIST-EXTENDED'))) return;
  const raw = await wire(t);
  const top = await scratch(t);
  for (const each of ['test1', 'test2/', 'test2/test1', 'test6', 'test7/test7', 'test8/test8', 'test8/test9']) (await raw.command(`CREATE ${quote(`${top}/${each}`)}`)).ok();
  for (const each of ['test1', 'test2/test1', 'test6', 'test7/test7', 'test8/test8', 'test8/test9']) (await raw.command(`SUBSCRIBE ${quote(`${top}/${each}`)}`)).ok();
  (await raw.command(`DELETE ${quote(`${top}/test6`)}`)).ok();
  // RFC 5258 3: RECURSIVEMATCH alone (or with REMOTE) is an error.
  assert.equal((await raw.command('LIST (RECURSIVEMATCH) "" ""')).status, 'BAD');
  assert.equal((await raw.command('LIST (RECURSIVEMATCH REMOTE) "" ""')).status, 'BAD');
  const list = async (args: string): Promise<{ name: string; flags: string[]; extra: string }[]> => listed((await raw.command(`LIST ${args}`)).ok().untagged);
  // RFC 3501 6.3.6 / RFC 5258 3.1: the subscription outlives the mailbox.
  const subscribed = await list(`(SUBSCRIBED) "" ${quote(`${top}/*`)}`);
  const gone = subscribed.find((e) => e.name === `${top}/test6`);
  assert.ok(gone?.flags.includes('\\nonexistent') && gone.flags.includes('\\subscribed'), JSON.stringify(subscribed));
  // Created, not subscribed: test2, test7, test8 (and the scratch mailbox) are not in the list.
  assert.deepEqual(subscribed.map((e) => e.name.slice(top.length + 1)).sort(), ['test1', 'test2/test1', 'test6', 'test7/test7', 'test8/test8', 'test8/test9']);
  // RFC 5258 3.5: an unsubscribed name with a subscribed child the pattern misses gets CHILDINFO.
  const test2 = await list(`(SUBSCRIBED RECURSIVEMATCH) "" ${quote(`${top}/test2%`)} RETURN (CHILDREN)`);
  assert.deepEqual(test2.map((e) => e.name), [`${top}/test2`]);
  assert.ok(!test2[0]!.flags.includes('\\subscribed'));
  assert.match(test2[0]!.extra, /CHILDINFO.*SUBSCRIBED/);
  const test7 = await list(`(SUBSCRIBED RECURSIVEMATCH) "" ${quote(`${top}*test7`)}`);
  assert.deepEqual(test7.map((e) => e.name), [`${top}/test7/test7`], 'the child matches itself: no CHILDINFO for its parent');
  const test8 = await list(`(SUBSCRIBED RECURSIVEMATCH) "" ${quote(`${top}*test8`)}`);
  assert.deepEqual(test8.map((e) => e.name).sort(), [`${top}/test8`, `${top}/test8/test8`]);
  assert.match(test8.find((e) => e.name === `${top}/test8`)!.extra, /CHILDINFO.*SUBSCRIBED/);
  const both = await list(`(SUBSCRIBED RECURSIVEMATCH) "" (${quote(`${top}/test2`)} ${quote(`${top}/test2/test1`)})`);
  assert.deepEqual(both.map((e) => e.name), [`${top}/test2/test1`]);
  // RETURN (SUBSCRIBED) marks only the subscribed ones.
  const level = await list(`"" ${quote(`${top}/%`)} RETURN (CHILDREN SUBSCRIBED)`);
  assert.deepEqual(level.filter((e) => e.flags.includes('\\subscribed')).map((e) => e.name), [`${top}/test1`]);
  // RFC 3501 6.3.7: the subscription with no mailbox can be dropped.
  (await raw.command(`UNSUBSCRIBE ${quote(`${top}/test6`)}`)).ok();
  assert.deepEqual((await list(`(SUBSCRIBED) "" ${quote(`${top}/test6`)}`)).length, 0);
});

test('imaptest sort-display-to: SORT=DISPLAY, a group sorts by its name (RFC 5957)', async (t) => {
  if (!(await requires(t, 'SORT=DISPLAY'))) return;
  const tos = ['foo bar <a@b.c>', 'b@c.d', '=?iso-8859-1?q?foo_aar?= <e@f.g>', 'a: xx@xx.org, yy@yy.org;', 'z: aa@aa.org;', 'empty:;'];
  const name = await scratch(t, tos.map((to, i) => crlf(`From: s@example.com\nTo: ${to}\nSubject: ${i + 1}\n\nx\n`)));
  const raw = await wire(t);
  (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  const sorted = numbers((await raw.command('SORT (DISPLAYTO) US-ASCII ALL')).ok().all('SORT')[0]?.text, 'SORT');
  // a (group), b@c.d, empty (group), foo aar, foo bar, z (group)
  assert.deepEqual(sorted, [4, 2, 6, 3, 1, 5]);
});

test('imaptest search-body: SEARCH BODY and TEXT find a string inside a word (RFC 3501 6.4.4, a substring)', async (t) => {
  const body = crlf('From: a@example.com\nSubject: letters\n\nasdfghjkl qwerty\n');
  const other = crlf('From: a@example.com\nSubject: other\n\nnothing here\n');
  const box = await scratch(t, [other, body]);
  const raw = await wire(t);
  (await raw.command(`SELECT ${quote(box)}`)).ok();
  const found = async (command: string) => ((await raw.command(command)).ok().all('SEARCH')[0]?.text ?? '').replace(/^\* SEARCH ?/i, '');
  assert.equal(await found('SEARCH BODY sdfghjk'), '2');
  assert.equal(await found('SEARCH TEXT fghj'), '2');
  assert.equal(await found('SEARCH BODY asdfghjkl'), '2');
  assert.equal(await found('SEARCH BODY zxcv'), '');
});
