// FETCH (RFC 3501 6.4.5, 7.4.2): exact bytes of BODY[] and every section form, partial
// fetches, HEADER.FIELDS(.NOT), MIME, RFC822.*, macros, ENVELOPE and BODYSTRUCTURE of nested
// multiparts, message/rfc822, RFC 2231 parameters and broken MIME.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { attachment, crlf, digest, eightBit, headersOnly, nested, noBoundary, simple } from '../fixtures/messages.js';
import { flow, imaplib, pyOk, quote, scratch, target, wire } from './kit.js';
import { outline, parseEnvelope, parsePart, partAt } from './mime.js';
import { bytes, fetches, fetchOf, str, type Wire } from '../clients/imap.js';

/** Latin-1 bytes 0x80-0xFF, a 5,000-byte line, tabs, and no CRLF at the very end. */
const rough = Buffer.concat([
  crlf('From: rough@example.com\nSubject: rough\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n'),
  Buffer.from(Array.from({ length: 128 }, (_, i) => 0x80 + i)),
  Buffer.from('\r\n\tindented\r\n'),
  Buffer.from('x'.repeat(5000)),
  Buffer.from('\r\nlast line without CRLF'),
]);

/** A multipart whose closing boundary is missing, and a broken encoded word and Content-Type. */
const truncated = crlf(`From: trunc@example.com
Subject: =?utf-8?q?broken=ZZ?= word
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="cut"

--cut
Content-Type: text

first part
--cut
Content-Type: /;;; charset=
Content-Transfer-Encoding: x-unknown

second part, never closed
`);

const CORPUS = { simple, attachment, nested, eightBit, digest, noBoundary, headersOnly, rough, truncated };
const ORDER = Object.keys(CORPUS) as (keyof typeof CORPUS)[];
const seqOf = (name: keyof typeof CORPUS): number => ORDER.indexOf(name) + 1;

/** The bytes of buf strictly between the end of `after` and the start of `before`. */
function between(buf: Buffer, after: string, before: string, from = 0): Buffer {
  const start = buf.indexOf(after, from) + after.length;
  const end = buf.indexOf(before, start);
  assert.ok(start >= after.length && end >= start, `markers not found: ${after} / ${before}`);
  return buf.subarray(start, end);
}

function splitMessage(buf: Buffer): { header: Buffer; text: Buffer } {
  const blank = buf.indexOf('\r\n\r\n');
  return blank < 0 ? { header: buf, text: Buffer.alloc(0) } : { header: buf.subarray(0, blank + 4), text: buf.subarray(blank + 4) };
}

