// IMAP command input (RFC 3501 2.2, 4, 9): a streaming reader that frames commands out of
// socket bytes (lines, synchronizing literals with their "+" continuation, LITERAL+ and
// LITERAL- non-synchronizing literals, RFC 7888) with limits checked as bytes arrive, and a
// tokenizer that turns one framed command into a tag, a name and a tree of values.
import { atom, type ImapValue } from './value.js';

/** A framed command: line text pieces with each literal between the line it ended and the next. */
export type Chunks = (string | Buffer)[];

export type ReaderEvent =
  | { kind: 'command'; chunks: Chunks }
  /** A synchronizing literal was accepted: the client waits for "+". */
  | { kind: 'continue' }
  /** The command was refused while being read; the rest of it is skipped. */
  | { kind: 'error'; problem: ReaderProblem; tag?: string; command?: string; close?: boolean };

export type ReaderProblem = 'line-too-long' | 'literal-too-big' | 'command-too-big' | 'too-many-literals';

export interface ReaderLimits {
  lineLength: number;
  /** A longer limit for the lines of some commands (ID, RFC 2971: 30 pairs of up to 1024 octets), by the line's start. */
  longLine?: { length: number; allowed(head: string): boolean };
  /** Largest literal accepted for a command, by its first line (APPEND gets the message size). */
  literalSize(firstLine: string): number;
  /**
   * The most literal bytes one command may carry in all, by its first line; also how much of a
   * refused command's non-synchronizing literals is read and dropped before the connection is
   * given up (the error then has `close`). Unset: MAX_LITERALS times literalSize.
   */
  commandBytes?(firstLine: string): number;
}

const EMPTY = Buffer.alloc(0);
const MAX_LITERALS = 100;
const LITERAL_MARK = /\{(\d{1,15})(\+)?\}$/;

export class CommandReader {
  private buf: Buffer = EMPTY;
  private chunks: Chunks = [];
  private literal: { remaining: number; remainingTotal: number; parts: Buffer[]; discard: boolean } | undefined;
  /** Discarding bytes up to the end of the current line after a refusal. */
  private skipping = false;
  /** Literal bytes taken into the command being read. */
  private taken = 0;
  /** Of a refused command: literal bytes that may still be dropped unread, and its first line. */
  private discardBudget = 0;
  private refusedLine = '';
  /** Gave up on the connection: everything after is ignored. */
  private dead = false;

  constructor(
    private readonly limits: ReaderLimits,
    private readonly emit: (event: ReaderEvent) => void,
  ) {}

  push(data: Buffer): void {
    if (this.dead) return;
    const buf = this.buf.length > 0 ? Buffer.concat([this.buf, data]) : data;
    let pos = 0;
    for (;;) {
      if (this.literal) {
        const take = Math.min(this.literal.remaining, buf.length - pos);
        // Most of a socket read is kept as it is; a small piece of one is copied, so as not to hold the rest.
        if (take > 0 && !this.literal.discard) this.literal.parts.push(take * 2 >= buf.length ? buf.subarray(pos, pos + take) : Buffer.from(buf.subarray(pos, pos + take)));
        this.literal.remaining -= take;
        pos += take;
        if (this.literal.remaining > 0) break;
        const done = this.literal;
        this.literal = undefined;
        if (done.discard) {
          this.skipping = true;
          this.chunks = [];
        } else {
          this.taken += done.remainingTotal;
          this.chunks.push(done.parts.length === 1 ? done.parts[0]! : Buffer.concat(done.parts));
        }
        continue;
      }
      const nl = buf.indexOf(10, pos);
      if (nl < 0) {
        if (this.tooLong(buf, pos, buf.length - pos)) {
          if (!this.skipping) this.refuse('line-too-long', buf.subarray(pos, pos + 200).toString('latin1'));
          this.skipping = true;
          pos = buf.length;
        }
        break;
      }
      let end = nl;
      if (end > pos && buf[end - 1] === 13) end--;
      const lineBytes = buf.subarray(pos, end);
      pos = nl + 1;
      if (this.skipping) {
        // The refused command goes on past a non-synchronizing literal: drop that too, within
        // the budget. A synchronizing one ends it: the client waits for a "+" it never gets.
        const mark = LITERAL_MARK.exec(lineBytes.subarray(Math.max(0, lineBytes.length - 20)).toString('latin1'));
        if (mark?.[2] === '+') {
          if (!this.discard(Number(mark[1]))) break;
          continue;
        }
        this.skipping = false;
        this.chunks = [];
        this.taken = 0;
        continue;
      }
      if (this.tooLong(lineBytes, 0, lineBytes.length)) {
        this.refuse('line-too-long', lineBytes.subarray(0, 200).toString('latin1'));
        continue;
      }
      const line = lineBytes.toString('utf8');
      const mark = LITERAL_MARK.exec(line);
      if (!mark) {
        this.chunks.push(line);
        const chunks = this.chunks;
        this.chunks = [];
        this.taken = 0;
        this.emit({ kind: 'command', chunks });
        continue;
      }
      this.chunks.push(line.slice(0, mark.index));
      const size = Number(mark[1]);
      const nonSync = mark[2] === '+';
      const first = this.chunks[0] as string;
      const problem =
        this.chunks.length / 2 >= MAX_LITERALS
          ? 'too-many-literals'
          : size > this.limits.literalSize(first)
            ? 'literal-too-big'
            : this.taken + size > this.commandBytes(first)
              ? 'command-too-big'
              : undefined;
      if (problem) {
        // Refused before any of it is read: a synchronizing literal never gets its "+", so the
        // client does not send it; a non-synchronizing one is read and dropped (RFC 7888 4),
        // or, past what the command could have carried, the connection is closed.
        const close = nonSync && size > this.commandBytes(first);
        this.refuse(problem, first, close);
        if (close) {
          this.dead = true;
          break;
        }
        if (nonSync) this.discard(size);
        continue;
      }
      if (!nonSync) this.emit({ kind: 'continue' });
      this.literal = { remaining: size, remainingTotal: size, parts: [], discard: false };
    }
    if (this.dead) {
      this.buf = EMPTY;
      return;
    }
    this.buf = pos < buf.length ? buf.subarray(pos) : EMPTY;
  }

