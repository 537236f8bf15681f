// SEARCH with every RFC 3501 key (6.4.4) and CHARSET UTF-8, UID SEARCH, ESEARCH (RFC 4731),
// SORT and THREAD (RFC 5256, REFERENCES and ORDEREDSUBJECT).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { attachment, crlf, eightBit, nested, simple } from '../fixtures/messages.js';
import { capabilities, flow, imaplib, pyOk, quote, requires, scratch, target, wire } from './kit.js';
import { fetches, type Reply, type Wire } from '../clients/imap.js';

const padding = 'x'.repeat(76);
const MESSAGES = [
  {
    date: '01-Jan-2020 12:00:00 +0000',
    flags: ['\\Seen', '\\Answered'],
    body: crlf(`From: Alice <alice@example.com>
To: bob@example.com
Cc: carol@example.com
Subject: Quarterly report
Date: Wed, 1 Jan 2020 12:00:00 +0000
Message-ID: <m1@example.com>

apple banana
`),
  },
  {
    date: '15-Mar-2021 12:00:00 +0000',
    flags: ['\\Flagged'],
    body: crlf(`From: Bob <bob@example.com>
To: alice@example.com
Subject: Lunch?
Date: Mon, 15 Mar 2021 12:00:00 +0000
Message-ID: <m2@example.com>
X-Priority: 1

cherry
${Array.from({ length: 40 }, () => padding).join('\n')}
`),
  },
  {
    date: '10-Jun-2022 12:00:00 +0000',
    flags: ['\\Deleted', '$Work'],
    body: crlf(`From: Carol <carol@example.com>
To: alice@example.com
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=
Date: Fri, 10 Jun 2022 12:00:00 +0000
Message-ID: <m3@example.com>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Herr Müller grüßt.
`),
  },
  {
    date: '01-Jan-2023 12:00:00 +0000',
    flags: ['\\Draft', '$Todo'],
    body: crlf(`From: Dave <dave@example.com>
To: alice@example.com
Bcc: eve@example.com
Subject: Re: Quarterly report
Date: Sun, 1 Jan 2023 12:00:00 +0000
Message-ID: <m4@example.com>
In-Reply-To: <m1@example.com>
References: <m1@example.com>

banana split
`),
  },
  {
    date: '05-Feb-2024 12:00:00 +0000',
    flags: [],
    body: crlf(`From: Zed <zed@example.com>
To: alice@example.com
Subject: apple
Date: Mon, 5 Feb 2024 12:00:00 +0000
Message-ID: <m5@example.com>
References: <m2@example.com>

pie
`),
  },
];

