// SEARCH (RFC 3501 6.4.4) keys: parsed from command arguments into a tree, then matched
// against messages in two passes, so keys on metadata (flags, size, dates, UIDs) never
// load message content, and content is loaded only for messages that still need it.
import type { ImapValue } from '../value.js';
import { fieldValue, HeaderMap } from '../../mime/header.js';
import { decodeWords, partText } from '../../mime/decode.js';
import { parseDateHeader, utcDay } from './date.js';
import type { MimePart } from '../../mime/mime.js';
import type { HeaderSummary, ParsedMessage } from './parsed.js';
import { inSet, parseSequenceSet, resolveSet, type SequenceSet } from './sequence.js';
import { headerFieldsOf } from './section.js';

export type DateOp = 'before' | 'on' | 'since';

export type SearchKey =
  | { kind: 'all' }
  | { kind: 'flag'; flag: string; set: boolean }
  | { kind: 'recent'; set: boolean }
  | { kind: 'envelope'; field: 'from' | 'to' | 'cc' | 'bcc' | 'subject'; value: string; folded?: string }
  | { kind: 'header'; field: string; value: string }
  | { kind: 'body' | 'text'; value: string }
  | { kind: 'internaldate' | 'sentdate'; op: DateOp; day: number }
  | { kind: 'older' | 'younger'; seconds: number }
  | { kind: 'size'; op: 'larger' | 'smaller'; size: number }
  | { kind: 'seq' | 'uid'; set: SequenceSet; resolved?: SequenceSet }
  | { kind: 'modseq'; modseq: number }
  | { kind: 'not'; key: SearchKey }
  | { kind: 'or'; a: SearchKey; b: SearchKey }
  | { kind: 'and'; keys: SearchKey[] };

/** A syntax error in the search program (tagged BAD). */
export class SearchSyntaxError extends Error {}

/** An unsupported CHARSET (tagged NO [BADCHARSET (UTF-8 US-ASCII)], RFC 3501 6.4.4). */
export class BadCharsetError extends Error {}

export const SEARCH_CHARSETS = ['UTF-8', 'US-ASCII'];

export type ReturnOption = 'MIN' | 'MAX' | 'COUNT' | 'ALL' | 'SAVE';

export interface SearchProgram {
  key: SearchKey;
  /** RFC 4731 RETURN options; undefined for a plain SEARCH (untagged SEARCH response). */
  returns?: ReturnOption[];
  /** The program uses MODSEQ, so the response carries the highest mod-sequence (RFC 7162 3.1.5). */
  usesModseq: boolean;
}

/** Reads a word of the argument list: atoms, strings and literals alike. */
export function argText(arg: ImapValue | undefined): string | undefined {
  if (arg === undefined || arg === null || Array.isArray(arg)) return undefined;
  if (typeof arg === 'string') return arg;
  if (typeof arg === 'number') return String(arg);
  if (Buffer.isBuffer(arg)) return arg.toString('utf8');
  return arg.atom;
}

/**
 * `[RETURN (...)] [CHARSET x] key...` (RFC 3501 6.4.4, RFC 4731 3). `withReturn` allows the
 * RETURN prefix (SEARCH, not SORT or THREAD, whose charset is mandatory and handled there).
 */
