import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeMailboxName, encodeMailboxName } from './mutf7.js';
import { CommandReader, ParseError, parseCommand, type ReaderEvent } from './parser.js';
import { atom } from './value.js';
import { status, untagged, valueText } from './writer.js';

function read(input: (string | Buffer)[], limits = { lineLength: 1000, literal: 100 }): ReaderEvent[] {
  const events: ReaderEvent[] = [];
  const reader = new CommandReader({ lineLength: limits.lineLength, literalSize: () => limits.literal }, (e) => events.push(e));
  for (const piece of input) reader.push(Buffer.isBuffer(piece) ? piece : Buffer.from(piece));
  return events;
}

const parse = (line: string) => parseCommand([line]);

describe('IMAP command reader', () => {
  it('frames commands split anywhere across packets', () => {
    const text = 'a1 NOOP\r\na2 LOGIN {3}\r\nbob {4+}\r\npass\r\n';
    for (let cut = 1; cut < text.length; cut++) {
      const events = read([text.slice(0, cut), text.slice(cut)]);
      assert.deepEqual(
        events.map((e) => e.kind),
        ['command', 'continue', 'command'],
        `cut at ${cut}`,
      );
      const last = events[2] as { chunks: (string | Buffer)[] };
      assert.deepEqual(last.chunks.map(String), ['a2 LOGIN ', 'bob', ' ', 'pass', '']);
    }
  });

  it('refuses an oversized synchronizing literal before reading it, and skips a non-synchronizing one', () => {
    const sync = read(['a1 APPEND INBOX {500}\r\n', 'a2 NOOP\r\n']);
    assert.deepEqual(sync[0], { kind: 'error', problem: 'literal-too-big', tag: 'a1', command: 'APPEND' });
    assert.equal(sync[1]!.kind, 'command');
    const nonSync = read([`a1 APPEND INBOX {500+}\r\n${'x'.repeat(500)}\r\na2 NOOP\r\n`]);
    assert.equal(nonSync.length, 2);
    assert.equal(nonSync[0]!.kind, 'error');
    assert.deepEqual((nonSync[1] as { chunks: string[] }).chunks, ['a2 NOOP']);
  });

  it('caps the literals of one command in all: no "+" past the cap, LITERAL+ ones dropped within it, else closed', () => {
    const events: ReaderEvent[] = [];
    const reader = new CommandReader({ lineLength: 1000, literalSize: () => 100, commandBytes: () => 150 }, (e) => events.push(e));
    reader.push(Buffer.from(`a1 APPEND INBOX {100}\r\n${'x'.repeat(100)} {100}\r\na2 NOOP\r\n`));
    assert.deepEqual(
      events.map((e) => e.kind),
      ['continue', 'error', 'command'],
    );
    assert.deepEqual(events[1], { kind: 'error', problem: 'command-too-big', tag: 'a1', command: 'APPEND' });
    events.length = 0;
    // Non-synchronizing: the refused one is read and dropped, and the next one of the same
    // command too while within the cap; past it the reader gives up on the connection.
    reader.push(Buffer.from(`b1 APPEND INBOX {100+}\r\n${'x'.repeat(100)} {100+}\r\n${'y'.repeat(100)} {10+}\r\n0123456789\r\nb2 NOOP\r\n`));
    assert.deepEqual(events, [
      { kind: 'error', problem: 'command-too-big', tag: 'b1', command: 'APPEND' },
      { kind: 'command', chunks: ['b2 NOOP'] },
    ]);
    events.length = 0;
    reader.push(Buffer.from(`c1 APPEND INBOX {100+}\r\n${'x'.repeat(100)} {100+}\r\n${'y'.repeat(100)} {100+}\r\n`));
    assert.deepEqual(events, [
      { kind: 'error', problem: 'command-too-big', tag: 'c1', command: 'APPEND' },
      { kind: 'error', problem: 'command-too-big', tag: undefined, command: 'APPEND', close: true },
    ]);
    reader.push(Buffer.from('c2 NOOP\r\n'));
    assert.equal(events.length, 2, 'nothing is read after the reader gave up');
  });

  it('refuses a line over the limit once, then carries on with the next line', () => {
    const events = read(['a1 NOOP ', 'x'.repeat(600), 'x'.repeat(600), '\r\na2 NOOP\r\n']);
    assert.deepEqual(events[0], { kind: 'error', problem: 'line-too-long', tag: 'a1', command: 'NOOP' });
    assert.deepEqual((events[1] as { chunks: string[] }).chunks, ['a2 NOOP']);
    assert.equal(events.length, 2);
  });
});

