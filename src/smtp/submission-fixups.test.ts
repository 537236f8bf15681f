// RFC 6409 8: Date and Message-ID added when missing, Bcc removed, nothing else touched.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixUpSubmission } from './submission-fixups.js';

const now = new Date('2026-11-25T06:00:00Z');

describe('submission fix-ups', () => {
  it('adds Date and Message-ID to a bare message and keeps the body exact', () => {
    const body = 'Line one\r\n.dot line\r\n\r\nBcc: not a header\r\n\xe9 8-bit\r\n';
    const out = fixUpSubmission(Buffer.from(`From: a@example.com\r\nTo: b@example.com\r\n\r\n${body}`, 'latin1'), 'mail.example.com', now).toString('latin1');
    assert.match(out, /^From: a@example\.com\r\nTo: b@example\.com\r\nDate: Wed, 25 Nov 2026 06:00:00 \+0000\r\nMessage-ID: <[0-9a-f]{24}@mail\.example\.com>\r\n\r\n/);
    assert.ok(out.endsWith(`\r\n\r\n${body}`), 'body untouched, including a Bcc-looking body line');
  });

  it('removes Bcc fields with their folded lines, whatever their case', () => {
    const raw = Buffer.from('From: a@example.com\r\nBCC: hidden@example.com,\r\n  other@example.com\r\nTo: b@example.com\r\nbcc:\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\nHi\r\n');
    assert.equal(fixUpSubmission(raw, 'h').toString(), 'From: a@example.com\r\nTo: b@example.com\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\nHi\r\n');
  });

  it('returns a complete message unchanged, the same buffer', () => {
    const raw = Buffer.from('Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-Id: <x@y>\r\nSubject: Bcc: in subject\r\n\r\nHi\r\n');
    assert.equal(fixUpSubmission(raw, 'h'), raw);
  });

  it('copes with a message that is all header, or has none', () => {
    assert.match(fixUpSubmission(Buffer.from('Subject: only\r\n'), 'h', now).toString(), /^Subject: only\r\nDate: .*\r\nMessage-ID: <.*@h>\r\n$/);
    assert.match(fixUpSubmission(Buffer.from('\r\nbody only\r\n'), 'h', now).toString(), /^Date: .*\r\nMessage-ID: <.*@h>\r\n\r\nbody only\r\n$/);
  });

  it('leaves a header it cannot split cleanly exactly as it came', () => {
    for (const text of ['Subject: no line end', 'Subject: bare LF\nBcc: x@y\n\nbody\n']) {
      const raw = Buffer.from(text);
      assert.equal(fixUpSubmission(raw, 'h'), raw, JSON.stringify(text));
    }
  });
});
