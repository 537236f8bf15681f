// Reading command arguments (RFC 3501 9): astrings, mailbox names, flag lists, date-times,
// sequence sets. Each reader throws a BAD ImapError naming what was wrong.
import { bad, CODE, no } from './errors.js';
import { parseSequenceSet, type SequenceSet } from './message/sequence.js';
import { decodeMailboxName } from './mutf7.js';
import type { ImapValue } from './value.js';

export function isAtom(v: ImapValue | undefined): v is { atom: string } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

/** astring: an atom, a quoted string or a literal. */
export function astring(v: ImapValue | undefined, what: string): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (isAtom(v)) return v.atom;
  throw bad(`${what} expected`);
}

/** An atom's upper-cased text, or undefined for anything else. */
export function atomText(v: ImapValue | undefined): string | undefined {
  return isAtom(v) ? v.atom.toUpperCase() : undefined;
}

/** A mailbox name from the wire (modified UTF-7) in the store's form: INBOX canonical, no trailing "/". */
export function mailboxName(v: ImapValue | undefined): string {
  const wire = astring(v, 'mailbox name');
  const name = decodeMailboxName(wire);
  // Well-formed syntax, so NO rather than BAD (as Dovecot: imaptest atoms).
  if (name === undefined) throw no('mailbox name is not valid modified UTF-7', CODE.cannot);
  return canonicalName(name);
}

export function canonicalName(name: string): string {
  if (/^inbox$/i.test(name)) return 'INBOX';
  if (/^inbox\//i.test(name)) return `INBOX${name.slice(5)}`;
  return name;
}

export function list(v: ImapValue | undefined, what: string): ImapValue[] {
  if (!Array.isArray(v)) throw bad(`${what} must be a parenthesised list`);
  return v;
}

export function number(v: ImapValue | undefined, what: string): number {
  const text = isAtom(v) ? v.atom : typeof v === 'string' ? v : undefined;
  if (text === undefined || !/^\d{1,19}$/.test(text)) throw bad(`${what} must be a number`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw bad(`${what} is too large`);
  return n;
}

export function sequenceSet(v: ImapValue | undefined): SequenceSet {
  const set = isAtom(v) ? parseSequenceSet(v.atom) : undefined;
  if (!set) throw bad('invalid sequence set');
  return set;
}

const SYSTEM_FLAGS = new Map(['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'].map((f) => [f.toLowerCase(), f]));

/** Flags of STORE and APPEND: system flags (canonical case) and keywords; \Recent is not settable. */
export function flagList(v: ImapValue | ImapValue[] | undefined): string[] {
  const items = Array.isArray(v) ? v : [v];
  return items.map((item) => {
    if (!isAtom(item)) throw bad('flags must be atoms');
    const text = item.atom;
    if (text.startsWith('\\')) {
      const system = SYSTEM_FLAGS.get(text.toLowerCase());
      if (!system) throw bad(`flag ${text} cannot be set`);
      return system;
    }
    if (!/^[^\s(){%*"\\\]]+$/.test(text)) throw bad(`invalid keyword ${text}`);
    return text;
  });
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** date-time (RFC 3501 9): "17-Jul-1996 02:44:25 -0700". */
export function dateTime(v: ImapValue | undefined): Date {
  const text = typeof v === 'string' ? v : undefined;
  const m = text && /^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$/.exec(text);
  if (!m) throw bad('invalid date-time');
  const month = MONTHS.indexOf(m[2]!.toLowerCase());
  if (month < 0) throw bad('invalid month in date-time');
  const offset = (m[7] === '-' ? -1 : 1) * (Number(m[8]) * 60 + Number(m[9]));
  const utc = Date.UTC(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6])) - offset * 60_000;
  const date = new Date(utc);
  if (Number.isNaN(date.getTime())) throw bad('invalid date-time');
  return date;
}

/** Arguments as the text they were sent as (for FETCH attributes, parsed by fetch-items). */
export function argsText(values: ImapValue[]): string {
  return values
    .map((v): string => {
      if (Array.isArray(v)) return `(${argsText(v)})`;
      if (isAtom(v)) return v.atom;
      if (typeof v === 'string') return `"${v.replace(/["\\]/g, '\\$&')}"`;
      if (typeof v === 'number') return String(v);
      return '""';
    })
    .join(' ');
}
