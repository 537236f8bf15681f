import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LineReader, type LineEvent } from './line-reader.js';

const text = (events: LineEvent[]) => events.map((e) => (e.kind === 'line' ? e.line.toString() : '<too-long>'));

describe('POP3 LineReader', () => {
  it('splits CRLF and bare LF lines across chunk boundaries', () => {
    const reader = new LineReader(512);
    assert.deepEqual(text(reader.push(Buffer.from('STAT\r\nLI'))), ['STAT']);
    assert.deepEqual(text(reader.push(Buffer.from('ST 1\r'))), []);
    assert.deepEqual(text(reader.push(Buffer.from('\nNOOP\nQUIT\r\n'))), ['LIST 1', 'NOOP', 'QUIT']);
  });

  it('reports an overlong line once and never holds more than the limit', () => {
    const reader = new LineReader(10);
    const events: LineEvent[] = [];
    for (let i = 0; i < 100; i++) {
      events.push(...reader.push(Buffer.from('x'.repeat(1000))));
      assert.ok(reader['pendingLength'] <= 11, 'bounded buffer');
    }
    events.push(...reader.push(Buffer.from('yyy\r\nNOOP\r\n')));
    assert.deepEqual(text(events), ['<too-long>', 'NOOP']);
  });

  it('allows a line of exactly the limit, CR excluded, split before its LF', () => {
    const reader = new LineReader(10);
    assert.deepEqual(text(reader.push(Buffer.from('0123456789\r'))), []);
    assert.deepEqual(text(reader.push(Buffer.from('\n01234567890\r\n'))), ['0123456789', '<too-long>']);
  });

  it('forgets buffered input on reset (STLS)', () => {
    const reader = new LineReader(512);
    reader.push(Buffer.from('USER injected'));
    reader.reset();
    assert.deepEqual(text(reader.push(Buffer.from('CAPA\r\n'))), ['CAPA']);
  });
});

describe('POP3 LineReader against random input', () => {
  // A small deterministic generator, so a failure can be replayed.
  function random(seed: number): () => number {
    let state = seed;
    return () => {
      state = (state * 1103515245 + 12345) & 0x7fffffff;
      return state / 0x80000000;
    };
  }

  it('gives the same lines however the stream is cut, and flags exactly the overlong ones', () => {
    const next = random(42);
    const limit = 40;
    for (let round = 0; round < 200; round++) {
      const lines: Buffer[] = [];
      for (let i = 0; i < 20; i++) {
        const length = Math.floor(next() * 90);
        lines.push(Buffer.from(Array.from({ length }, () => 0x20 + Math.floor(next() * 0x5f))));
      }
      const input = Buffer.concat(lines.flatMap((line) => [line, Buffer.from(next() < 0.8 ? '\r\n' : '\n')]));
      const expected = lines.map((line) => (line.length > limit ? '<too-long>' : line.toString()));
      const reader = new LineReader(limit);
      const events: LineEvent[] = [];
      for (let at = 0; at < input.length; ) {
        const size = 1 + Math.floor(next() * 30);
        events.push(...reader.push(input.subarray(at, at + size)));
        at += size;
      }
      assert.deepEqual(text(events), expected, `round ${round}`);
    }
  });
});