  private commandBytes(firstLine: string): number {
    return this.limits.commandBytes ? this.limits.commandBytes(firstLine) : MAX_LITERALS * this.limits.literalSize(firstLine);
  }

  /** Drops a refused command's non-synchronizing literal unread; false when that is past the budget (closed). */
  private discard(size: number): boolean {
    if (size > this.discardBudget) {
      this.emitClose();
      return false;
    }
    this.discardBudget -= size;
    this.literal = { remaining: size, remainingTotal: size, parts: [], discard: true };
    return true;
  }

  private emitClose(): void {
    this.dead = true;
    const head = /^([^\s(){%*"\\\]]+) ([A-Za-z]+)/.exec(this.refusedLine);
    this.emit({ kind: 'error', problem: 'command-too-big', tag: undefined, command: head?.[2]?.toUpperCase(), close: true });
  }

  /** Whether a line (or its unfinished start) of length bytes at buf[start] is over the limit. */
  private tooLong(buf: Buffer, start: number, length: number): boolean {
    if (length <= this.limits.lineLength) return false;
    const long = this.limits.longLine;
    // Only a line that starts a command: a line after a literal continues the one before it.
    if (!long || length > long.length || this.chunks.length > 0) return true;
    return !long.allowed(buf.subarray(start, start + 64).toString('latin1'));
  }

  private refuse(problem: ReaderProblem, firstLine: string, close = false): void {
    const head = /^([^\s(){%*"\\\]]+) ([A-Za-z]+)/.exec(firstLine);
    this.chunks = [];
    this.taken = 0;
    this.discardBudget = this.commandBytes(firstLine);
    this.refusedLine = firstLine;
    this.emit({ kind: 'error', problem, tag: head?.[1] ?? leadingTag(firstLine), command: head?.[2]?.toUpperCase(), ...(close ? { close } : {}) });
  }
}

function leadingTag(line: string): string | undefined {
  return /^([^\s(){%*"\\\]+]+)(?: |$)/.exec(line)?.[1];
}

export interface Command {
  tag: string;
  name: string;
  args: ImapValue[];
}

/** A command that could not be parsed; `tag` is set when one was read (tagged BAD, else untagged). */
export class ParseError extends Error {
  constructor(
    message: string,
    readonly tag?: string,
  ) {
    super(message);
  }
}

/** Splits a framed command into tag, upper-cased name and argument values. */
export function parseCommand(chunks: Chunks): Command {
  const t = new Tokenizer(chunks);
  const tag = t.tag();
  if (!tag) throw new ParseError('missing tag');
  if (!t.space()) throw new ParseError('missing command', tag);
  const name = t.word();
  if (!name) throw new ParseError('missing command', tag);
  try {
    const args = t.rest();
    return { tag, name: name.toUpperCase(), args };
  } catch (error) {
    throw new ParseError((error as Error).message, tag);
  }
}

/** The line text of a single-line command (AUTHENTICATE responses, DONE). */
export function chunksAsLine(chunks: Chunks): string {
  return chunks.map((c) => (typeof c === 'string' ? c : `{${c.length}}`)).join('');
}

const ATOM_END = new Set([' ', '(', ')', '"', '{']);
const TAG_END = new Set([' ', '(', ')', '"', '{', '%', '*', '\\', '+']);

const MAX_DEPTH = 100;

class Tokenizer {
  private depth = 0;
  private ci = 0;
  private pos = 0;

  constructor(private readonly chunks: Chunks) {}

  private get text(): string {
    return this.chunks[this.ci] as string;
  }

  /** At the end of the current line piece with a literal after it. */
  private atLiteral(): boolean {
    return this.pos >= this.text.length && Buffer.isBuffer(this.chunks[this.ci + 1]);
  }

  private atEnd(): boolean {
    return this.pos >= this.text.length && this.ci + 1 >= this.chunks.length;
  }

  tag(): string {
    const start = this.pos;
    while (this.pos < this.text.length && !TAG_END.has(this.text[this.pos]!) && this.text.charCodeAt(this.pos) > 0x20) this.pos++;
    return this.text.slice(start, this.pos);
  }

  space(): boolean {
    if (this.text[this.pos] !== ' ') return false;
    this.pos++;
    return true;
  }

  word(): string {
    const start = this.pos;
    while (this.pos < this.text.length && /[A-Za-z0-9-]/.test(this.text[this.pos]!)) this.pos++;
    return this.text.slice(start, this.pos);
  }

  rest(): ImapValue[] {
    const out: ImapValue[] = [];
    if (this.atEnd()) return out;
    if (!this.space()) throw new Error('expected a space after the command name');
    this.values(out, false);
    return out;
  }

  private values(out: ImapValue[], inList: boolean): void {
    for (;;) {
      if (this.atEnd()) {
        if (inList) throw new Error('unterminated list');
        return;
      }
      if (inList && this.text[this.pos] === ')' && !this.atLiteral()) {
        this.pos++;
        return;
      }
      out.push(this.value());
      if (this.atEnd()) {
        if (inList) throw new Error('unterminated list');
        return;
      }
      const c = this.text[this.pos];
      if (c === ' ') {
        this.pos++;
        if (this.atEnd()) throw new Error('trailing space');
      } else if (c === ')' && inList) {
        this.pos++;
        return;
      } else throw new Error(`unexpected "${c ?? 'literal'}"`);
    }
  }

  private value(): ImapValue {
    if (this.atLiteral()) {
      this.ci++;
      const literal = this.chunks[this.ci] as Buffer;
      this.ci++;
      this.pos = 0;
      return literal;
    }
    const c = this.text[this.pos];
    if (c === '(') {
      // Lists nest only so deep: a line of "(" is a protocol error, not a stack overflow.
      if (++this.depth > MAX_DEPTH) throw new Error(`lists nested deeper than ${MAX_DEPTH}`);
      this.pos++;
      const list: ImapValue[] = [];
      this.values(list, true);
      this.depth--;
      return list;
    }
    if (c === '"') return this.quoted();
    return this.atom();
  }

  private quoted(): string {
    const text = this.text;
    let out = '';
    let i = this.pos + 1;
    for (;;) {
      if (i >= text.length) throw new Error('unterminated quoted string');
      const c = text[i]!;
      if (c === '"') break;
      if (c === '\\') {
        const next = text[i + 1];
        if (next !== '\\' && next !== '"') throw new Error('bad escape in quoted string');
        out += next;
        i += 2;
        continue;
      }
      out += c;
      i++;
    }
    this.pos = i + 1;
    return out;
  }

  /** An atom; `[...]` inside it is taken whole, spaces and quotes included (BODY[HEADER.FIELDS (A B)]<0.10>). */
  private atom(): ImapValue {
    const text = this.text;
    const start = this.pos;
    let i = this.pos;
    // After one unclosed `[` every later one is ordinary too: one failed search per atom keeps
    // the scan linear (a line of 100,000 `[` must not cost 100,000 searches to its end).
    let brackets = true;
    while (i < text.length) {
      const c = text[i]!;
      if (c === '[' && brackets) {
        // An unclosed `[` is an ordinary atom character (a mailbox name may hold one).
        const end = bracketEnd(text, i);
        if (end < 0) brackets = false;
        i = end < 0 ? i + 1 : end + 1;
        continue;
      }
      if (ATOM_END.has(c) || text.charCodeAt(i) < 0x20 || text.charCodeAt(i) === 0x7f) break;
      i++;
    }
    if (i === start) throw new Error(`unexpected "${text[i] ?? 'end of line'}"`);
    this.pos = i;
    return atom(text.slice(start, i));
  }
}

function bracketEnd(text: string, open: number): number {
  let quoted = false;
  for (let i = open + 1; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ']') return i;
  }
  return -1;
}
