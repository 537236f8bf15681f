// The IMAP command reader and parser fuzzed with a fixed seed, a few seconds at most.
// Longer runs and other seeds: node --import tsx scripts/fuzz.ts --seed N --seconds S.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzzParser, parseOrProtocolError, readerProperty } from './parser-fuzz.js';
import { parseCommand } from './parser.js';

describe('IMAP parser under fuzzing', () => {
  it('throws nothing but ParseError, holds nothing beyond its limits, and frames no more than it was given', () => {
    fuzzParser({ seed: 17, runs: 400, seconds: 2 });
  });

  it('takes deep nesting and long runs of brackets as a protocol error', () => {
    parseOrProtocolError([`a FETCH 1 ${'('.repeat(100_000)}`]);
    assert.throws(() => parseCommand([`a SEARCH ${'('.repeat(101)}ALL${')'.repeat(101)}`]), /nested deeper than 100/);
    assert.equal(parseCommand([`a SEARCH ${'('.repeat(100)}ALL${')'.repeat(100)}`]).args.length, 1);
    parseOrProtocolError([`a FETCH 1 BODY${'['.repeat(100_000)}`]);
    readerProperty([Buffer.from(`a LIST ${'('.repeat(1000)}\r\n`), Buffer.from('{5+}\r\n{5+}\r\n')]);
  });
});