export function parseSearchProgram(args: ImapValue[], options: { withReturn?: boolean; charset?: string } = {}): SearchProgram {
  let i = 0;
  let returns: ReturnOption[] | undefined;
  if (options.withReturn && argText(args[0])?.toUpperCase() === 'RETURN') {
    const list = args[1];
    if (!Array.isArray(list)) throw new SearchSyntaxError('RETURN needs a list');
    returns = [];
    for (const item of list) {
      const name = argText(item)?.toUpperCase();
      if (name !== 'MIN' && name !== 'MAX' && name !== 'COUNT' && name !== 'ALL' && name !== 'SAVE') {
        throw new SearchSyntaxError(`unknown RETURN option ${argText(item) ?? ''}`);
      }
      if (!returns.includes(name)) returns.push(name);
    }
    if (returns.length === 0) returns.push('ALL'); // RFC 4731 3.1: RETURN () means ALL
    i = 2;
  }
  let charset = options.charset;
  if (charset === undefined && argText(args[i])?.toUpperCase() === 'CHARSET') {
    charset = argText(args[i + 1]);
    if (charset === undefined) throw new SearchSyntaxError('CHARSET needs a name');
    i += 2;
  }
  if (charset !== undefined && !SEARCH_CHARSETS.includes(charset.toUpperCase())) throw new BadCharsetError(`unsupported charset ${charset}`);
  const parser = new KeyParser(args.slice(i));
  const keys: SearchKey[] = [];
  while (!parser.done()) keys.push(parser.key());
  if (keys.length === 0) throw new SearchSyntaxError('missing search key');
  const key = keys.length === 1 ? keys[0]! : { kind: 'and' as const, keys };
  return { key, returns, usesModseq: parser.usesModseq };
}

const FLAG_KEYS: Record<string, [string, boolean]> = {
  ANSWERED: ['\\Answered', true],
  DELETED: ['\\Deleted', true],
  DRAFT: ['\\Draft', true],
  FLAGGED: ['\\Flagged', true],
  SEEN: ['\\Seen', true],
  UNANSWERED: ['\\Answered', false],
  UNDELETED: ['\\Deleted', false],
  UNDRAFT: ['\\Draft', false],
  UNFLAGGED: ['\\Flagged', false],
  UNSEEN: ['\\Seen', false],
};

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];

class KeyParser {
  private pos = 0;
  usesModseq = false;

  constructor(private readonly args: ImapValue[]) {}

  done(): boolean {
    return this.pos >= this.args.length;
  }

  private next(what: string): ImapValue {
    if (this.pos >= this.args.length) throw new SearchSyntaxError(`missing ${what}`);
    return this.args[this.pos++]!;
  }

  private string(what: string): string {
    const text = argText(this.next(what));
    if (text === undefined) throw new SearchSyntaxError(`${what} must be a string`);
    return text;
  }

  private number(what: string): number {
    const text = this.string(what);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new SearchSyntaxError(`${what} must be a number`);
    return Number(text);
  }

  private date(): number {
    // date = date-text / DQUOTE date-text DQUOTE; date-text = d-MMM-yyyy
    const m = /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(this.string('date'));
    const month = m ? MONTHS.indexOf(m[2]!.toUpperCase()) : -1;
    if (!m || month < 0 || Number(m[1]) < 1 || Number(m[1]) > 31) throw new SearchSyntaxError('bad date');
    return Number(m[3]) * 10000 + (month + 1) * 100 + Number(m[1]);
  }

