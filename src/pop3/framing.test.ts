import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { topOf, transmittedSize } from './framing.js';

describe('POP3 framing', () => {
  it('counts the CRLF added to a message that lacks one in its size', () => {
    assert.equal(transmittedSize(10, true), 10);
    assert.equal(transmittedSize(10, false), 12);
  });

  it('TOP takes the header, the blank line and n body lines', () => {
    const message = Buffer.from('A: 1\r\nB: 2\r\n\r\nl1\r\nl2\nl3\r\n');
    assert.equal(topOf(message, 0).toString(), 'A: 1\r\nB: 2\r\n\r\n');
    assert.equal(topOf(message, 2).toString(), 'A: 1\r\nB: 2\r\n\r\nl1\r\nl2\n');
    assert.equal(topOf(message, 9).toString(), message.toString());
    assert.equal(topOf(Buffer.from('A: 1\r\nB: 2'), 0).toString(), 'A: 1\r\nB: 2', 'no body at all');
  });
});