async function corpus(t: TestContext): Promise<{ raw: Wire; name: string }> {
  const name = await scratch(t, ORDER.map((key) => CORPUS[key]));
  const raw = await wire(t);
  (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  return { raw, name };
}

async function section(raw: Wire, seq: number, spec: string): Promise<Buffer> {
  const reply = (await raw.command(`FETCH ${seq} BODY.PEEK[${spec}]`)).ok();
  const item = fetchOf(reply, seq);
  const key = Object.keys(item).find((k) => k.startsWith('BODY['));
  assert.ok(key, `no BODY[] in ${reply}`);
  return bytes(item[key]);
}

test('BODY[] and RFC822.SIZE are byte-exact for every message in the corpus', async (t) => {
  const { raw } = await corpus(t);
  const all = fetches((await raw.command('FETCH 1:* (BODY.PEEK[] RFC822.SIZE)')).ok());
  for (const key of ORDER) {
    const item = all.get(seqOf(key));
    assert.ok(item, `no FETCH for ${key}`);
    assert.ok(bytes(item['BODY[]']).equals(CORPUS[key]), `BODY[] of ${key} differs from the appended bytes`);
    assert.equal(Number(item['RFC822.SIZE']), CORPUS[key].length, `RFC822.SIZE of ${key}`);
  }
});

test('partial fetches: <0.10>, a window in the middle, past the end, and on TEXT', async (t) => {
  const { raw } = await corpus(t);
  const body = rough;
  const seq = seqOf('rough');
  let item = fetchOf((await raw.command(`FETCH ${seq} BODY.PEEK[]<0.10>`)).ok(), seq);
  assert.ok(bytes(item['BODY[]<0>']).equals(body.subarray(0, 10)), JSON.stringify(item));
  item = fetchOf((await raw.command(`FETCH ${seq} BODY.PEEK[]<150.4000>`)).ok(), seq);
  assert.ok(bytes(item['BODY[]<150>']).equals(body.subarray(150, 4150)));
  item = fetchOf((await raw.command(`FETCH ${seq} BODY.PEEK[]<${body.length - 5}.100>`)).ok(), seq);
  assert.ok(bytes(item[`BODY[]<${body.length - 5}>`]).equals(body.subarray(body.length - 5)));
  item = fetchOf((await raw.command(`FETCH ${seq} BODY.PEEK[]<${body.length + 10}.5>`)).ok(), seq);
  assert.equal(bytes(item[`BODY[]<${body.length + 10}>`]).length, 0);
  const text = splitMessage(body).text;
  item = fetchOf((await raw.command(`FETCH ${seq} BODY.PEEK[TEXT]<2.7>`)).ok(), seq);
  assert.ok(bytes(item['BODY[TEXT]<2>']).equals(text.subarray(2, 9)));
});

test('HEADER, TEXT, RFC822.HEADER, RFC822.TEXT and RFC822 split the message exactly', async (t) => {
  const { raw } = await corpus(t);
  for (const key of ['simple', 'attachment', 'eightBit', 'headersOnly'] as const) {
    const seq = seqOf(key);
    const { header, text } = splitMessage(CORPUS[key]);
    assert.ok((await section(raw, seq, 'HEADER')).equals(header), `HEADER of ${key}`);
    if (key !== 'headersOnly') assert.ok((await section(raw, seq, 'TEXT')).equals(text), `TEXT of ${key}`);
    const item = fetchOf((await raw.command(`FETCH ${seq} (RFC822.HEADER RFC822.TEXT)`)).ok(), seq);
    assert.ok(bytes(item['RFC822.HEADER']).equals(header), `RFC822.HEADER of ${key}`);
    if (key !== 'headersOnly') assert.ok(bytes(item['RFC822.TEXT']).equals(text), `RFC822.TEXT of ${key}`);
  }
  const item = fetchOf((await raw.command(`FETCH 1 RFC822`)).ok(), 1);
  assert.ok(bytes(item.RFC822).equals(simple));
});

test('HEADER.FIELDS and HEADER.FIELDS.NOT pick header lines in message order, ending with a blank line', async (t) => {
  const { raw } = await corpus(t);
  const seq = seqOf('simple');
  const fields = await section(raw, seq, 'HEADER.FIELDS (SUBJECT from X-NOT-THERE)');
  assert.equal(fields.toString(), 'From: Alice Example <alice@example.com>\r\nSubject: Hello there\r\n\r\n');
  const not = await section(raw, seq, 'HEADER.FIELDS.NOT (Subject Date Message-ID)');
  assert.equal(not.toString(), 'From: Alice Example <alice@example.com>\r\nTo: bob@example.com\r\n\r\n');
  const none = await section(raw, seq, 'HEADER.FIELDS (X-NOT-THERE)');
  assert.equal(none.toString(), '\r\n');
  const item = fetchOf((await raw.command(`FETCH ${seq} (BODY.PEEK[HEADER.FIELDS (Subject)]<0.9>)`)).ok(), seq);
  const key = Object.keys(item).find((k) => k.startsWith('BODY[HEADER.FIELDS'));
  assert.ok(key && key.endsWith('<0>'), JSON.stringify(Object.keys(item)));
  assert.equal(bytes(item[key]).toString(), 'Subject: ');
});

test('HEADER.FIELDS keeps folded header lines byte for byte', async (t) => {
  const folded = crlf(`From: fold@example.com
Subject: a subject that
 goes on
\tand on
X-Other: x
To: someone@example.com

body
`);
  const name = await scratch(t, [folded]);
  const raw = await wire(t);
  (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  const got = await section(raw, 1, 'HEADER.FIELDS (SUBJECT TO)');
  assert.equal(got.toString(), 'Subject: a subject that\r\n goes on\r\n\tand on\r\nTo: someone@example.com\r\n\r\n');
});

test('a 3 MB message comes back byte-exact, whole and in windows', async (t) => {
  const lines: string[] = [];
  for (let i = 0; i < 36_000; i++) lines.push(`${String(i).padStart(7, '0')} ${'abcdefghij'.repeat(7)} \u00e9\u00fc\r\n`);
  const big = Buffer.concat([crlf('From: big@example.com\nSubject: big\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n'), Buffer.from(lines.join(''), 'utf8')]);
  const name = await scratch(t, [big]);
  const raw = await wire(t);
  (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  const item = fetchOf((await raw.command('FETCH 1 (RFC822.SIZE BODY.PEEK[])', { timeoutMs: 30_000 })).ok(), 1);
  assert.equal(Number(item['RFC822.SIZE']), big.length);
  assert.ok(bytes(item['BODY[]']).equals(big), 'BODY[] of 3 MB differs');
  const middle = Math.floor(big.length / 2) + 1;
  const window = fetchOf((await raw.command(`FETCH 1 BODY.PEEK[]<${middle}.65536>`)).ok(), 1);
  assert.ok(bytes(window[`BODY[]<${middle}>`]).equals(big.subarray(middle, middle + 65536)));
});

test('several sections in one FETCH each come back under their own name', async (t) => {
  const { raw } = await corpus(t);
  const seq = seqOf('attachment');
  const item = fetchOf((await raw.command(`FETCH ${seq} (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[TEXT]<0.20>)`)).ok(), seq);
  assert.equal(str(item['BODY[HEADER.FIELDS (SUBJECT)]']), 'Subject: =?utf-8?q?Caf=C3=A9?= report\r\n\r\n');
  assert.equal(str(item['BODY[1]']), "Caf=C3=A9 au lait, s'il vous pla=C3=AEt.");
  assert.match(str(item['BODY[2.MIME]']), /^Content-Type: application\/pdf;[^]*\r\n\r\n$/);
  assert.ok(bytes(item['BODY[TEXT]<0>']).equals(splitMessage(attachment).text.subarray(0, 20)));
});

test('part sections of nested multiparts and message/rfc822: N, N.MIME, N.HEADER, N.TEXT, N.M', async (t) => {
  const { raw } = await corpus(t);
  const seq = seqOf('nested');
  const inner = between(nested, 'Content-Type: message/rfc822\r\n\r\n', '\r\n--outer');
  const innerSplit = splitMessage(inner);
  const expectations: [string, Buffer | string][] = [
    ['1.1', 'Plain part.'],
    ['1.2', '<p>Gr=FC=DFe</p>'],
    ['1.2.MIME', 'Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'],
    ['2', inner],
    ['2.MIME', 'Content-Type: message/rfc822\r\n\r\n'],
    ['2.HEADER', innerSplit.header],
    ['2.TEXT', innerSplit.text],
    ['2.1', 'Inner text with needle-inner.'],
    ['2.2', 'AAECAw=='],
    ['3', 'iVBORw0KGgo='],
  ];
  for (const [spec, expected] of expectations) {
    const got = await section(raw, seq, spec);
    assert.equal(got.toString('latin1'), Buffer.from(expected).toString('latin1'), `BODY[${spec}] of nested`);
  }
  assert.ok((await section(raw, seqOf('simple'), '1')).equals(splitMessage(simple).text), 'BODY[1] of a single-part message is its body');
  const part2 = between(attachment, 'Content-Transfer-Encoding: base64\r\nContent-ID: <pdf-1@example.com>\r\nContent-Description: the CV\r\nContent-Language: en, fr\r\nContent-Location: http://example.com/cv.pdf\r\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\r\n', '\r\n--XYZ--');
  assert.ok((await section(raw, seqOf('attachment'), '2')).equals(part2));
});

test('BODYSTRUCTURE of nested multiparts and message/rfc822 matches the MIME tree, sizes and lines', async (t) => {
  const { raw } = await corpus(t);
  const seq = seqOf('nested');
  const reply = (await raw.command(`FETCH ${seq} (BODYSTRUCTURE BODY)`)).ok();
  const item = fetchOf(reply, seq);
  const root = parsePart(item.BODYSTRUCTURE);
  assert.equal(outline(root), 'multipart/mixed[multipart/alternative[text/plain,text/html],message/rfc822{multipart/mixed[text/plain,application/octet-stream]},image/png]');
  assert.equal(outline(parsePart(item.BODY)), outline(root), 'BODY has the same tree as BODYSTRUCTURE');
  assert.equal(root.params.boundary, 'outer');
  assert.equal(partAt(root, '1').subtype, 'alternative');
  for (const path of ['1.1', '1.2', '2', '3']) {
    const part = partAt(root, path);
    assert.equal(part.size, (await section(raw, seq, path)).length, `size of part ${path}`);
  }
  const html = partAt(root, '1.2');
  assert.equal(html.params.charset?.toLowerCase(), 'iso-8859-1');
  assert.equal(html.encoding, 'quoted-printable');
  // "Plain part." has no CRLF of its own before the boundary: 0 (CRLFs counted, as Dovecot) or 1 (a partial line).
  assert.ok([0, 1].includes(partAt(root, '1.1').lines!), `lines of 1.1: ${partAt(root, '1.1').lines}`);
  const message = partAt(root, '2');
  assert.equal(parseEnvelope(message.envelope).subject, 'Inner subject');
  assert.equal(message.lines, (await section(raw, seq, '2')).toString().split('\r\n').length - 1);
  assert.equal(partAt(root, '3').disposition?.type, 'inline');
  assert.equal(partAt(root, '3').encoding, 'base64');
  const simpleStructure = parsePart(fetchOf((await raw.command('FETCH 1 BODYSTRUCTURE')).ok(), 1).BODYSTRUCTURE);
  simpleStructure.params.charset = simpleStructure.params.charset?.toLowerCase() ?? ''; // charset names are case-insensitive
  assert.deepEqual({ ...simpleStructure, md5: undefined, disposition: undefined, language: undefined, location: undefined }, {
    type: 'text', subtype: 'plain', params: { charset: 'us-ascii' }, id: null, description: null, encoding: '7bit',
    size: splitMessage(simple).text.length, lines: 2, md5: undefined, disposition: undefined, language: undefined, location: undefined,
  });
});

test('BODYSTRUCTURE: RFC 2231 parameters, Content-ID, -Description, -MD5, -Language, -Location, disposition', async (t) => {
  const { raw } = await corpus(t);
  const seq = seqOf('attachment');
  const root = parsePart(fetchOf((await raw.command(`FETCH ${seq} BODYSTRUCTURE`)).ok(), seq).BODYSTRUCTURE);
  assert.equal(outline(root), 'multipart/mixed[text/plain,application/pdf]');
  const pdf = partAt(root, '2');
  assert.equal(pdf.params.name, 'résum.pdf', `name from RFC 2231 continuations: ${JSON.stringify(pdf.params)}`);
  assert.equal(pdf.disposition?.type, 'attachment');
  assert.equal(pdf.disposition?.params.filename, 'résum.pdf', JSON.stringify(pdf.disposition));
  assert.equal(pdf.id, '<pdf-1@example.com>');
  assert.equal(pdf.description, 'the CV');
  assert.equal(pdf.md5, 'Q2hlY2sgSW50ZWdyaXR5IQ==');
  const language = Array.isArray(pdf.language) ? pdf.language.map((v) => str(v).toLowerCase()) : [str(pdf.language ?? '').toLowerCase()];
  assert.deepEqual(language, ['en', 'fr']);
  assert.equal(pdf.location, 'http://example.com/cv.pdf');
  assert.equal(partAt(root, '1').encoding, 'quoted-printable');
});

test('ENVELOPE: addresses, groups, raw encoded words, In-Reply-To and Message-ID', async (t) => {
  const { raw } = await corpus(t);
  const att = parseEnvelope(fetchOf((await raw.command(`FETCH ${seqOf('attachment')} ENVELOPE`)).ok(), seqOf('attachment')).ENVELOPE);
  assert.equal(att.date, 'Tue, 1 Jul 2003 10:52:37 +0200');
  assert.equal(att.subject, '=?utf-8?q?Caf=C3=A9?= report', 'the subject stays as in the header');
  assert.deepEqual(att.from, [{ name: 'Doe, John', mailbox: 'john', host: 'example.com' }]);
  assert.deepEqual(att.sender, att.from, 'sender defaults to from');
  assert.deepEqual(att.replyTo, att.from, 'reply-to defaults to from');
  assert.deepEqual(att.to, [
    { name: null, mailbox: 'Team', host: null },
    { name: null, mailbox: 'alice', host: 'example.com' },
    { name: 'Bob B.', mailbox: 'bob', host: 'example.com' },
    { name: null, mailbox: null, host: null },
  ]);
  assert.deepEqual(att.cc?.map((a) => `${a.mailbox}@${a.host}`), ['carol@example.com']);
  assert.equal(att.bcc, null);
  assert.equal(att.messageId, '<att-1@example.com>');
  const nest = parseEnvelope(fetchOf((await raw.command(`FETCH ${seqOf('nested')} ENVELOPE`)).ok(), seqOf('nested')).ENVELOPE);
  assert.equal(nest.inReplyTo, '<att-1@example.com>');
  const only = parseEnvelope(fetchOf((await raw.command(`FETCH ${seqOf('headersOnly')} ENVELOPE`)).ok(), seqOf('headersOnly')).ENVELOPE);
  assert.equal(only.subject, 'only headers');
  assert.equal(only.date, null);
  assert.equal(only.messageId, null);
});

test('a top-level message/rfc822, odd Content-Type spelling and quoted boundaries, tricky address names', async (t) => {
  const forwarded = crlf(`From: fwd@example.com
Subject: forwarded whole
MIME-Version: 1.0
Content-Type: message/rfc822

From: orig@example.com
Subject: the original
Content-Type: text/plain

original text
`);
  const odd = crlf(`From: "Smith \\"Jr\\", John" <j@example.com>
To: undisclosed-recipients:;
Subject: odd
MIME-Version: 1.0
Content-Type: Multipart/MIXED (a comment); BOUNDARY="a b:c=d"

--a b:c=d
Content-Type: Text/Plain (comment); CharSet="UTF-8"

one
--a b:c=d
Content-Type: text/x-custom; format=flowed; Foo*=us-ascii'en'bar%20baz

two
--a b:c=d--
`);
  const name = await scratch(t, [forwarded, odd]);
  const raw = await wire(t);
  (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  const all = fetches((await raw.command('FETCH 1:2 (BODYSTRUCTURE ENVELOPE)')).ok());
  const fwd = parsePart(all.get(1)?.BODYSTRUCTURE);
  assert.equal(outline(fwd), 'message/rfc822{text/plain}');
  assert.equal(parseEnvelope(fwd.envelope).subject, 'the original');
  const whole = splitMessage(forwarded).text;
  assert.ok((await section(raw, 1, '1')).equals(whole), 'BODY[1] of a message/rfc822 message is the enclosed message');
  assert.ok((await section(raw, 1, '1.HEADER')).equals(splitMessage(whole).header));
  assert.equal((await section(raw, 1, '1.TEXT')).toString(), 'original text\r\n');
  const structure = parsePart(all.get(2)?.BODYSTRUCTURE);
  assert.equal(outline(structure), 'multipart/mixed[text/plain,text/x-custom]');
  assert.equal(structure.params.boundary, 'a b:c=d');
  assert.equal(partAt(structure, '1').params.charset?.toLowerCase(), 'utf-8');
  assert.equal(partAt(structure, '2').params.format, 'flowed');
  assert.equal(partAt(structure, '2').params.foo, 'bar baz');
  assert.equal((await section(raw, 2, '2')).toString(), 'two');
  const envelope = parseEnvelope(all.get(2)?.ENVELOPE);
  assert.deepEqual(envelope.from, [{ name: 'Smith "Jr", John', mailbox: 'j', host: 'example.com' }]);
  assert.deepEqual(envelope.to, [
    { name: null, mailbox: 'undisclosed-recipients', host: null },
    { name: null, mailbox: null, host: null },
  ]);
});

test('broken MIME: missing boundaries, digest defaults, bad Content-Type and encodings still get answers', async (t) => {
  const { raw } = await corpus(t);
  const reply = (await raw.command('FETCH 1:* (BODYSTRUCTURE ENVELOPE)')).ok();
  const all = fetches(reply);
  assert.equal(all.size, ORDER.length, String(reply));
  for (const [seq, item] of all) {
    const part = parsePart(item.BODYSTRUCTURE);
    assert.ok(part.type, `message ${seq}`);
    parseEnvelope(item.ENVELOPE);
  }
  assert.equal(outline(parsePart(all.get(seqOf('digest'))!.BODYSTRUCTURE)), 'multipart/digest[message/rfc822{text/plain},message/rfc822{text/plain}]');
  const nb = parsePart(all.get(seqOf('noBoundary'))!.BODYSTRUCTURE);
  assert.equal(`${nb.type}/${nb.subtype}`, 'multipart/mixed');
  const cut = parsePart(all.get(seqOf('truncated'))!.BODYSTRUCTURE);
  assert.equal(`${cut.type}/${cut.subtype}`, 'multipart/mixed');
  assert.equal(cut.parts?.length, 2, JSON.stringify(cut));
  assert.equal(cut.parts?.[0]?.type, 'text');
  assert.equal((await section(raw, seqOf('truncated'), '1')).toString(), 'first part');
  assert.equal(parsePart(all.get(seqOf('headersOnly'))!.BODYSTRUCTURE).size, 0);
  (await raw.command('NOOP')).ok();
});

test('ENVELOPE, BODY and BODYSTRUCTURE come back the same when fetched again (8-bit and literal-bearing ones too)', async (t) => {
  const { raw } = await corpus(t);
  const first = fetches((await raw.command('FETCH 1:* (ENVELOPE BODY BODYSTRUCTURE)')).ok());
  // Again, one at a time and in another order of items: the same values for every message.
  for (const seq of first.keys()) {
    const again = fetchOf((await raw.command(`FETCH ${seq} (BODYSTRUCTURE ENVELOPE BODY)`)).ok(), seq);
    for (const item of ['ENVELOPE', 'BODY', 'BODYSTRUCTURE']) assert.deepEqual(again[item], first.get(seq)![item], `message ${seq} ${item}`);
  }
  assert.equal(parseEnvelope(first.get(seqOf('eightBit'))!.ENVELOPE).subject !== undefined, true);
});

test('macros ALL, FAST, FULL and the simple items UID, FLAGS, INTERNALDATE', async (t) => {
  const { raw } = await corpus(t);
  const expect = { FAST: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'], ALL: ['ENVELOPE', 'FLAGS', 'INTERNALDATE', 'RFC822.SIZE'], FULL: ['BODY', 'ENVELOPE', 'FLAGS', 'INTERNALDATE', 'RFC822.SIZE'] };
  for (const [macro, keys] of Object.entries(expect)) {
    const item = fetchOf((await raw.command(`FETCH 2 ${macro}`)).ok(), 2);
    assert.deepEqual(Object.keys(item).filter((k) => k !== 'UID').sort(), keys, `${macro}: ${Object.keys(item)}`);
  }
  const item = fetchOf((await raw.command('FETCH 2 (UID FLAGS INTERNALDATE)')).ok(), 2);
  assert.match(String(item.UID), /^\d+$/);
  assert.match(str(item.INTERNALDATE), /^[ \d]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}$/);
});

test('imapflow: source and downloads of parts are byte-exact', async (t) => {
  const name = await scratch(t, [nested, rough]);
  const client = await flow(t);
  const lock = await client.getMailboxLock(name);
  try {
    const [first, second] = await client.fetchAll('1:2', { source: true, bodyStructure: true, size: true });
    assert.ok(first!.source?.equals(nested));
    assert.ok(second!.source?.equals(rough));
    assert.equal(second!.size, rough.length);
    assert.equal(first!.bodyStructure?.childNodes?.length, 3);
    const part = await client.download('1', '1.2', { uid: false });
    assert.ok(part.content && part.meta, 'part 1.2 was found');
    const chunks: Buffer[] = [];
    for await (const chunk of part.content) chunks.push(chunk as Buffer);
    assert.equal(part.meta.contentType, 'text/html');
    assert.equal(Buffer.concat(chunks).toString('utf8'), '<p>Grüße</p>', 'quoted-printable and ISO-8859-1 decoded');
  } finally {
    lock.release();
  }
});

test('imaplib: BODY[] and partial fetches are byte-exact', async (t) => {
  const name = await scratch(t, [rough, eightBit]);
  const where = await target();
  const results = await imaplib(where.accounts[0]!, [
    ['select', quote(name), true],
    ['fetch', '1', '(BODY.PEEK[])'],
    ['fetch', '2', '(BODY.PEEK[]<3.20>)'],
    ['fetch', '2', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])'],
  ]);
  const [[, whole]] = pyOk(results[1])[1] as [[Buffer, Buffer]];
  assert.ok(whole.equals(rough));
  const [[, window]] = pyOk(results[2])[1] as [[Buffer, Buffer]];
  assert.ok(window.equals(eightBit.subarray(3, 23)));
  const [[, subject]] = pyOk(results[3])[1] as [[Buffer, Buffer]];
  assert.equal(subject.toString('utf8'), 'Subject: Grüße aus Köln\r\n\r\n');
});
