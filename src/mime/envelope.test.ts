import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as fx from '../../test/fixtures/messages.js';
import { parseAddressList } from './address.js';
import { addressList, buildEnvelope } from './envelope.js';
import { HeaderMap } from './header.js';

const addr = (value: string): string => fx.imapText(addressList(value));
const envelope = (raw: Buffer): string => fx.imapText(buildEnvelope(HeaderMap.parse(raw)));

describe('ENVELOPE', () => {
  it('matches the RFC 3501 example shape, reply-to and sender defaulting to from', () => {
    const raw = fx.crlf(`Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)
From: Terry Gray <gray@cac.washington.edu>
Subject: IMAP4rev1 WG mtg summary and minutes
To: imap@cac.washington.edu
cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>
Message-Id: <B27397-0100000@cac.washington.edu>

body
`);
    assert.equal(
      envelope(raw),
      '("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" (("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) ((NIL NIL "minutes" "CNRI.Reston.VA.US") ("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL "<B27397-0100000@cac.washington.edu>")',
    );
  });

  it('keeps explicit sender and reply-to, treats empty ones as absent, and leaves values undecoded', () => {
    const raw = fx.crlf(`From: =?utf-8?q?J=C3=BCrgen?= <j@example.de>
Sender: sec@example.de
Reply-To:
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=
In-Reply-To: <a@b>
Bcc: hidden@example.de

x
`);
    assert.equal(
      envelope(raw),
      '(NIL "=?utf-8?q?Gr=C3=BC=C3=9Fe?=" (("=?utf-8?q?J=C3=BCrgen?=" NIL "j" "example.de")) ((NIL NIL "sec" "example.de")) (("=?utf-8?q?J=C3=BCrgen?=" NIL "j" "example.de")) NIL NIL ((NIL NIL "hidden" "example.de")) "<a@b>" NIL)',
    );
  });

  it('gives NIL for everything of a message without headers', () => {
    assert.equal(envelope(Buffer.from('\r\nbody')), '(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)');
  });

  it('unfolds folded header lines', () => {
    const raw = Buffer.from('Subject: one\r\n two\r\n\tthree\r\nTo: a@b,\r\n c@d\r\n\r\n');
    const env = buildEnvelope(HeaderMap.parse(raw));
    assert.equal(env[1], 'one two\tthree');
    assert.equal(fx.imapText(env[5]), '((NIL NIL "a" "b") (NIL NIL "c" "d"))');
  });
});

describe('address lists', () => {
  it('parses groups, including empty ones (RFC 3501 group markers)', () => {
    assert.equal(addr('undisclosed-recipients:;'), '((NIL NIL "undisclosed-recipients" NIL) (NIL NIL NIL NIL))');
    assert.equal(
      addr('Team: a@x, "B b" <b@x>; c@y'),
      '((NIL NIL "Team" NIL) (NIL NIL "a" "x") ("B b" NIL "b" "x") (NIL NIL NIL NIL) (NIL NIL "c" "y"))',
    );
  });

  it('keeps quoted display names unquoted and quoted local parts quoted', () => {
    assert.equal(addr('"Doe, John" <john@x>'), '(("Doe, John" NIL "john" "x"))');
    assert.equal(addr('"john smith"@example.com'), '((NIL NIL "\\"john smith\\"" "example.com"))');
    assert.equal(addr('"Q \\"T\\" R" <q@x>'), '(("Q \\"T\\" R" NIL "q" "x"))');
    assert.equal(addr('John Q. Public <jqp@x>'), '(("John Q. Public" NIL "jqp" "x"))');
  });

  it('takes a comment as the name when there is no phrase', () => {
    assert.equal(addr('carol@example.com (Carol C)'), '(("Carol C" NIL "carol" "example.com"))');
    assert.equal(addr('<d@x> (Dee)'), '(("Dee" NIL "d" "x"))');
  });

  it('keeps source routes in the adl field', () => {
    assert.equal(addr('Route <@a.example,@b.example:user@c.example>'), '(("Route" "@a.example,@b.example" "user" "c.example"))');
  });

  it('fills in placeholders for missing mailbox or host rather than NIL', () => {
    assert.equal(addr('postmaster'), '((NIL NIL "postmaster" "MISSING_DOMAIN"))');
    assert.equal(addr('Name <>'), '(("Name" NIL "MISSING_MAILBOX" "MISSING_DOMAIN"))');
  });

  it('gives NIL for an empty list and recovers from garbage', () => {
    assert.equal(addr(''), 'NIL');
    assert.equal(addr(' , ,'), 'NIL');
    assert.doesNotThrow(() => parseAddressList('"unterminated <a@b> (unclosed <<>>@@::;;,,'));
    assert.equal(addr('a@b, <c@d'), '((NIL NIL "a" "b") (NIL NIL "c" "d"))');
    assert.equal(addr('[1.2.3.4]'), '((NIL NIL "[1.2.3.4]" "MISSING_DOMAIN"))');
    assert.equal(addr('x@[1.2.3.4]'), '((NIL NIL "x" "[1.2.3.4]"))');
  });
});
