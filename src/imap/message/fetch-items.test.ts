import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as fx from '../../../test/fixtures/messages.js';
import { fetchData, FetchSyntaxError, formatInternalDate, itemsNeed, itemsSetSeen, parseFetchItems, UnknownCteError, type FetchMessage } from './fetch-items.js';
import { parseMessage } from './parsed.js';

const message = (raw: Buffer): FetchMessage => ({
  uid: 7,
  flags: ['\\Seen', '$Label'],
  internalDate: new Date('1996-07-17T09:44:25Z'),
  size: raw.length,
  modseq: 42,
  parsed: parseMessage(raw),
  raw,
});
const fetch = (items: string, raw = fx.nested): string => fx.imapText(fetchData(parseFetchItems(items), message(raw)));

describe('FETCH items', () => {
  it('expands macros (RFC 3501 6.4.5)', () => {
    assert.deepEqual(parseFetchItems('all').map((i) => i.kind), ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE']);
    assert.deepEqual(parseFetchItems('FAST').map((i) => i.kind), ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE']);
    assert.deepEqual(parseFetchItems('FULL').map((i) => i.kind), ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY']);
  });

  it('parses sections, field lists with quotes and brackets, partials and BINARY', () => {
    const items = parseFetchItems('(uid body.peek[1.2.HEADER.FIELDS (From "X-]")]<0.100> BODY[] BINARY.PEEK[1]<5.10> BINARY.SIZE[2] rfc822.size)');
    assert.deepEqual(items, [
      { kind: 'UID' },
      { kind: 'BODY[]', section: { path: [1, 2], text: 'HEADER.FIELDS', fields: ['From', 'X-]'] }, peek: true, partial: { origin: 0, length: 100 } },
      { kind: 'BODY[]', section: { path: [] }, peek: false, partial: undefined },
      { kind: 'BINARY', path: [1], peek: true, partial: { origin: 5, length: 10 } },
      { kind: 'BINARY.SIZE', path: [2] },
      { kind: 'RFC822.SIZE' },
    ]);
  });

  it('refuses malformed attribute lists', () => {
    for (const bad of ['', '()', 'FLAGS UID', '(FLAGS', 'BOGUS', 'BODY[', 'BODY[1]<0>', 'BODY[1]<0.0>', 'BINARY[HEADER]', 'BINARY.SIZE[1]<0.1>', 'BODY[0]', '(FLAGS)x', 'BODY.PEEK']) {
      assert.throws(() => parseFetchItems(bad), FetchSyntaxError, bad);
    }
  });

  it('knows what each item needs and which ones set \\Seen', () => {
    assert.deepEqual(itemsNeed(parseFetchItems('(FLAGS UID MODSEQ INTERNALDATE RFC822.SIZE)')), { parsed: false, raw: false });
    assert.deepEqual(itemsNeed(parseFetchItems('(ENVELOPE BODYSTRUCTURE)')), { parsed: true, raw: false });
    assert.deepEqual(itemsNeed(parseFetchItems('BODY.PEEK[1]')), { parsed: true, raw: true });
    assert.equal(itemsSetSeen(parseFetchItems('(BODY.PEEK[] RFC822.HEADER BINARY.PEEK[1] BINARY.SIZE[1])')), false);
    for (const item of ['BODY[]', 'RFC822', 'RFC822.TEXT', 'BINARY[1]', 'BODY[1.MIME]']) assert.equal(itemsSetSeen(parseFetchItems(item)), true, item);
  });

  it('builds metadata items', () => {
    assert.equal(fetch('(UID FLAGS INTERNALDATE RFC822.SIZE MODSEQ)'), `(UID 7 FLAGS (\\Seen $Label) INTERNALDATE "17-Jul-1996 09:44:25 +0000" RFC822.SIZE ${fx.nested.length} MODSEQ (42))`);
    assert.equal(formatInternalDate(new Date('2024-01-05T03:04:05Z')), ' 5-Jan-2024 03:04:05 +0000');
  });

  it('names body sections as asked, with the partial origin only', () => {
    assert.equal(fetch('BODY.PEEK[1.1]'), '(BODY[1.1] {11}\r\nPlain part.)');
    assert.equal(fetch('BODY[1.1]<6.100>'), '(BODY[1.1]<6> {5}\r\npart.)');
    assert.equal(fetch('BODY[2.HEADER.FIELDS (subject)]'), '(BODY[2.HEADER.FIELDS (subject)] {26}\r\nSubject: Inner subject\r\n\r\n)');
    assert.equal(fetch('BODY[9]'), '(BODY[9] NIL)');
    assert.equal(fetch('RFC822.HEADER', fx.simple).split('\r\n')[0], `(RFC822.HEADER {${fx.simple.indexOf('\r\n\r\n') + 4}}`);
    const whole = fetchData(parseFetchItems('(RFC822 BODY[])'), message(fx.nested));
    assert.ok((whole[1] as Buffer).equals(fx.nested) && (whole[3] as Buffer).equals(fx.nested));
  });

  it('decodes BINARY sections and reports their decoded size (RFC 3516)', () => {
    assert.equal(fetch('(BINARY.PEEK[1.2] BINARY.SIZE[1.2])'), '(BINARY[1.2] {12}\r\n<p>Grüße</p> BINARY.SIZE[1.2] 12)'.replace('Grüße', Buffer.from([0x47, 0x72, 0xfc, 0xdf, 0x65]).toString('latin1')));
    const [, bytes] = fetchData(parseFetchItems('BINARY[2.2]'), message(fx.nested));
    assert.deepEqual([...(bytes as Buffer)], [0, 1, 2, 3]);
    const odd = fx.crlf('Content-Transfer-Encoding: x-uuencode\n\nbegin\n');
    assert.throws(() => fetchData(parseFetchItems('BINARY[1]'), message(odd)), UnknownCteError);
  });

  it('gives ENVELOPE, BODY and BODYSTRUCTURE from the parse', () => {
    assert.equal(
      fetch('(ENVELOPE BODY)', fx.simple),
      '(ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800" "Hello there" (("Alice Example" NIL "alice" "example.com")) (("Alice Example" NIL "alice" "example.com")) (("Alice Example" NIL "alice" "example.com")) ((NIL NIL "bob" "example.com")) NIL NIL NIL "<simple-1@example.com>") BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 23 2))',
    );
  });
});
