// The gateway's DATA terminator search (RFC 5321 4.1.1.4): CRLF . CRLF found wherever the reads
// split it, never a dot-stuffed line or a terminator's look-alike.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dataEnd, tailAfter } from './smtp-front.js';

/** Feeds `wire` in reads cut at `cuts`, as the DATA loop does; where the data ends in `wire`, or -1. */
function endIn(wire: string, cuts: number[]): number {
  let tail: Buffer = Buffer.from('\r\n'); // the CRLF that ended the DATA command
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

describe('gateway DATA terminator', () => {
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

  it('ends an empty message right after the DATA line', () => {
    assert.equal(endIn('.\r\nQUIT\r\n', []), 3);
    assert.equal(endIn('.\r\nQUIT\r\n', [1]), 3);
  });

  it('is not a dot-stuffed line or a dot without its CRLFs', () => {
    assert.equal(endIn('a\r\n..\r\nb\r\n.x\r\n', [4, 5, 6]), -1);
    assert.equal(endIn('a\n.\nb', [2]), -1);
  });
});
