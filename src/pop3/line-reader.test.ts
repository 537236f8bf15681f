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
