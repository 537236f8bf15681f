import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as fx from '../../../test/fixtures/messages.js';
import { bodyStructure } from './body-structure.js';
import { findPart, parseMime, splitMultipart, type MimePart } from '../../mime/mime.js';

const bs = (raw: Buffer, extensible = true): string => fx.imapText(bodyStructure(parseMime(raw), extensible));
const body = (raw: Buffer, part: MimePart | undefined): string => {
  assert.ok(part);
  return raw.subarray(part.bodyStart, part.bodyEnd).toString('utf8');
};

describe('MIME structure', () => {
  it('defaults a message without Content-Type to text/plain us-ascii (RFC 2045 5.2)', () => {
    assert.equal(bs(fx.simple), '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 23 2 NIL NIL NIL NIL)');
    assert.equal(bs(fx.simple, false), '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 23 2)');
  });

  it('gives every body field of a single part and decodes RFC 2231 parameters', () => {
    assert.equal(
      bs(fx.attachment),
      '(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 40 1 NIL NIL NIL NIL)' +
        ' ("APPLICATION" "PDF" ("NAME" "résum.pdf") "<pdf-1@example.com>" "the CV" "BASE64" 44 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("ATTACHMENT" ("FILENAME" "résum.pdf")) ("en" "fr") "http://example.com/cv.pdf")' +
        ' "MIXED" ("BOUNDARY" "XYZ") NIL NIL NIL)',
    );
    assert.equal(
      bs(fx.attachment, false),
      '(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 40 1) ("APPLICATION" "PDF" ("NAME" "résum.pdf") "<pdf-1@example.com>" "the CV" "BASE64" 44) "MIXED")',
    );
  });

  it('nests multiparts and message/rfc822 with its envelope, body and lines', () => {
    const inner =
      '("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 392 ("Wed, 2 Jul 2003 08:00:00 +0000" "Inner subject" (("Inner Sender" NIL "inner" "example.org")) (("Inner Sender" NIL "inner" "example.org")) (("Inner Sender" NIL "inner" "example.org")) ((NIL NIL "outer" "example.com")) NIL NIL NIL "<inner-1@example.org>")' +
      ' (("TEXT" "PLAIN" NIL NIL NIL "7BIT" 29 1) ("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 8) "MIXED") 17)';
    assert.equal(
      bs(fx.nested, false),
      `((("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 11 1) ("TEXT" "HTML" ("CHARSET" "iso-8859-1") NIL NIL "QUOTED-PRINTABLE" 16 1) "ALTERNATIVE") ${inner} ("IMAGE" "PNG" NIL NIL NIL "BASE64" 12) "MIXED")`,
    );
    assert.match(bs(fx.nested), /\("IMAGE" "PNG" NIL NIL NIL "BASE64" 12 NIL \("INLINE" NIL\) NIL NIL\) "MIXED" \("BOUNDARY" "outer"\) NIL NIL NIL\)$/);
  });

  it('cuts part bodies byte-exactly: the CRLF before a boundary belongs to the boundary', () => {
    const root = parseMime(fx.nested);
    assert.equal(body(fx.nested, findPart(root, [1, 1])), 'Plain part.');
    assert.equal(body(fx.nested, findPart(root, [1, 2])), '<p>Gr=FC=DFe</p>');
    assert.equal(body(fx.nested, findPart(root, [2, 1])), 'Inner text with needle-inner.');
    assert.equal(body(fx.nested, findPart(root, [2, 2])), 'AAECAw==');
    assert.equal(body(fx.nested, findPart(root, [3])), 'iVBORw0KGgo=');
    assert.ok(body(fx.nested, findPart(root, [2])).startsWith('From: Inner Sender'));
    assert.equal(findPart(root, [4]), undefined);
    assert.equal(findPart(root, [3, 1]), undefined);
    assert.equal(findPart(root, [0]), undefined);
    // A non-multipart message is its own part 1.
    const simple = parseMime(fx.simple);
    assert.equal(findPart(simple, [1]), simple);
    assert.equal(findPart(simple, [2]), undefined);
  });

  it('defaults parts of multipart/digest to message/rfc822 (RFC 2046 5.1.5)', () => {
    const root = parseMime(fx.digest);
    assert.deepEqual(root.parts?.map((p) => `${p.type}/${p.subtype}`), ['MESSAGE/RFC822', 'MESSAGE/RFC822']);
    assert.equal(body(fx.digest, findPart(root, [2, 1])), 'Body two.');
    assert.equal(root.parts?.[1]?.message?.envelope?.[1], 'two');
  });

  it('reads 8-bit headers as UTF-8 and keeps them raw', () => {
    assert.equal(bs(fx.eightBit), '("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" 18 1 NIL NIL NIL NIL)');
    assert.equal(parseMime(fx.eightBit).envelope?.[1], 'Grüße aus Köln');
  });

  it('survives bare LF, garbage header lines and a missing final boundary', () => {
    const root = parseMime(fx.brokenLf);
    assert.equal(bs(fx.brokenLf, false), '(("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 1) ("TEXT" "PLAIN" NIL NIL NIL "7BIT" 21 1) "MIXED")');
    assert.equal(body(fx.brokenLf, root.parts?.[0]), 'first');
    assert.equal(body(fx.brokenLf, root.parts?.[1]), 'second, never closed\n');
    assert.equal(root.envelope?.[1], 'bare LF');
  });

  it('turns a multipart without any boundary line into one headerless text part', () => {
    assert.equal(bs(fx.noBoundary, false), '(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 27 1) "MIXED")');
    const noParam = fx.crlf('Content-Type: multipart/mixed\n\nbody\n');
    assert.equal(bs(noParam, false), '(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 6 1) "MIXED")');
  });

  it('takes a message without a blank line as all header', () => {
    const root = parseMime(fx.headersOnly);
    assert.equal(root.bodyStart, fx.headersOnly.length);
    assert.equal(bs(fx.headersOnly, false), '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0)');
    assert.equal(root.envelope?.[1], 'only headers');
  });

  it('does not take a longer boundary for a shorter one', () => {
    const raw = fx.crlf(
      'Content-Type: multipart/mixed; boundary=abc\n\n--abc\nContent-Type: multipart/mixed; boundary=abc-1\n\n--abc-1\n\none\n--abc-1\n\ntwo\n--abc-1--\n--abc\n\nthree\n--abc--\n',
    );
    assert.equal(bs(raw, false), '((("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3 1) ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3 1) "MIXED") ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1) "MIXED")');
  });

  it('ends an unterminated inner multipart at the outer boundary', () => {
    const raw = fx.crlf('Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\ninner\n--o\n\nlast\n--o--\n');
    const root = parseMime(raw);
    assert.equal(body(raw, findPart(root, [1, 1])), 'inner');
    assert.equal(body(raw, findPart(root, [2])), 'last');
  });

  it('splits with transport padding after delimiters and ignores look-alikes mid-line', () => {
    const raw = Buffer.from('--b  \r\n\r\none x--b\r\n--b\t\r\n\r\ntwo\r\n--b-- \r\n');
    assert.deepEqual(
      splitMultipart(raw, 0, raw.length, 'b').map(([s, e]) => raw.subarray(s, e).toString()),
      ['\r\none x--b', '\r\ntwo'],
    );
  });

  it('treats an encoded message/rfc822 as an opaque part', () => {
    const raw = fx.crlf('Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nRnJvbTogeEB5\n');
    assert.equal(bs(raw, false), '("MESSAGE" "RFC822" NIL NIL NIL "BASE64" 14)');
  });

  it('falls back to text/plain for a malformed Content-Type', () => {
    const raw = fx.crlf('Content-Type: garbage; charset=utf-8\n\nx\n');
    assert.equal(bs(raw, false), '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3 1)');
  });

  it('bounds nesting depth without running out of stack', () => {
    let text = '';
    for (let i = 0; i < 500; i++) text += `Content-Type: multipart/mixed; boundary=b${i}\n\n--b${i}\n`;
    text += '\nleaf\n';
    const raw = fx.crlf(text);
    const root = parseMime(raw);
    let depth = 0;
    for (let p: MimePart | undefined = root; p?.parts; p = p.parts[0]) depth++;
    assert.ok(depth > 10 && depth <= 70, `depth ${depth}`);
    assert.doesNotThrow(() => JSON.stringify(bodyStructure(root, true)));
  });

  it('never throws and keeps offsets in bounds on mangled input', () => {
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const sources = [fx.simple, fx.attachment, fx.nested, fx.brokenLf, fx.digest, fx.eightBit];
    const check = (raw: Buffer, part: MimePart): void => {
      assert.ok(part.headerStart <= part.bodyStart && part.bodyStart <= part.bodyEnd && part.bodyEnd <= raw.length);
      for (const child of part.parts ?? []) {
        assert.ok(child.headerStart >= part.bodyStart && child.bodyEnd <= part.bodyEnd);
        check(raw, child);
      }
      if (part.message) check(raw, part.message);
    };
    for (let i = 0; i < 1500; i++) {
      const src = Buffer.from(sources[rand(sources.length)]!);
      const raw = src.subarray(0, rand(src.length + 1));
      for (let k = 0; k < 4; k++) if (raw.length) raw[rand(raw.length)] = [0x0a, 0x0d, 0x2d, 0x3a, 0x3b, 0x22, 0x3d, 0x28, 0x00][rand(9)]!;
      const root = parseMime(raw);
      check(raw, root);
      JSON.stringify(bodyStructure(root, true));
    }
  });
});
