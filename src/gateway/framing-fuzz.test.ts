// The gateway's framing fuzzed (issue 17): the DATA terminator search of the SMTP front and the
// IMAP front's framing of a node's responses, over any bytes cut at any points. Fixed seed, a
// few seconds at most; a failure prints the smallest case fast-check found.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ResponseReader } from './imap-front.js';
import { dataEnd, tailAfter } from '../protocol/dot-stuffing.js';

const RUNS = { seed: 17, numRuns: 2000, interruptAfterTimeLimit: 3000 } as const;

/** Splits bytes at the given points (any order, repeats allowed). */
function cut(bytes: Buffer, points: number[]): Buffer[] {
  const bounds = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const at of [...bounds, bytes.length]) {
    out.push(bytes.subarray(from, at));
    from = at;
  }
  return out;
}

describe('gateway framing under fuzzing', () => {
  it('finds the end of DATA where a plain search of the whole stream does, however it is cut (RFC 5321 4.1.1.4)', () => {
    const byte = fc.constantFrom(13, 10, 46, 97); // CR, LF, ".", "a": the terminator's alphabet and one other
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 8 }), (codes, points) => {
        const wire = Buffer.from(codes);
        // The CRLF that ended the DATA command comes before the first byte of the message.
        const whole = Buffer.concat([Buffer.from('\r\n'), wire]);
        const at = whole.indexOf('\r\n.\r\n');
        const expected = at < 0 ? -1 : at + 5 - 2;
        let tail: Buffer = Buffer.from('\r\n');
        let offset = 0;
        let found = -1;
        for (const chunk of cut(wire, points)) {
          const upto = dataEnd(tail, chunk);
          if (upto >= 0) {
            found = offset + upto;
            break;
          }
          tail = tailAfter(tail, chunk);
          offset += chunk.length;
        }
        assert.equal(found, expected);
      }),
      RUNS,
    );
  });

  it('frames a node\'s responses, literals inside them, the same however the reads are cut (RFC 3501 7)', () => {
    // A response: a line, optionally ending in a literal announcement, whose bytes may hold anything
    // (CRLF, "{5}" look-alikes), then the rest of the line.
    const literal = fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes));
    const text = fc.stringMatching(/^[ -z|~]{0,20}$/).map((s) => s.replace(/\{\d*\}?$/, ''));
    const response = fc
      .tuple(text, fc.array(fc.tuple(literal, text), { maxLength: 3 }))
      .map(([head, pieces]) => {
        const parts = [Buffer.from(`* ${head}`)];
        for (const [bytes, rest] of pieces) parts.push(Buffer.from(` {${bytes.length}}\r\n`), bytes, Buffer.from(rest));
        parts.push(Buffer.from('\r\n'));
        return { head: `* ${head}${pieces.length ? ` {${pieces[0]![0].length}}` : ''}`, bytes: Buffer.concat(parts) };
      });
    fc.assert(
      fc.property(fc.array(response, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), (responses, points) => {
        const wire = Buffer.concat(responses.map((r) => r.bytes));
        const seen: { head: string; bytes: Buffer }[] = [];
        let streamed: Buffer[] = [];
        const reader = new ResponseReader((out) => {
          if (out.kind === 'response') return void seen.push({ head: out.head, bytes: Buffer.from(out.bytes) });
          streamed.push(Buffer.from(out.bytes));
          if (out.end) {
            seen.push({ head: out.head, bytes: Buffer.concat(streamed) });
            streamed = [];
          }
        });
        for (const chunk of cut(wire, points)) reader.push(chunk);
        assert.equal(seen.length, responses.length);
        seen.forEach((got, i) => {
          assert.equal(got.head, responses[i]!.head);
          assert.ok(got.bytes.equals(responses[i]!.bytes), `response ${i} bytes`);
        });
      }),
      RUNS,
    );
  });
});