  key(): SearchKey {
    const arg = this.next('search key');
    if (Array.isArray(arg)) {
      const inner = new KeyParser(arg);
      const keys: SearchKey[] = [];
      while (!inner.done()) keys.push(inner.key());
      if (keys.length === 0) throw new SearchSyntaxError('empty search group');
      this.usesModseq ||= inner.usesModseq;
      return keys.length === 1 ? keys[0]! : { kind: 'and', keys };
    }
    const word = argText(arg);
    if (word === undefined) throw new SearchSyntaxError('bad search key');
    const name = word.toUpperCase();
    const flag = FLAG_KEYS[name];
    if (flag) return { kind: 'flag', flag: flag[0], set: flag[1] };
    switch (name) {
      case 'ALL':
        return { kind: 'all' };
      case 'NEW':
        return { kind: 'and', keys: [{ kind: 'recent', set: true }, { kind: 'flag', flag: '\\Seen', set: false }] };
      case 'OLD':
        return { kind: 'recent', set: false };
      case 'RECENT':
        return { kind: 'recent', set: true };
      case 'KEYWORD':
        return { kind: 'flag', flag: this.string('keyword'), set: true };
      case 'UNKEYWORD':
        return { kind: 'flag', flag: this.string('keyword'), set: false };
      case 'FROM':
      case 'TO':
      case 'CC':
      case 'BCC':
      case 'SUBJECT':
        return { kind: 'envelope', field: name.toLowerCase() as 'from', value: this.string(name) };
      case 'HEADER': {
        const field = this.string('header field name');
        return { kind: 'header', field: field.toLowerCase(), value: this.string('header value') };
      }
      case 'BODY':
        return { kind: 'body', value: this.string('BODY string') };
      case 'TEXT':
        return { kind: 'text', value: this.string('TEXT string') };
      case 'BEFORE':
        return { kind: 'internaldate', op: 'before', day: this.date() };
      case 'ON':
        return { kind: 'internaldate', op: 'on', day: this.date() };
      case 'SINCE':
        return { kind: 'internaldate', op: 'since', day: this.date() };
      case 'SENTBEFORE':
        return { kind: 'sentdate', op: 'before', day: this.date() };
      case 'SENTON':
        return { kind: 'sentdate', op: 'on', day: this.date() };
      case 'SENTSINCE':
        return { kind: 'sentdate', op: 'since', day: this.date() };
      case 'OLDER': // RFC 5032
        return { kind: 'older', seconds: this.number('interval') };
      case 'YOUNGER':
        return { kind: 'younger', seconds: this.number('interval') };
      case 'LARGER':
        return { kind: 'size', op: 'larger', size: this.number('size') };
      case 'SMALLER':
        return { kind: 'size', op: 'smaller', size: this.number('size') };
      case 'UID': {
        const set = parseSequenceSet(this.string('UID set'));
        if (!set) throw new SearchSyntaxError('bad UID set');
        return { kind: 'uid', set };
      }
      case 'NOT':
        return { kind: 'not', key: this.key() };
      case 'OR':
        return { kind: 'or', a: this.key(), b: this.key() };
      case 'MODSEQ': {
        // RFC 7162 3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer
        if (!/^\d+$/.test(argText(this.args[this.pos]) ?? '')) {
          this.string('entry name');
          const type = this.string('entry type').toLowerCase();
          if (type !== 'all' && type !== 'priv' && type !== 'shared') throw new SearchSyntaxError('bad MODSEQ entry type');
        }
        this.usesModseq = true;
        return { kind: 'modseq', modseq: this.number('mod-sequence') };
      }
      default: {
        const set = parseSequenceSet(word);
        if (set) return { kind: 'seq', set };
        throw new SearchSyntaxError(`unknown search key ${word}`);
      }
    }
  }
}

/** How much of a message a key needs: metadata, the cached parse, or the raw bytes too. */
export type Need = 0 | 1 | 2;
export const NEED_META: Need = 0;
export const NEED_PARSED: Need = 1;
export const NEED_RAW: Need = 2;

export function keyNeeds(key: SearchKey): Need {
  switch (key.kind) {
    case 'envelope':
    case 'sentdate':
      return NEED_PARSED;
    case 'header':
    case 'body':
    case 'text':
      return NEED_RAW;
    case 'not':
      return keyNeeds(key.key);
    case 'or':
      return Math.max(keyNeeds(key.a), keyNeeds(key.b)) as Need;
    case 'and':
      return key.keys.reduce<Need>((n, k) => Math.max(n, keyNeeds(k)) as Need, NEED_META);
    default:
      return NEED_META;
  }
}

/** One message as a search sees it. `parsed` and `raw` are filled in when a key needs them. */
export interface SearchMessage {
  seq: number;
  uid: number;
  flags: string[];
  recent: boolean;
  size: number;
  internalDate: Date;
  modseq: number;
  /** The envelope and References, enough for the envelope keys. */
  summary?: HeaderSummary;
  parsed?: ParsedMessage;
  raw?: Buffer;
}

