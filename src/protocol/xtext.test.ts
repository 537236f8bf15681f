import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeXtext, encodeXtext } from './xtext.js';

describe('xtext (RFC 3461 4)', () => {
  it('encodes UTF-8 bytes, "+", "=" and controls, and decodes them back', () => {
    assert.equal(encodeXtext('bob@example.com'), 'bob@example.com');
    assert.equal(encodeXtext('€'), '+E2+82+AC');
    assert.equal(encodeXtext('a+b=c d'), 'a+2Bb+3Dc+20d');
    assert.equal(encodeXtext('\r\n\0'), '+0D+0A+00');
    for (const value of ['jürgen@exämple.com', '€+=', 'plain', '😀 x']) assert.equal(decodeXtext(encodeXtext(value)), value);
  });

  it('refuses what is not xtext', () => {
    assert.equal(decodeXtext('+2'), undefined);
    assert.equal(decodeXtext('+zz'), undefined);
    assert.equal(decodeXtext('a=b'), undefined);
    assert.equal(decodeXtext('a b'), undefined);
    assert.equal(decodeXtext('+e2'), undefined, 'hex digits are upper case');
  });
});