async function mailbox(t: TestContext): Promise<Wire> {
  const name = await scratch(t, MESSAGES);
  const raw = await wire(t);
  (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  return raw;
}

function numbers(reply: Reply, name = 'SEARCH'): number[] {
  const [response] = reply.all(name);
  assert.ok(response, `no ${name} in ${reply}`);
  return response.text
    .split(' ')
    .slice(2)
    .filter((word) => /^\d+$/.test(word))
    .map(Number);
}

async function search(raw: Wire, criteria: string): Promise<number[]> {
  return numbers((await raw.command(`SEARCH ${criteria}`)).ok()).sort((a, b) => a - b);
}

test('SEARCH: every RFC 3501 key', async (t) => {
  const raw = await mailbox(t);
  const size2 = MESSAGES[1]!.body.length;
  const cases: [string, number[]][] = [
    ['ALL', [1, 2, 3, 4, 5]],
    ['ANSWERED', [1]],
    ['UNANSWERED', [2, 3, 4, 5]],
    ['DELETED', [3]],
    ['UNDELETED', [1, 2, 4, 5]],
    ['DRAFT', [4]],
    ['UNDRAFT', [1, 2, 3, 5]],
    ['FLAGGED', [2]],
    ['UNFLAGGED', [1, 3, 4, 5]],
    ['SEEN', [1]],
    ['UNSEEN', [2, 3, 4, 5]],
    ['KEYWORD $Work', [3]],
    ['UNKEYWORD $Work', [1, 2, 4, 5]],
    ['FROM bob', [2]],
    ['FROM "Alice"', [1]],
    ['TO bob@example.com', [1]],
    ['CC carol', [1]],
    ['BCC eve', [4]],
    ['SUBJECT quarterly', [1, 4]],
    ['SUBJECT "lunch?"', [2]],
    ['BODY banana', [1, 4]],
    ['BODY quarterly', []],
    ['TEXT quarterly', [1, 4]],
    ['TEXT cherry', [2]],
    ['HEADER X-Priority 1', [2]],
    ['HEADER Message-ID m5', [5]],
    ['HEADER X-Priority ""', [2]],
    [`LARGER ${size2 - 1}`, [2]],
    [`SMALLER ${size2}`, [1, 3, 4, 5]],
    ['BEFORE 15-Mar-2021', [1]],
    ['ON 15-Mar-2021', [2]],
    ['SINCE 10-Jun-2022', [3, 4, 5]],
    ['SENTBEFORE 10-Jun-2022', [1, 2]],
    ['SENTON 1-Jan-2023', [4]],
    ['SENTSINCE 1-Jan-2023', [4, 5]],
    ['NOT SEEN', [2, 3, 4, 5]],
    ['OR FLAGGED DRAFT', [2, 4]],
    ['OR OR ANSWERED FLAGGED KEYWORD $Todo', [1, 2, 4]],
    ['(FROM alice SUBJECT report)', [1]],
    ['NOT (OR FROM alice FROM bob)', [3, 4, 5]],
    ['2:4', [2, 3, 4]],
    ['1,*', [1, 5]],
    ['2:* UNSEEN NOT DELETED', [2, 4, 5]],
  ];
  const failures: string[] = [];
  for (const [criteria, expected] of cases) {
    const got = await search(raw, criteria);
    if (JSON.stringify(got) !== JSON.stringify(expected)) failures.push(`SEARCH ${criteria}: expected ${expected} got ${got}`);
  }
  assert.deepEqual(failures, []);
});

test('SEARCH: RECENT, NEW and OLD agree with each other; UID and UID SEARCH speak UIDs', async (t) => {
  const raw = await mailbox(t);
  const recent = await search(raw, 'RECENT');
  const unseen = await search(raw, 'UNSEEN');
  assert.deepEqual(await search(raw, 'NEW'), recent.filter((n) => unseen.includes(n)));
  assert.deepEqual(await search(raw, 'OLD'), [1, 2, 3, 4, 5].filter((n) => !recent.includes(n)));
  const uids = [...fetches((await raw.command('FETCH 1:* UID')).ok()).entries()].sort(([a], [b]) => a - b).map(([, item]) => Number(item.UID));
  assert.deepEqual(await search(raw, `UID ${uids[1]}:${uids[2]}`), [2, 3]);
  const uidSearch = numbers((await raw.command('UID SEARCH FLAGGED')).ok());
  assert.deepEqual(uidSearch, [uids[1]]);
  const uidRange = numbers((await raw.command(`UID SEARCH UID ${uids[3]}:*`)).ok()).sort((a, b) => a - b);
  assert.deepEqual(uidRange, uids.slice(3));
});

test('SEARCH CHARSET UTF-8 with literals matches decoded headers and 8-bit bodies; unknown charsets get NO [BADCHARSET]', async (t) => {
  const raw = await mailbox(t);
  const body = (await raw.command(['SEARCH CHARSET UTF-8 BODY ', Buffer.from('Müller')])).ok();
  assert.deepEqual(numbers(body), [3]);
  const subject = (await raw.command(['SEARCH CHARSET UTF-8 SUBJECT ', Buffer.from('grüße')])).ok();
  assert.deepEqual(numbers(subject), [3]);
  const ascii = (await raw.command('SEARCH CHARSET US-ASCII SUBJECT lunch')).ok();
  assert.deepEqual(numbers(ascii), [2]);
  const bad = await raw.command('SEARCH CHARSET X-NO-SUCH-CHARSET SUBJECT a');
  assert.equal(bad.status, 'NO', String(bad));
  assert.match(bad.code ?? '', /^BADCHARSET/, String(bad));
  const syntax = await raw.command('SEARCH NOT-A-KEY');
  assert.equal(syntax.status, 'BAD', String(syntax));
});

test('SEARCH BODY and TEXT look into decoded parts: quoted-printable, ISO-8859-1, 8-bit, nested messages', async (t) => {
  const name = await scratch(t, [simple, attachment, nested, eightBit]);
  const raw = await wire(t);
  (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  const utf8 = async (key: string, text: string): Promise<number[]> => numbers((await raw.command([`SEARCH CHARSET UTF-8 ${key} `, Buffer.from(text)])).ok());
  assert.deepEqual(await search(raw, 'BODY "au lait"'), [2]);
  assert.deepEqual(await search(raw, 'BODY needle-inner'), [3], 'text inside a message/rfc822 part');
  assert.deepEqual(await search(raw, 'TEXT "Inner subject"'), [3], 'TEXT covers the headers of an attached message');
  assert.deepEqual(await search(raw, 'SUBJECT "Inner subject"'), [], 'SUBJECT is the top-level header only');
  assert.deepEqual(await utf8('BODY', 'Grüße'), [3, 4], 'QP ISO-8859-1 HTML and raw 8-bit UTF-8 both match');
  assert.deepEqual(await search(raw, 'BODY Gr=FC'), [], 'the encoded form does not match');
  assert.deepEqual(await utf8('TEXT', 'Café'), [2]);
  // Charsets other than US-ASCII and UTF-8 are optional (RFC 3501 6.4.4): either they work or NO [BADCHARSET].
  const latin1 = await raw.command(['SEARCH CHARSET ISO-8859-1 BODY ', Buffer.from('Grüße', 'latin1')]);
  if (latin1.status === 'OK') assert.deepEqual(numbers(latin1), [3, 4]);
  else assert.match(`${latin1.status} ${latin1.code}`, /^NO BADCHARSET/, String(latin1));
});

test('an empty mailbox: SEARCH, UID SEARCH, UID FETCH 1:* and ESEARCH answer empty', async (t) => {
  const name = await scratch(t);
  const raw = await wire(t);
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  assert.deepEqual(await search(raw, 'ALL'), []);
  assert.deepEqual(numbers((await raw.command('UID SEARCH ALL')).ok()), []);
  const fetch = (await raw.command('UID FETCH 1:* FLAGS')).ok();
  assert.equal(fetch.all('FETCH').length, 0, String(fetch));
  if ((await capabilities()).has('ESEARCH')) {
    const reply = (await raw.command('SEARCH RETURN (MIN MAX COUNT) ALL')).ok();
    assert.match(reply.all('ESEARCH')[0]?.text ?? '', /^\* ESEARCH \(TAG "[^"]+"\) COUNT 0$/i, String(reply));
  }
});

test('ESEARCH: SEARCH RETURN (MIN MAX COUNT ALL) and UID SEARCH RETURN ()', async (t) => {
  if (!(await requires(t, 'ESEARCH'))) return;
  const raw = await mailbox(t);
  const reply = (await raw.command('SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN', { tag: 'E1' })).ok();
  const [response] = reply.all('ESEARCH');
  assert.ok(response, String(reply));
  assert.equal(reply.all('SEARCH').length, 0, 'no SEARCH response with RETURN');
  const [, correlator, ...rest] = response.values as [string, string[], ...string[]];
  assert.deepEqual(correlator.map((v) => v.toUpperCase()), ['TAG', 'E1']);
  const data: Record<string, string> = {};
  for (let i = 0; i < rest.length; i += 2) data[rest[i]!.toUpperCase()] = rest[i + 1]!;
  assert.deepEqual(data, { MIN: '2', MAX: '5', COUNT: '4', ALL: '2:5' });
  const empty = (await raw.command('SEARCH RETURN (MIN COUNT) KEYWORD $Nothing')).ok();
  assert.match(empty.all('ESEARCH')[0]?.text ?? '', /COUNT 0/);
  assert.doesNotMatch(empty.all('ESEARCH')[0]?.text ?? '', /MIN/);
  const uid = (await raw.command('UID SEARCH RETURN () ALL', { tag: 'E2' })).ok();
  const [uidResponse] = uid.all('ESEARCH');
  assert.match(uidResponse?.text ?? '', /^\* ESEARCH \(TAG "E2"\) UID ALL \d+(:\d+|(,\d+)+)?$/i, String(uid));
});

test('SORT by SUBJECT, REVERSE DATE, FROM, SIZE, ARRIVAL, and UID SORT', async (t) => {
  if (!(await requires(t, 'SORT'))) return;
  const raw = await mailbox(t);
  const sort = async (keys: string, criteria = 'ALL'): Promise<number[]> => numbers((await raw.command(`SORT (${keys}) UTF-8 ${criteria}`)).ok(), 'SORT');
  assert.deepEqual(await sort('SUBJECT'), [5, 3, 2, 1, 4], 'base subjects: apple, grüße, lunch?, quarterly report x2');
  assert.deepEqual(await sort('REVERSE DATE'), [5, 4, 3, 2, 1]);
  assert.deepEqual(await sort('FROM'), [1, 2, 3, 4, 5]);
  assert.deepEqual(await sort('REVERSE FROM'), [5, 4, 3, 2, 1]);
  assert.deepEqual(await sort('SIZE', 'NOT DELETED'), [...[1, 4, 5].sort((a, b) => MESSAGES[a - 1]!.body.length - MESSAGES[b - 1]!.body.length || a - b), 2]);
  assert.deepEqual(await sort('ARRIVAL'), [1, 2, 3, 4, 5]);
  assert.deepEqual(await sort('SUBJECT REVERSE DATE'), [5, 3, 2, 4, 1]);
  const uids = [...fetches((await raw.command('FETCH 1:* UID')).ok()).entries()].sort(([a], [b]) => a - b).map(([, item]) => Number(item.UID));
  const uidSort = numbers((await raw.command('UID SORT (REVERSE ARRIVAL) UTF-8 ALL')).ok(), 'SORT');
  assert.deepEqual(uidSort, [...uids].reverse());
});

async function thread(raw: Wire, algorithm: string): Promise<string> {
  const reply = (await raw.command(`THREAD ${algorithm} UTF-8 ALL`)).ok();
  const [response] = reply.all('THREAD');
  assert.ok(response, String(reply));
  return response.text.replace(/^\* THREAD ?/i, '');
}

test('SORT (SUBJECT) uses the RFC 5256 base subject: Re:, Fwd:, [blobs], (fwd) trailers and case ignored', async (t) => {
  if (!(await requires(t, 'SORT'))) return;
  const subjects = ['zebra', 'Re: [ext] Fwd: Hello (fwd)', 'hello', 'RE:  RE: hello', '[fwd: HELLO]', 'Fw: apple'];
  const name = await scratch(t, subjects.map((subject, i) => crlf(`From: s@example.com\nSubject: ${subject}\nDate: ${i + 1} Mar 2020 10:00:00 +0000\n\nx\n`)));
  const raw = await wire(t);
  (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  const sorted = numbers((await raw.command('SORT (SUBJECT) UTF-8 ALL')).ok(), 'SORT');
  assert.deepEqual(sorted, [6, 2, 3, 4, 5, 1], 'apple, then the four hellos by date, then zebra');
});

test('THREAD=ORDEREDSUBJECT groups by base subject, threads ordered by first date', async (t) => {
  if (!(await requires(t, 'THREAD=ORDEREDSUBJECT'))) return;
  assert.equal(await thread(await mailbox(t), 'ORDEREDSUBJECT'), '(1 4)(2)(3)(5)');
});

test('THREAD=REFERENCES links replies by References and In-Reply-To', async (t) => {
  if (!(await requires(t, 'THREAD=REFERENCES'))) return;
  assert.equal(await thread(await mailbox(t), 'REFERENCES'), '(1 4)(2 5)(3)');
});

test('imapflow: search objects become the same SEARCH keys', async (t) => {
  const name = await scratch(t, MESSAGES);
  const client = await flow(t);
  const lock = await client.getMailboxLock(name, { readOnly: true });
  try {
    assert.deepEqual(await client.search({ seen: false, deleted: false }), [2, 4, 5]);
    assert.deepEqual(await client.search({ or: [{ from: 'alice' }, { keyword: '$Todo' }] }), [1, 4]);
    assert.deepEqual(await client.search({ body: 'Müller' }), [3]);
    assert.deepEqual(await client.search({ since: new Date('2022-06-10T00:00:00Z') }), [3, 4, 5]);
  } finally {
    lock.release();
  }
});

test('imaplib: search, uid search, sort and thread', async (t) => {
  const name = await scratch(t, MESSAGES);
  const where = await target();
  const caps = await capabilities();
  const results = await imaplib(where.accounts[0]!, [
    ['select', quote(name), true],
    ['search', null, 'OR', 'FLAGGED', 'SEEN'],
    ['search', 'UTF-8', 'SUBJECT', 'quarterly'],
    ['sort', '(REVERSE DATE)', 'UTF-8', 'ALL'],
    ['thread', 'ORDEREDSUBJECT', 'UTF-8', 'ALL'],
  ]);
  assert.deepEqual(pyOk(results[1])[1], [Buffer.from('1 2')]);
  assert.deepEqual(pyOk(results[2])[1], [Buffer.from('1 4')]);
  if (caps.has('SORT')) assert.deepEqual(pyOk(results[3])[1], [Buffer.from('5 4 3 2 1')]);
  if (caps.has('THREAD=ORDEREDSUBJECT')) assert.deepEqual(pyOk(results[4])[1], [Buffer.from('(1 4)(2)(3)(5)')]);
});