export interface SearchScope {
  /** Messages in the mailbox and the highest UID, to resolve "*". */
  maxSeq: number;
  maxUid: number;
  now: number;
}

/**
 * Matches a key with what the message carries: true, false, or undefined when the answer
 * needs content that is not loaded yet (the caller loads it and asks again).
 */
export function matches(key: SearchKey, msg: SearchMessage, scope: SearchScope): boolean | undefined {
  switch (key.kind) {
    case 'all':
      return true;
    case 'flag':
      return hasFlag(msg.flags, key.flag) === key.set;
    case 'recent':
      return msg.recent === key.set;
    case 'internaldate':
      return compareDay(utcDay(msg.internalDate.getTime()), key.op, key.day);
    case 'older':
      return msg.internalDate.getTime() <= scope.now - key.seconds * 1000;
    case 'younger':
      return msg.internalDate.getTime() > scope.now - key.seconds * 1000;
    case 'size':
      return key.op === 'larger' ? msg.size > key.size : msg.size < key.size;
    // Resolved once per search (a key lives for one command).
    case 'seq':
      return inSet(msg.seq, (key.resolved ??= resolveSet(key.set, scope.maxSeq)));
    case 'uid':
      return inSet(msg.uid, (key.resolved ??= resolveSet(key.set, scope.maxUid)));
    case 'modseq':
      return msg.modseq >= key.modseq;
    case 'sentdate': {
      const head = msg.summary ?? msg.parsed;
      if (!head) return undefined;
      return sentDateMatches(key, head, msg.internalDate);
    }
    case 'envelope': {
      if (msg.summary) return summaryMatches(key, msg.summary);
      if (!msg.parsed) return undefined;
      return contains(envelopeFieldText(msg.parsed.root, key.field), key.value);
    }
    case 'header':
    case 'body':
    case 'text':
      if (!msg.parsed || !msg.raw) return undefined;
      return contentMatches(key, msg.raw, msg.parsed);
    case 'not': {
      const r = matches(key.key, msg, scope);
      return r === undefined ? undefined : !r;
    }
    case 'or': {
      const a = matches(key.a, msg, scope);
      if (a === true) return true;
      const b = matches(key.b, msg, scope);
      if (b === true) return true;
      return a === undefined || b === undefined ? undefined : false;
    }
    case 'and': {
      let unknown = false;
      for (let i = 0; i < key.keys.length; i++) {
        const r = matches(key.keys[i]!, msg, scope);
        if (r === false) return false;
        if (r === undefined) unknown = true;
      }
      return unknown ? undefined : true;
    }
  }
}

function sentDateMatches(key: { op: DateOp; day: number }, head: HeaderSummary | ParsedMessage, internalDate: Date): boolean {
  const sent = parseDateHeader(envelopeText(head.root, 0));
  return compareDay(sent ? sent.day : utcDay(internalDate.getTime()), key.op, key.day);
}

/** The summary lives in the shared index: the decoded, folded field is kept for the next search. */
function summaryMatches(key: Extract<SearchKey, { kind: 'envelope' }>, summary: HeaderSummary): boolean {
  const folded = (summary.folded ??= {});
  const text = (folded[key.field] ??= fold(envelopeFieldText(summary.root, key.field)));
  return key.value === '' || text.includes((key.folded ??= fold(key.value)));
}

/** What a column-wise search reads: the index's entries in UID order, and their place in the session's view. */
export interface SearchColumns {
  entries: readonly { uid: number; flags: string[]; size: number; internalDate: Date; modseq: number; summary?: HeaderSummary }[];
  /** The sequence number of entries[i]. */
  seqOf(i: number): number;
  recent(uid: number): boolean;
}

/** Column values: no, yes, or unknown (the key needs a header summary that is not loaded). */
const NO = 0;
const YES = 1;
const UNKNOWN = 2;

