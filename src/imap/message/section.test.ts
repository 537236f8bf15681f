import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as fx from '../../../test/fixtures/messages.js';
import { parseMime } from '../../mime/mime.js';
import { formatSection, parseSection, partial, sectionBytes, SectionError } from './section.js';

const cut = (raw: Buffer, section: string): string | null => sectionBytes(raw, parseMime(raw), parseSection(section))?.toString('utf8') ?? null;

describe('section parsing', () => {
  it('reads part paths, texts and field lists, and names them back', () => {
    assert.deepEqual(parseSection(''), { path: [] });
    assert.deepEqual(parseSection('1.2.3'), { path: [1, 2, 3] });
    assert.deepEqual(parseSection('header'), { path: [], text: 'HEADER' });
    assert.deepEqual(parseSection('3.TEXT'), { path: [3], text: 'TEXT' });
    assert.deepEqual(parseSection('1.MIME'), { path: [1], text: 'MIME' });
    assert.deepEqual(parseSection('HEADER.FIELDS (From "X-Odd")'), { path: [], text: 'HEADER.FIELDS', fields: ['From', 'X-Odd'] });
    assert.deepEqual(parseSection('2.HEADER.FIELDS.NOT (Subject)'), { path: [2], text: 'HEADER.FIELDS.NOT', fields: ['Subject'] });
    assert.equal(formatSection(parseSection('2.header.fields.not (Subject X)')), '2.HEADER.FIELDS.NOT (Subject X)');
    assert.equal(formatSection(parseSection('')), '');
    assert.equal(formatSection(parseSection('1.2.MIME')), '1.2.MIME');
  });

  it('refuses malformed sections', () => {
    for (const bad of ['0', '1..2', 'MIME', 'HEADER.FIELDS', 'HEADER.FIELDS ()', 'TEXT.1', '1.BOGUS', '1HEADER', 'HEADER x']) {
      assert.throws(() => parseSection(bad), SectionError, bad);
    }
  });
});

describe('section bytes', () => {
  it('gives the stored bytes for BODY[] and a header that ends with its blank line', () => {
    const root = parseMime(fx.nested);
    assert.equal(sectionBytes(fx.nested, root, parseSection('')), fx.nested);
    const header = cut(fx.nested, 'HEADER')!;
    assert.ok(header.startsWith('From: nested@example.com\r\n') && header.endsWith('boundary="outer"\r\n\r\n'));
    assert.equal(header + cut(fx.nested, 'TEXT'), fx.nested.toString('utf8'));
  });

  it('follows part numbers through multiparts and message/rfc822', () => {
    assert.equal(cut(fx.nested, '1.1'), 'Plain part.');
    assert.equal(cut(fx.nested, '1.2'), '<p>Gr=FC=DFe</p>');
    assert.equal(cut(fx.nested, '1.2.MIME'), 'Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n');
    assert.equal(cut(fx.nested, '2.MIME'), 'Content-Type: message/rfc822\r\n\r\n');
    assert.ok(cut(fx.nested, '2')!.startsWith('From: Inner Sender <inner@example.org>\r\n'));
    assert.ok(cut(fx.nested, '2')!.endsWith('--inner-b--\r\n'));
    assert.ok(cut(fx.nested, '2.HEADER')!.endsWith('boundary=inner-b\r\n\r\n'));
    assert.equal(cut(fx.nested, '2.HEADER') + cut(fx.nested, '2.TEXT')!, cut(fx.nested, '2'));
    assert.equal(cut(fx.nested, '2.1'), 'Inner text with needle-inner.');
    assert.equal(cut(fx.nested, '2.2'), 'AAECAw==');
    assert.equal(cut(fx.nested, '2.2.MIME'), 'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n');
    assert.equal(cut(fx.nested, '3'), 'iVBORw0KGgo=');
    assert.equal(cut(fx.nested, '2.HEADER.FIELDS (subject)'), 'Subject: Inner subject\r\n\r\n');
  });

  it('gives the body of a single-part message as part 1', () => {
    assert.equal(cut(fx.simple, '1'), 'Hi Bob,\r\njust a note.\r\n');
    assert.equal(cut(fx.simple, 'TEXT'), 'Hi Bob,\r\njust a note.\r\n');
  });

  it('gives null for parts that do not exist, and empty text for HEADER of a non-message part', () => {
    assert.equal(cut(fx.nested, '4'), null);
    assert.equal(cut(fx.nested, '1.3'), null);
    assert.equal(cut(fx.nested, '3.1'), null);
    assert.equal(cut(fx.simple, '2'), null);
    assert.equal(cut(fx.nested, '3.HEADER'), '');
  });

  it('selects header fields in message order, folded lines and all', () => {
    const raw = fx.crlf('Subject: a\n b\nFrom: x@y\nX-Two: 1\nx-two: 2\nTo: z@y\n\nbody\n');
    assert.equal(cut(raw, 'HEADER.FIELDS (X-TWO SUBJECT)'), 'Subject: a\r\n b\r\nX-Two: 1\r\nx-two: 2\r\n\r\n');
    assert.equal(cut(raw, 'HEADER.FIELDS.NOT (x-two subject)'), 'From: x@y\r\nTo: z@y\r\n\r\n');
    assert.equal(cut(raw, 'HEADER.FIELDS (Missing)'), '\r\n');
  });

  it('keeps bare LF and garbage lines exactly as stored', () => {
    const header = cut(fx.brokenLf, 'HEADER')!;
    assert.ok(header.startsWith('From a@b Mon Jan  1 00:00:00 2024\nFrom: lf@example.com\nthis is not a header\n'));
    assert.ok(header.endsWith('boundary=b1\n\n'));
    assert.equal(cut(fx.brokenLf, 'HEADER.FIELDS (subject)'), 'Subject: bare LF\n\r\n');
    assert.equal(cut(fx.brokenLf, '2'), 'second, never closed\n');
    assert.equal(cut(fx.headersOnly, 'HEADER.FIELDS (Subject)'), 'Subject: only headers\r\n\r\n');
    assert.equal(cut(fx.headersOnly, 'TEXT'), '');
  });

  it('cuts partial ranges (RFC 3501 6.4.5 <origin.octets>)', () => {
    const bytes = Buffer.from('0123456789');
    assert.equal(partial(bytes, 2, 3).toString(), '234');
    assert.equal(partial(bytes, 8, 100).toString(), '89');
    assert.equal(partial(bytes, 10, 5).length, 0);
    assert.equal(partial(bytes, 50).length, 0);
  });
});
