// Dot-stuffing and the end-of-data search (RFC 5321 4.5.2 and 4.1.1.4, RFC 1939 3), as the POP3
// server, the gateway's fronts and our SMTP client use them. The fuzzed search is in
// src/gateway/framing-fuzz.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dataEnd, dotStuffed, tailAfter, terminatorAfter, unstuffed, unstuffLine } from './dot-stuffing.js';

const stuff = (data: string, chunkSize?: number) => Buffer.concat([...dotStuffed(Buffer.from(data), chunkSize)]).toString();

/** Feeds `wire` in reads cut at `cuts`, as a DATA or RETR loop does; where the data ends in `wire`, or -1. */
function endIn(wire: string, cuts: number[]): number {
  let tail: Buffer = Buffer.from('\r\n'); // the CRLF that ended the command or status line
  let offset = 0;
  const bounds = [...cuts, wire.length];
  for (let i = 0; i < bounds.length; i++) {
    const chunk = Buffer.from(wire.slice(offset, bounds[i]), 'latin1');
    const upto = dataEnd(tail, chunk);
    if (upto >= 0) return offset + upto;
    tail = tailAfter(tail, chunk);
    offset = bounds[i]!;
  }
  return -1;
}

describe('dot-stuffing', () => {
  it('stuffs a dot at the start of every line, also across chunk boundaries', () => {
    const message = '.a\r\nb.\r\n.\r\n..c\nd\n.e';
    const stuffed = '..a\r\nb.\r\n..\r\n...c\nd\n..e';
    assert.equal(stuff(message), stuffed);
    for (const chunkSize of [1, 2, 3, 4, 5, 7]) assert.equal(stuff(message, chunkSize), stuffed, `chunks of ${chunkSize}`);
  });

  it('ends with CRLF.CRLF, adding a CRLF to data that lacks one', () => {
    assert.equal(terminatorAfter(Buffer.from('x\r\n')).toString(), '.\r\n');
    assert.equal(terminatorAfter(Buffer.from('x')).toString(), '\r\n.\r\n');
    assert.equal(terminatorAfter(Buffer.alloc(0)).toString(), '\r\n.\r\n');
  });

  it('undoing the stuffing gives the data back, for any chunk size', () => {
    let state = 7;
    const next = () => (state = (state * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
    const alphabet = ['.', '.', 'a', '\r\n', '\n', '\r', '\u00e9'];
    for (let round = 0; round < 300; round++) {
      const message = Buffer.from(Array.from({ length: Math.floor(next() * 60) }, () => alphabet[Math.floor(next() * alphabet.length)]).join(''));
      const stuffed = Buffer.concat([...dotStuffed(message, 1 + Math.floor(next() * 8))]);
      // A reader removes one leading dot from every line (lines end at LF).
      const lines = stuffed.toString('latin1').split(/(?<=\n)/);
      for (const line of lines) if (line.startsWith('.')) assert.ok(line.startsWith('..'), `round ${round}: unstuffed line ${JSON.stringify(line)}`);
      assert.equal(lines.map(unstuffLine).join(''), message.toString('latin1'), `round ${round}`);
      assert.ok(unstuffed(stuffed).equals(message), `round ${round}: unstuffed whole`);
    }
  });
});

describe('end of dot-terminated data', () => {
  const body = 'Subject: x\r\n\r\nline\r\n..stuffed\r\n.\r\nRSET\r\n';
  const end = body.indexOf('\r\n.\r\n') + 5;

  it('is found in one read', () => {
    assert.equal(endIn(body, []), end);
  });

  it('is found wherever two reads split it, and in reads of one byte', () => {
    for (let cut = 1; cut < body.length; cut++) assert.equal(endIn(body, [cut]), end, `cut at ${cut}`);
    const everyByte = Array.from({ length: body.length - 1 }, (_, i) => i + 1);
    assert.equal(endIn(body, everyByte), end);
  });

  it('ends empty data right after the command line', () => {
    assert.equal(endIn('.\r\nQUIT\r\n', []), 3);
    assert.equal(endIn('.\r\nQUIT\r\n', [1]), 3);
  });

  it('is not a dot-stuffed line or a dot without its CRLFs', () => {
    assert.equal(endIn('a\r\n..\r\nb\r\n.x\r\n', [4, 5, 6]), -1);
    assert.equal(endIn('a\n.\nb', [2]), -1);
  });
});