describe('IMAP command parser', () => {
  it('reads atoms, quoted strings, lists, NIL and literals', () => {
    const cmd = parseCommand(['A1 login "bob\\"s" ', Buffer.from('p w'), '']);
    assert.deepEqual(cmd, { tag: 'A1', name: 'LOGIN', args: ['bob"s', Buffer.from('p w')] });
    assert.deepEqual(parse('t STORE 1:* +FLAGS.SILENT (\\Seen $Junk)').args, [atom('1:*'), atom('+FLAGS.SILENT'), [atom('\\Seen'), atom('$Junk')]]);
    assert.deepEqual(parse('t LIST "" %').args, ['', atom('%')]);
    assert.deepEqual(parse('t X (a (b "c") ())').args, [[atom('a'), [atom('b'), 'c'], []]]);
  });

  it('keeps FETCH section specs whole, spaces, quotes and partials included', () => {
    assert.deepEqual(parse('t FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (From "X-]")]<0.100> BODY[])').args, [
      atom('1'),
      [atom('UID'), atom('BODY.PEEK[HEADER.FIELDS (From "X-]")]<0.100>'), atom('BODY[]')],
    ]);
  });

  it('reports malformed commands with their tag when one was read', () => {
    const cases: [string, string | undefined][] = [
      ['', undefined],
      ['*', undefined],
      ['a1', 'a1'],
      ['a1 ', 'a1'],
      ['a1 LOGIN "bob', 'a1'],
      ['a1 LOGIN (a b', 'a1'],
      ['a1 LOGIN a)', 'a1'],
      ['a1 FETCH 1 BODY[HEADER.FIELDS (A "B', 'a1'],
      ['a1 LOGIN "a\\x"', 'a1'],
      ['a1 LOGIN a  b', 'a1'],
    ];
    for (const [line, tag] of cases) {
      assert.throws(
        () => parse(line),
        (err: unknown) => err instanceof ParseError && err.tag === tag,
        line,
      );
    }
  });
});

describe('IMAP response writer', () => {
  it('quotes what it can and sends the rest as literals', () => {
    assert.equal(untagged([1, atom('FETCH'), [atom('FLAGS'), [atom('\\Seen')], atom('X'), 'a"b\\', atom('Y'), null]]).toString(), '* 1 FETCH (FLAGS (\\Seen) X "a\\"b\\\\" Y NIL)\r\n');
    assert.equal(untagged(['café']).toString(), '* {5}\r\ncafé\r\n');
    assert.equal(untagged([Buffer.from('a\r\nb')]).toString(), '* {4}\r\na\r\nb\r\n');
    assert.equal(untagged(['line\nbreak']).toString(), '* {10}\r\nline\nbreak\r\n');
    assert.equal(status('a1', 'OK', 'done', 'READ-WRITE').toString(), 'a1 OK [READ-WRITE] done\r\n');
    assert.equal(valueText([atom('A'), 'b']), '(A "b")');
  });
});

describe('modified UTF-7 mailbox names', () => {
  it('round-trips RFC 3501 5.1.3 examples', () => {
    assert.equal(encodeMailboxName('~peter/mail/台北/日本語'), '~peter/mail/&U,BTFw-/&ZeVnLIqe-');
    assert.equal(decodeMailboxName('~peter/mail/&U,BTFw-/&ZeVnLIqe-'), '~peter/mail/台北/日本語');
    assert.equal(encodeMailboxName('A&B Entwürfe'), 'A&-B Entw&APw-rfe');
    assert.equal(decodeMailboxName('A&-B Entw&APw-rfe'), 'A&B Entwürfe');
    assert.equal(decodeMailboxName('&Jjo!'), undefined);
    assert.equal(decodeMailboxName('&AGE-'), undefined); // "a" must not be encoded
    assert.equal(decodeMailboxName('Entwürfe'), undefined);
  });
});