/**
 * Evaluates a key over all messages at once, one tight loop per key node, and returns one
 * value per entry (0 no, 1 yes, 2 unknown). Per-message matches() over a tree of key objects of
 * many shapes leaves V8 megamorphic property loads in the hot loop (10x slower after other
 * searches ran); here each loop reads one kind of key. Keys needing content (HEADER, BODY,
 * TEXT) are not evaluated here: undefined.
 */
export function searchColumns(key: SearchKey, input: SearchColumns, scope: SearchScope): Uint8Array | undefined {
  const entries = input.entries;
  const n = entries.length;
  const out = new Uint8Array(n);
  switch (key.kind) {
    case 'all':
      out.fill(YES);
      return out;
    case 'flag': {
      const want = key.set;
      for (let i = 0; i < n; i++) out[i] = hasFlag(entries[i]!.flags, key.flag) === want ? YES : NO;
      return out;
    }
    case 'recent':
      for (let i = 0; i < n; i++) out[i] = input.recent(entries[i]!.uid) === key.set ? YES : NO;
      return out;
    case 'internaldate':
      for (let i = 0; i < n; i++) out[i] = compareDay(utcDay(entries[i]!.internalDate.getTime()), key.op, key.day) ? YES : NO;
      return out;
    case 'older':
    case 'younger': {
      const edge = scope.now - key.seconds * 1000;
      const older = key.kind === 'older';
      for (let i = 0; i < n; i++) out[i] = entries[i]!.internalDate.getTime() <= edge === older ? YES : NO;
      return out;
    }
    case 'size': {
      const larger = key.op === 'larger';
      for (let i = 0; i < n; i++) {
        const size = entries[i]!.size;
        out[i] = (larger ? size > key.size : size < key.size) ? YES : NO;
      }
      return out;
    }
    case 'seq': {
      const set = (key.resolved ??= resolveSet(key.set, scope.maxSeq));
      for (let i = 0; i < n; i++) out[i] = inSet(input.seqOf(i), set) ? YES : NO;
      return out;
    }
    case 'uid': {
      const set = (key.resolved ??= resolveSet(key.set, scope.maxUid));
      for (let i = 0; i < n; i++) out[i] = inSet(entries[i]!.uid, set) ? YES : NO;
      return out;
    }
    case 'modseq':
      for (let i = 0; i < n; i++) out[i] = entries[i]!.modseq >= key.modseq ? YES : NO;
      return out;
    case 'sentdate':
      for (let i = 0; i < n; i++) {
        const summary = entries[i]!.summary;
        out[i] = !summary ? UNKNOWN : sentDateMatches(key, summary, entries[i]!.internalDate) ? YES : NO;
      }
      return out;
    case 'envelope':
      for (let i = 0; i < n; i++) {
        const summary = entries[i]!.summary;
        out[i] = !summary ? UNKNOWN : summaryMatches(key, summary) ? YES : NO;
      }
      return out;
    case 'header':
    case 'body':
    case 'text':
      return undefined;
    case 'not': {
      const inner = searchColumns(key.key, input, scope);
      if (!inner) return undefined;
      for (let i = 0; i < n; i++) inner[i] = inner[i] === UNKNOWN ? UNKNOWN : inner[i] === YES ? NO : YES;
      return inner;
    }
    case 'or': {
      const a = searchColumns(key.a, input, scope);
      const b = a && searchColumns(key.b, input, scope);
      if (!a || !b) return undefined;
      // Yes if either is yes; else unknown if either is unknown.
      for (let i = 0; i < n; i++) a[i] = a[i] === YES || b[i] === YES ? YES : a[i] === UNKNOWN || b[i] === UNKNOWN ? UNKNOWN : NO;
      return a;
    }
    case 'and': {
      out.fill(YES);
      for (const sub of key.keys) {
        const part = searchColumns(sub, input, scope);
        if (!part) return undefined;
        // No if either is no; else unknown if either is unknown.
        for (let i = 0; i < n; i++) out[i] = out[i] === NO || part[i] === NO ? NO : out[i] === UNKNOWN || part[i] === UNKNOWN ? UNKNOWN : YES;
      }
      return out;
    }
  }
}

