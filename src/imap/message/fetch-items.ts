// FETCH data items (RFC 3501 6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ/CHANGEDSINCE):
// parsing the attribute list and building one message's response data.
import { atom, type ImapValue } from '../value.js';
import { wireAtom } from '../writer.js';
import { bodyStructure } from './body-structure.js';
import { decodeTransfer } from '../../mime/decode.js';
import { findPart } from '../../mime/mime.js';
import type { ParsedMessage } from './parsed.js';
import { formatSection, parseSection, partial, sectionBytes, SectionError, type Section } from './section.js';

export type SimpleItem = 'FLAGS' | 'UID' | 'INTERNALDATE' | 'RFC822.SIZE' | 'ENVELOPE' | 'BODY' | 'BODYSTRUCTURE' | 'MODSEQ' | 'RFC822' | 'RFC822.HEADER' | 'RFC822.TEXT';

export type FetchItem =
  | { kind: SimpleItem }
  | { kind: 'BODY[]'; section: Section; peek: boolean; partial?: Partial }
  | { kind: 'BINARY'; path: number[]; peek: boolean; partial?: Partial }
  | { kind: 'BINARY.SIZE'; path: number[] };

export interface Partial {
  origin: number;
  length: number;
}

export class FetchSyntaxError extends Error {}

const SIMPLE = new Set<string>(['FLAGS', 'UID', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY', 'BODYSTRUCTURE', 'MODSEQ', 'RFC822', 'RFC822.HEADER', 'RFC822.TEXT']);
const MACROS: Record<string, SimpleItem[]> = {
  ALL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE'],
  FAST: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'],
  FULL: ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY'],
};

/**
 * Parses the attribute text of a FETCH: a macro, one attribute, or a parenthesised list,
 * e.g. `(UID BODY.PEEK[HEADER.FIELDS (From "To")]<0.100>)`. Works on the text because
 * section specs (brackets, nested lists, partial ranges) are not ordinary IMAP values.
 */
export function parseFetchItems(text: string): FetchItem[] {
  const src = text.trim();
  const macro = MACROS[src.toUpperCase()];
  if (macro) return macro.map((kind) => ({ kind }));
  let inner = src;
  if (src.startsWith('(')) {
    if (!src.endsWith(')')) throw new FetchSyntaxError('unbalanced fetch attribute list');
    inner = src.slice(1, -1);
  }
  const items: FetchItem[] = [];
  let pos = 0;
  const skipSpace = (): void => {
    while (inner[pos] === ' ') pos++;
  };
  skipSpace();
  while (pos < inner.length) {
    const name = /^[A-Za-z0-9.]+/.exec(inner.slice(pos))?.[0];
    if (!name) throw new FetchSyntaxError(`bad fetch attribute at "${inner.slice(pos, pos + 20)}"`);
    pos += name.length;
    const upper = name.toUpperCase();
    if (inner[pos] === '[') {
      const close = sectionEnd(inner, pos);
      const sectionText = inner.slice(pos + 1, close);
      pos = close + 1;
      let range: Partial | undefined;
      const partialMatch = /^<(\d+)\.(\d+)>/.exec(inner.slice(pos));
      if (partialMatch) {
        range = { origin: Number(partialMatch[1]), length: Number(partialMatch[2]) };
        if (!Number.isSafeInteger(range.origin) || !Number.isSafeInteger(range.length) || range.length === 0) throw new FetchSyntaxError('bad partial range');
        pos += partialMatch[0].length;
      }
      items.push(sectionItem(upper, sectionText, range));
    } else if (SIMPLE.has(upper)) {
      items.push({ kind: upper as SimpleItem });
    } else {
      throw new FetchSyntaxError(`unknown fetch attribute ${name}`);
    }
    if (pos < inner.length && inner[pos] !== ' ') throw new FetchSyntaxError(`bad fetch attribute at "${inner.slice(pos, pos + 20)}"`);
    skipSpace();
    if (!src.startsWith('(') && pos < inner.length) throw new FetchSyntaxError('several fetch attributes need parentheses');
  }
  if (items.length === 0) throw new FetchSyntaxError('no fetch attributes');
  return items;
}

/** The index of the `]` closing a section, skipping quoted field names. */
function sectionEnd(text: string, open: number): number {
  let quoted = false;
  for (let i = open + 1; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ']') return i;
  }
  throw new FetchSyntaxError('unterminated section');
}

function sectionItem(name: string, sectionText: string, range: Partial | undefined): FetchItem {
  try {
    if (name === 'BODY' || name === 'BODY.PEEK') {
      return { kind: 'BODY[]', section: parseSection(sectionText), peek: name === 'BODY.PEEK', partial: range };
    }
    if (name === 'BINARY' || name === 'BINARY.PEEK' || name === 'BINARY.SIZE') {
      const section = parseSection(sectionText);
      if (section.text) throw new FetchSyntaxError('BINARY takes part numbers only');
      if (name === 'BINARY.SIZE') {
        if (range) throw new FetchSyntaxError('BINARY.SIZE takes no partial range');
        return { kind: 'BINARY.SIZE', path: section.path };
      }
      return { kind: 'BINARY', path: section.path, peek: name === 'BINARY.PEEK', partial: range };
    }
  } catch (err) {
    if (err instanceof SectionError) throw new FetchSyntaxError(err.message);
    throw err;
  }
  throw new FetchSyntaxError(`unknown fetch attribute ${name}[`);
}

/** How much of each message the items need: metadata only, the cached parse, or the bytes. */
export function itemsNeed(items: FetchItem[]): { parsed: boolean; raw: boolean } {
  let parsed = false;
  let raw = false;
  for (const item of items) {
    switch (item.kind) {
      case 'ENVELOPE':
      case 'BODY':
      case 'BODYSTRUCTURE':
        parsed = true;
        break;
      case 'RFC822':
      case 'RFC822.HEADER':
      case 'RFC822.TEXT':
      case 'BODY[]':
      case 'BINARY':
      case 'BINARY.SIZE':
        parsed = true;
        raw = true;
        break;
    }
  }
  return { parsed, raw };
}

/** Whether fetching the items sets \Seen (RFC 3501 6.4.5: BODY[...] and RFC822 without .PEEK). */
export function itemsSetSeen(items: FetchItem[]): boolean {
  return items.some((i) => i.kind === 'RFC822' || i.kind === 'RFC822.TEXT' || ((i.kind === 'BODY[]' || i.kind === 'BINARY') && !i.peek));
}

export interface FetchMessage {
  uid: number;
  flags: string[];
  internalDate: Date;
  size: number;
  modseq: number;
  parsed?: ParsedMessage;
  raw?: Buffer;
}

/** A content transfer encoding BINARY cannot undo (RFC 3516 4.3: NO [UNKNOWN-CTE]). */
export class UnknownCteError extends Error {}

/**
 * ENVELOPE, BODY and BODYSTRUCTURE of a parsed message as written out the first time (they never
 * change for the same content): later FETCHes send the text instead of building and writing the
 * tree again. Kept as long as the parse cache keeps the message.
 */
const wireCache = new WeakMap<ParsedMessage, { ENVELOPE?: ImapValue; BODY?: ImapValue; BODYSTRUCTURE?: ImapValue }>();

function structure(parsed: ParsedMessage, kind: 'ENVELOPE' | 'BODY' | 'BODYSTRUCTURE'): ImapValue {
  let cached = wireCache.get(parsed);
  if (!cached) wireCache.set(parsed, (cached = {}));
  let value = cached[kind];
  if (value === undefined) {
    const tree = kind === 'ENVELOPE' ? (parsed.root.envelope ?? null) : bodyStructure(parsed.root, kind === 'BODYSTRUCTURE');
    // One with a literal in it (8-bit text) stays a tree.
    value = cached[kind] = wireAtom(tree) ?? tree;
  }
  return value;
}

function parsedOf(msg: FetchMessage): ParsedMessage {
  if (!msg.parsed) throw new Error('message content not loaded');
  return msg.parsed;
}

function rawOf(msg: FetchMessage): Buffer {
  if (!msg.raw) throw new Error('message bytes not loaded');
  return msg.raw;
}

/** The data items of one FETCH response, in the order asked (names as atoms). */
export function fetchData(items: FetchItem[], msg: FetchMessage): ImapValue[] {
  const out: ImapValue[] = [];
  // Plain functions of msg, not closures made per message (FETCH 1:* calls this once per message).
  const parsed = parsedOf;
  const raw = rawOf;
  for (const item of items) {
    switch (item.kind) {
      case 'UID':
        out.push(atom('UID'), msg.uid);
        break;
      case 'FLAGS':
        out.push(atom('FLAGS'), msg.flags.map((f) => atom(f)));
        break;
      case 'INTERNALDATE':
        out.push(atom('INTERNALDATE'), formatInternalDate(msg.internalDate));
        break;
      case 'RFC822.SIZE':
        out.push(atom('RFC822.SIZE'), msg.size);
        break;
      case 'MODSEQ':
        out.push(atom('MODSEQ'), [msg.modseq]);
        break;
      case 'ENVELOPE':
      case 'BODY':
      case 'BODYSTRUCTURE':
        out.push(atom(item.kind), structure(parsed(msg), item.kind));
        break;
      case 'RFC822':
        out.push(atom('RFC822'), raw(msg));
        break;
      case 'RFC822.HEADER':
        out.push(atom('RFC822.HEADER'), sectionBytes(raw(msg), parsed(msg).root, { path: [], text: 'HEADER' }));
        break;
      case 'RFC822.TEXT':
        out.push(atom('RFC822.TEXT'), sectionBytes(raw(msg), parsed(msg).root, { path: [], text: 'TEXT' }));
        break;
      case 'BODY[]': {
        const bytes = sectionBytes(raw(msg), parsed(msg).root, item.section);
        const name = `BODY[${formatSection(item.section)}]${item.partial ? `<${item.partial.origin}>` : ''}`;
        out.push(atom(name), bytes && item.partial ? partial(bytes, item.partial.origin, item.partial.length) : bytes);
        break;
      }
      case 'BINARY': {
        const bytes = binaryBytes(raw(msg), parsed(msg), item.path);
        const name = `BINARY[${item.path.join('.')}]${item.partial ? `<${item.partial.origin}>` : ''}`;
        out.push(atom(name), bytes && item.partial ? partial(bytes, item.partial.origin, item.partial.length) : bytes);
        break;
      }
      case 'BINARY.SIZE':
        out.push(atom(`BINARY.SIZE[${item.path.join('.')}]`), binaryBytes(raw(msg), parsed(msg), item.path)?.length ?? null);
        break;
    }
  }
  return out;
}

/** A part with its transfer encoding undone (RFC 3516 4.2); the whole message is sent as stored. */
function binaryBytes(raw: Buffer, parsed: ParsedMessage, path: number[]): Buffer | null {
  if (path.length === 0) return raw;
  const part = findPart(parsed.root, path);
  if (!part) return null;
  if (part.parts || part.message) return raw.subarray(part.bodyStart, part.bodyEnd);
  const decoded = decodeTransfer(raw.subarray(part.bodyStart, part.bodyEnd), part.encoding);
  if (!decoded) throw new UnknownCteError(`unknown transfer encoding ${part.encoding}`);
  return decoded;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** date-time (RFC 3501 9): "17-Jul-1996 02:44:25 +0000", in UTC. */
export function formatInternalDate(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  const day = String(date.getUTCDate()).padStart(2, ' ');
  return `${day}-${MONTHS[date.getUTCMonth()]}-${date.getUTCFullYear()} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}
