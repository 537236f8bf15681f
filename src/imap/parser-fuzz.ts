// Properties of the IMAP command reader and parser under hostile input, for fast-check: the
// suite runs them briefly with a fixed seed (parser-fuzz.test.ts), scripts/fuzz.ts for as long
// and with whatever seed one likes. Whatever the bytes: nothing is thrown but ParseError,
// nothing is held beyond the limits, and every byte is consumed.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CommandReader, parseCommand, ParseError, type ReaderEvent } from './parser.js';

export const LIMITS = { lineLength: 1024, literal: 4096, command: 8192 };

const NAMES = ['LOGIN', 'SELECT', 'EXAMINE', 'FETCH', 'UID', 'STORE', 'APPEND', 'LIST', 'LSUB', 'SEARCH', 'STATUS', 'CREATE', 'RENAME', 'COMPRESS', 'AUTHENTICATE', 'IDLE', 'NOOP', 'ID', 'ENABLE', 'SORT', 'THREAD', 'COPY', 'MOVE', 'CAPABILITY', 'X'];
const ATOMS = ['NIL', 'INBOX', '1:*', '*', '%', 'BODY[]', 'BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>', '(FLAGS)', '\\Seen', '+FLAGS', 'RETURN', 'CHARSET', 'UTF-8', '"', '\\', '[', ']', '(', ')', '{', '}', '{5}', '{3+}', '{99999999999}', '~{2}', '&AAk-', 'é', '\u0000', '\t'];

/** A command as an IMAP client might write it, literals and all, possibly broken. */
export const commandText: fc.Arbitrary<string> = fc
  .tuple(
    fc.oneof(fc.constantFrom('a1', 'A.2', '*', '+', '', 'tag{1}'), fc.string({ maxLength: 6 })),
    fc.constantFrom(...NAMES),
    fc.array(
      fc.oneof(
        fc.constantFrom(...ATOMS),
        fc.string({ maxLength: 12 }).map((s) => `"${s.replace(/["\\]/g, '\\$&')}"`),
        fc.string({ maxLength: 12 }).map((s) => `"${s}"`),
        fc.string({ maxLength: 40 }).map((s) => `{${Buffer.byteLength(s)}}\r\n${s}`),
        fc.string({ maxLength: 40 }).map((s) => `{${Buffer.byteLength(s)}+}\r\n${s}`),
        fc.nat(20).map((n) => '('.repeat(n)),
        fc.nat(20).map((n) => ')'.repeat(n)),
        fc.string({ maxLength: 8 }),
      ),
      { maxLength: 12 },
    ),
  )
  .map(([tag, name, args]) => `${tag} ${name}${args.map((a) => ` ${a}`).join('')}\r\n`);

/** A command, then bytes of it replaced, dropped or repeated. */
export const mutatedCommand: fc.Arbitrary<Buffer> = fc
  .tuple(commandText, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'drop', 'insert', 'repeat')), { maxLength: 6 }))
  .map(([text, edits]) => {
    let bytes = [...Buffer.from(text, 'utf8')];
    for (const [at, value, kind] of edits) {
      const i = bytes.length === 0 ? 0 : at % bytes.length;
      if (kind === 'set') bytes[i] = value;
      else if (kind === 'drop') bytes.splice(i, 1);
      else if (kind === 'insert') bytes.splice(i, 0, value);
      else bytes = [...bytes.slice(0, i), ...bytes.slice(i, i + 16), ...bytes.slice(i)];
    }
    return Buffer.from(bytes);
  });

/** Input as it arrives: pieces of random, grammar-made and mutated commands, cut anywhere. */
export const wireInput: fc.Arbitrary<Buffer[]> = fc
  .array(fc.oneof(mutatedCommand, commandText.map((t) => Buffer.from(t)), fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)), fc.constantFrom(Buffer.from('('.repeat(900) + '\r\n'), Buffer.from(`a APPEND INBOX {${LIMITS.literal}+}\r\n`), Buffer.from('x'.repeat(1500)))), { maxLength: 20 })
  .chain((parts) => {
    const all = Buffer.concat(parts);
    return fc.array(fc.nat(Math.max(0, all.length)), { maxLength: 8 }).map((cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const pieces: Buffer[] = [];
      let from = 0;
      for (const p of points) {
        pieces.push(all.subarray(from, p));
        from = p;
      }
      pieces.push(all.subarray(from));
      return pieces;
    });
  });

/** Parses one framed command: a Command, or a ParseError and nothing else. */
export function parseOrProtocolError(chunks: (string | Buffer)[]): void {
  try {
    const command = parseCommand(chunks);
    assert.equal(typeof command.tag, 'string');
    assert.ok(command.tag.length > 0);
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
  }
}

/** The property: push the pieces through a reader, parse every command it frames. */
export function readerProperty(pieces: Buffer[]): void {
  const events: ReaderEvent[] = [];
  const reader = new CommandReader({ lineLength: LIMITS.lineLength, literalSize: () => LIMITS.literal, commandBytes: () => LIMITS.command }, (event) => events.push(event));
  let input = 0;
  for (const piece of pieces) {
    reader.push(piece);
    input += piece.length;
    // What the reader holds between pushes: at most a line being read and a command's literals.
    const held = reader as unknown as { buf: Buffer; chunks: (string | Buffer)[]; literal?: { parts: Buffer[] } };
    assert.ok(held.buf.length <= LIMITS.lineLength + piece.length, `holds ${held.buf.length} bytes of a line`);
    const literalBytes = held.chunks.reduce((n, c) => n + (Buffer.isBuffer(c) ? c.length : 0), 0) + (held.literal?.parts.reduce((n, p) => n + p.length, 0) ?? 0);
    assert.ok(literalBytes <= LIMITS.command, `holds ${literalBytes} literal bytes`);
  }
  let framed = 0;
  for (const event of events) {
    if (event.kind !== 'command') continue;
    for (const chunk of event.chunks) {
      // Line text is decoded UTF-8: at most one character per byte it came from.
      framed += chunk.length;
      if (typeof chunk === 'string') assert.ok(chunk.length <= LIMITS.lineLength, 'a line over the limit was framed');
    }
    parseOrProtocolError(event.chunks);
  }
  assert.ok(framed <= input, `framed ${framed} bytes out of ${input}`);
}

/** The properties with fast-check's settings; `seconds` caps the run. */
export function fuzzParser(options: { seed: number; runs: number; seconds: number }): void {
  const settings = { seed: options.seed, numRuns: options.runs, interruptAfterTimeLimit: options.seconds * 1000, markInterruptAsFailure: false };
  fc.assert(fc.property(commandText, (text) => parseOrProtocolError([text.replace(/\r\n$/, '')])), settings);
  fc.assert(fc.property(mutatedCommand, (bytes) => parseOrProtocolError([bytes.toString('utf8')])), settings);
  fc.assert(fc.property(wireInput, readerProperty), settings);
}