/** Flags compare case-insensitively; the length check spares most lower-casing. */
function hasFlag(flags: string[], flag: string): boolean {
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i]!;
    if (f === flag || (f.length === flag.length && f.toLowerCase() === flag.toLowerCase())) return true;
  }
  return false;
}

function compareDay(day: number, op: DateOp, wanted: number): boolean {
  return op === 'before' ? day < wanted : op === 'on' ? day === wanted : day >= wanted;
}

/** Case-insensitive substring test on text (RFC 3501 6.4.4: "case-insensitive substring"). */
export function contains(haystack: string, needle: string): boolean {
  if (needle === '') return true;
  return fold(haystack).includes(fold(needle));
}

const fold = (s: string): string => s.toLowerCase().replace(/\s+/g, ' ');

function envelopeText(root: Pick<MimePart, 'envelope'>, index: number): string | undefined {
  const value = root.envelope?.[index];
  return typeof value === 'string' ? value : undefined;
}

const ENVELOPE_INDEX = { subject: 1, from: 2, to: 5, cc: 6, bcc: 7 } as const;

/** The envelope fields SEARCH compares, in the order a packed summary keeps them (mailbox-index.ts). */
export const SEARCH_FIELDS = ['subject', 'from', 'to', 'cc', 'bcc'] as const;

/** A field as SEARCH compares it: decoded and folded, computed ahead for a packed summary. */
export function foldedField(root: Pick<MimePart, 'envelope'>, field: (typeof SEARCH_FIELDS)[number]): string {
  return fold(envelopeFieldText(root, field));
}

/** What FROM/TO/CC/BCC/SUBJECT search: the decoded field, addresses as `name <mailbox@host>`. */
function envelopeFieldText(root: Pick<MimePart, 'envelope'>, field: keyof typeof ENVELOPE_INDEX): string {
  const value = root.envelope?.[ENVELOPE_INDEX[field]];
  if (field === 'subject') return typeof value === 'string' ? decodeWords(value) : '';
  if (!Array.isArray(value)) return '';
  return value
    .map((address) => {
      const [name, , mailbox, host] = address as (string | null)[];
      if (host === null) return mailbox ?? ''; // group start and end markers
      const spec = `${mailbox ?? ''}@${host ?? ''}`;
      return name ? `${decodeWords(name)} <${spec}>` : spec;
    })
    .join(', ');
}

function contentMatches(key: Extract<SearchKey, { kind: 'header' | 'body' | 'text' }>, raw: Buffer, parsed: ParsedMessage): boolean {
  const root = parsed.root;
  if (key.kind === 'header') {
    const headers = new HeaderMap(raw, headerFieldsOf(raw, root));
    const values = headers.all(key.field);
    // RFC 3501: an empty string matches every message that has the field.
    return values.some((v) => contains(decodeWords(v), key.value));
  }
  if (key.kind === 'text') {
    if (contains(headerText(raw, root), key.value)) return true;
  }
  return bodyContains(raw, root, key.value);
}

/** A header block as decoded text, one `name: value` line per field. */
function headerText(raw: Buffer, message: MimePart): string {
  return headerFieldsOf(raw, message)
    .filter((f) => f.name)
    .map((f) => `${f.name}: ${decodeWords(fieldValue(raw, f))}`)
    .join('\n');
}

/** Searches the decoded text of every TEXT part, and the headers of embedded messages. */
function bodyContains(raw: Buffer, part: MimePart, needle: string): boolean {
  if (part.parts) return part.parts.some((child) => bodyContains(raw, child, needle));
  if (part.message) {
    return contains(headerText(raw, part.message), needle) || bodyContains(raw, part.message, needle);
  }
  if (part.type !== 'TEXT' && part.type !== 'MESSAGE') return false;
  return contains(partText(raw, part), needle);
}
