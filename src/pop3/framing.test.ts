import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dotStuffed, terminatorAfter, topOf, transmittedSize } from './framing.js';

const stuff = (data: string, chunkSize?: number) => Buffer.concat([...dotStuffed(Buffer.from(data), chunkSize)]).toString();

describe('POP3 framing', () => {
  it('stuffs a dot at the start of every line, also across chunk boundaries', () => {
    const message = '.a\r\nb.\r\n.\r\n..c\nd\n.e';
    const stuffed = '..a\r\nb.\r\n..\r\n...c\nd\n..e';
    assert.equal(stuff(message), stuffed);
    for (const chunkSize of [1, 2, 3, 4, 5, 7]) assert.equal(stuff(message, chunkSize), stuffed, `chunks of ${chunkSize}`);
  });

  it('ends with CRLF.CRLF, adding a CRLF to data that lacks one, and counts it in the size', () => {
    assert.equal(terminatorAfter(Buffer.from('x\r\n')).toString(), '.\r\n');
    assert.equal(terminatorAfter(Buffer.from('x')).toString(), '\r\n.\r\n');
    assert.equal(terminatorAfter(Buffer.alloc(0)).toString(), '\r\n.\r\n');
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
