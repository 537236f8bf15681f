import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as fx from '../../../test/fixtures/messages.js';
import { atom, type ImapValue } from '../value.js';
import { parseMessage, summaryOf } from './parsed.js';
import { BadCharsetError, keyNeeds, matches, NEED_META, NEED_PARSED, NEED_RAW, parseSearchProgram, searchColumns, SearchSyntaxError, type SearchMessage } from './search.js';

/** Splits a search program written as IMAP text into arguments (atoms, strings, lists). */
function args(text: string): ImapValue[] {
  const stack: ImapValue[][] = [[]];
  const re = /\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([^\s()"]+))/gy;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[1]) stack.push([]);
    else if (m[2]) {
      const list = stack.pop()!;
      stack.at(-1)!.push(list);
    } else if (m[3] !== undefined) stack.at(-1)!.push(m[3].replace(/\\(.)/g, '$1'));
    else stack.at(-1)!.push(atom(m[4]!));
  }
  return stack[0]!;
}

const base = (raw: Buffer, over: Partial<SearchMessage> = {}): SearchMessage => ({
  seq: 1,
  uid: 10,
  flags: [],
  recent: false,
  size: raw.length,
  internalDate: new Date('2003-07-04T23:30:00Z'),
  modseq: 5,
  parsed: parseMessage(raw),
  raw,
  ...over,
});
const scope = { maxSeq: 3, maxUid: 30, now: Date.parse('2003-07-05T00:00:00Z') };
const hit = (program: string, msg: SearchMessage): boolean | undefined => matches(parseSearchProgram(args(program)).key, msg, scope);

describe('SEARCH programs', () => {
  it('parses RETURN, CHARSET and nested keys', () => {
    const p = parseSearchProgram(args('RETURN (MIN COUNT) CHARSET utf-8 OR (SEEN FLAGGED) NOT UID 1:*'), { withReturn: true });
    assert.deepEqual(p.returns, ['MIN', 'COUNT']);
    assert.equal(p.key.kind, 'or');
    assert.deepEqual(parseSearchProgram(args('RETURN () ALL'), { withReturn: true }).returns, ['ALL']);
    assert.equal(parseSearchProgram(args('ALL')).returns, undefined);
  });

  it('refuses other charsets with BADCHARSET and bad syntax with an error', () => {
    assert.throws(() => parseSearchProgram(args('CHARSET ISO-8859-1 ALL')), BadCharsetError);
    for (const bad of ['', 'BOGUS', 'OR SEEN', 'SINCE 1-Foo-2000', 'LARGER x', 'HEADER Subject', 'UID 0', '()', 'RETURN (FOO) ALL']) {
      assert.throws(() => parseSearchProgram(args(bad), { withReturn: true }), SearchSyntaxError, bad);
    }
  });

  it('marks MODSEQ programs, with or without an entry name', () => {
    assert.ok(parseSearchProgram(args('MODSEQ 7')).usesModseq);
    assert.ok(parseSearchProgram(args('OR SEEN (MODSEQ "/flags/\\\\draft" all 620162338)')).usesModseq);
    assert.ok(!parseSearchProgram(args('SEEN')).usesModseq);
  });

  it('knows which keys need content', () => {
    const need = (s: string): number => keyNeeds(parseSearchProgram(args(s)).key);
    assert.equal(need('1:3 UNSEEN LARGER 10 SINCE 1-Jan-2000 UID 5 KEYWORD $x MODSEQ 1 NEW OLD'), NEED_META);
    assert.equal(need('FROM x'), NEED_PARSED);
    assert.equal(need('SENTON 1-Jan-2000'), NEED_PARSED);
    assert.equal(need('OR SEEN BODY x'), NEED_RAW);
  });
});

describe('SEARCH matching', () => {
  const msg = base(fx.attachment, { flags: ['\\Seen', '$Work'] });

  it('matches flags, keywords, NEW/OLD/RECENT, sizes, sets and modseq on metadata alone', () => {
    const meta = { ...msg, parsed: undefined, raw: undefined };
    assert.equal(hit('SEEN', meta), true);
    assert.equal(hit('UNSEEN', meta), false);
    assert.equal(hit('KEYWORD $work', meta), true);
    assert.equal(hit('UNKEYWORD $Other', meta), true);
    assert.equal(hit('NEW', { ...meta, recent: true, flags: [] }), true);
    assert.equal(hit('OLD', meta), true);
    assert.equal(hit('RECENT', meta), false);
    assert.equal(hit(`LARGER ${fx.attachment.length - 1}`, meta), true);
    assert.equal(hit(`SMALLER ${fx.attachment.length}`, meta), false);
    assert.equal(hit('1', meta), true);
    assert.equal(hit('2:*', meta), false);
    assert.equal(hit('UID 5:10', meta), true);
    assert.equal(hit('UID *', meta), false);
    assert.equal(hit('MODSEQ 5', meta), true);
    assert.equal(hit('MODSEQ 6', meta), false);
    assert.equal(hit('NOT DELETED', meta), true);
    assert.equal(hit('OR DELETED (SEEN FLAGGED)', meta), false);
    assert.equal(hit('ALL', meta), true);
    // Content keys are undecided until content is loaded, unless the answer is known anyway.
    assert.equal(hit('FROM john', meta), undefined);
    assert.equal(hit('OR SEEN BODY x', meta), true);
    assert.equal(hit('DELETED BODY x', meta), false);
  });

  it('compares internal dates by UTC day and sent dates by the day in their own zone', () => {
    assert.equal(hit('ON 4-Jul-2003', msg), true);
    assert.equal(hit('SINCE 5-Jul-2003', msg), false);
    assert.equal(hit('BEFORE 5-Jul-2003', msg), true);
    assert.equal(hit('SENTON 1-Jul-2003', msg), true);
    assert.equal(hit('SENTSINCE 2-Jul-2003', msg), false);
    assert.equal(hit('SENTBEFORE 2-Jul-2003', msg), true);
    assert.equal(hit('YOUNGER 3600', msg), true);
    assert.equal(hit('OLDER 3600', msg), false);
  });

  it('matches address and subject keys on decoded text, case-insensitively', () => {
    assert.equal(hit('FROM "doe, john"', msg), true);
    assert.equal(hit('FROM john@EXAMPLE.com', msg), true);
    assert.equal(hit('TO bob@example', msg), true);
    assert.equal(hit('TO team', msg), true);
    assert.equal(hit('CC carol', msg), true);
    assert.equal(hit('BCC carol', msg), false);
    assert.equal(hit('SUBJECT "café REPORT"', msg), true);
    assert.equal(hit('SUBJECT "=?utf-8"', msg), false);
  });

  it('decodes quoted-printable, base64 and charsets for BODY and TEXT', () => {
    assert.equal(hit('BODY "plaît"', msg), true);
    assert.equal(hit('BODY preamble', msg), false);
    assert.equal(hit('TEXT café', msg), true);
    assert.equal(hit('TEXT "Message-ID: <att-1"', msg), true);
    assert.equal(hit('BODY Message-ID', msg), false);
    const nested = base(fx.nested);
    assert.equal(hit('BODY grüße', nested), true);
    assert.equal(hit('BODY needle-inner', nested), true);
    assert.equal(hit('BODY "inner subject"', nested), true);
    assert.equal(hit('BODY iVBOR', nested), false);
    const eight = base(fx.eightBit);
    assert.equal(hit('BODY schöne', eight), true);
    assert.equal(hit('FROM jürgen', eight), true);
    assert.equal(hit('SUBJECT "GRÜSSE"', eight), false);
    assert.equal(hit('SUBJECT "grüße aus"', eight), true);
  });

  it('matches HEADER on any occurrence, an empty string meaning the field exists', () => {
    assert.equal(hit('HEADER Message-ID att-1', msg), true);
    assert.equal(hit('HEADER MIME-Version ""', msg), true);
    assert.equal(hit('HEADER X-Missing ""', msg), false);
    assert.equal(hit('HEADER subject café', msg), true);
  });
});

describe('SEARCH column-wise evaluation', () => {
  const raws = [fx.simple, fx.attachment, fx.nested, fx.eightBit, fx.noBoundary, fx.digest];
  const flagSets = [[], ['\\Seen'], ['\\Flagged'], ['\\Seen', '\\Flagged'], ['\\seen', '$Label1'], ['\\Deleted', '\\Answered']];
  // Twelve messages: every raw message twice with different metadata; the last two without a summary.
  const messages = Array.from({ length: 12 }, (_, i) => {
    const raw = raws[i % raws.length]!;
    return {
      seq: i + 1,
      uid: 10 + i * 3,
      flags: flagSets[(i * 5) % flagSets.length]!,
      recent: i % 4 === 0,
      size: raw.length + i * 100,
      internalDate: new Date(Date.parse('2003-07-01T12:00:00Z') + i * 12 * 3600_000),
      modseq: 3 + i,
      summary: i < 10 ? summaryOf(parseMessage(raw)) : undefined,
    };
  });
  const colScope = { maxSeq: 12, maxUid: 43, now: Date.parse('2003-07-05T00:00:00Z') };
  const programs = [
    'ALL', 'UNSEEN FLAGGED', 'SEEN', 'NOT SEEN', 'KEYWORD $label1', 'UNKEYWORD $Label1', 'RECENT', 'NEW', 'OLD', 'DELETED UNANSWERED',
    'LARGER 2000', 'SMALLER 1500', '2:5,9', '1:*', 'UID 13:25', 'UID 40:*', 'MODSEQ 8', 'SINCE 3-Jul-2003', 'BEFORE 2-Jul-2003', 'ON 4-Jul-2003',
    'OLDER 100000', 'YOUNGER 100000', 'OR SEEN FLAGGED', 'NOT (SEEN FLAGGED)', 'OR (UID 1:20) (NOT LARGER 1000)',
    'SUBJECT test', 'FROM alice', 'TO example', 'SENTSINCE 1-Jan-2003', 'SEEN SUBJECT report', 'OR SUBJECT x SEEN', 'NOT SUBJECT x', '1:9 SUBJECT e',
  ];
  const input = (subset: typeof messages) => ({ entries: subset, seqOf: (i: number) => subset[i]!.seq, recent: (uid: number) => subset.find((m) => m.uid === uid)!.recent });

  it('gives what matches() gives message by message, unknown where a summary is missing', () => {
    for (const program of programs) {
      const key = () => parseSearchProgram(args(program)).key;
      const column = searchColumns(key(), input(messages), colScope);
      assert.ok(column, program);
      const each = messages.map((m) => matches(key(), m, colScope));
      assert.deepEqual([...column].map((v) => (v === 2 ? undefined : v === 1)), each, program);
    }
    // Some of these answer without the summaries, some are unknown on the last two messages.
    assert.equal(searchColumns(parseSearchProgram(args('SUBJECT test')).key, input(messages), colScope)![11], 2);
    assert.equal(searchColumns(parseSearchProgram(args('SEEN SUBJECT test')).key, input(messages), colScope)![11], messages[11]!.flags.includes('\\Seen') ? 2 : 0);
  });

  it('leaves keys that need the message content to the full search', () => {
    for (const program of ['BODY hello', 'TEXT x', 'HEADER X-Foo ""', 'OR SEEN BODY x', 'NOT TEXT y']) {
      assert.equal(searchColumns(parseSearchProgram(args(program)).key, input(messages), colScope), undefined, program);
    }
  });
});
