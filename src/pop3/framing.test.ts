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

describe('POP3 dot-stuffing against random input', () => {
  it('undoing the stuffing gives the message back, for any chunk size', () => {
    let state = 7;
    const next = () => (state = (state * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
    const alphabet = ['.', '.', 'a', '\r\n', '\n', '\r', '\u00e9'];
    for (let round = 0; round < 300; round++) {
      const message = Buffer.from(Array.from({ length: Math.floor(next() * 60) }, () => alphabet[Math.floor(next() * alphabet.length)]).join(''));
      const stuffed = Buffer.concat([...dotStuffed(message, 1 + Math.floor(next() * 8))]);
      // A reader removes one leading dot from every line (lines end at LF).
      const lines = stuffed.toString('latin1').split(/(?<=\n)/);
      for (const line of lines) if (line.startsWith('.')) assert.ok(line.startsWith('..'), `round ${round}: unstuffed line ${JSON.stringify(line)}`);
      const unstuffed = lines.map((line) => (line.startsWith('.') ? line.slice(1) : line)).join('');
      assert.equal(unstuffed, message.toString('latin1'), `round ${round}`);
    }
  });
});
