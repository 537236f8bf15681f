// SORT (RFC 5256 3) and DISPLAYFROM/DISPLAYTO (RFC 5957), on the cached parse only.
import type { ImapValue } from '../value.js';
import { parseDateHeader } from './date.js';
import { decodeWords } from '../../mime/decode.js';
import type { HeaderSummary } from './parsed.js';
import { argText, SearchSyntaxError } from './search.js';
import { asciiCasemap, baseSubject } from './subject.js';

export type SortKey = 'ARRIVAL' | 'CC' | 'DATE' | 'FROM' | 'SIZE' | 'SUBJECT' | 'TO' | 'DISPLAYFROM' | 'DISPLAYTO';
export interface SortCriterion {
  key: SortKey;
  reverse: boolean;
}

const KEYS = new Set<string>(['ARRIVAL', 'CC', 'DATE', 'FROM', 'SIZE', 'SUBJECT', 'TO', 'DISPLAYFROM', 'DISPLAYTO']);

/** `(REVERSE SUBJECT DATE)` (RFC 5256 3 sort-criteria). */
export function parseSortCriteria(arg: ImapValue | undefined): SortCriterion[] {
  if (!Array.isArray(arg) || arg.length === 0) throw new SearchSyntaxError('SORT needs a list of sort criteria');
  const out: SortCriterion[] = [];
  let reverse = false;
  for (const item of arg) {
    const word = argText(item)?.toUpperCase();
    if (word === 'REVERSE' && !reverse) reverse = true;
    else if (word && KEYS.has(word)) {
      out.push({ key: word as SortKey, reverse });
      reverse = false;
    } else throw new SearchSyntaxError(`unknown sort key ${argText(item) ?? ''}`);
  }
  if (reverse) throw new SearchSyntaxError('REVERSE needs a sort key after it');
  return out;
}

export interface SortMessage {
  seq: number;
  uid: number;
  size: number;
  internalDate: Date;
  /** The header summary (or the whole parse): SORT and THREAD read only the envelope and References. */
  parsed: HeaderSummary | undefined;
}

/** Sorts messages; ties keep sequence-number order (RFC 5256 3). */
export function sortMessages<T extends SortMessage>(messages: T[], criteria: SortCriterion[]): T[] {
  const keyed = messages.map((m) => ({ m, keys: criteria.map((c) => sortValue(m, c.key)) }));
  keyed.sort((x, y) => {
    for (let i = 0; i < criteria.length; i++) {
      const a = x.keys[i]!;
      const b = y.keys[i]!;
      const order = a < b ? -1 : a > b ? 1 : 0;
      if (order !== 0) return criteria[i]!.reverse ? -order : order;
    }
    return x.m.seq - y.m.seq;
  });
  return keyed.map((k) => k.m);
}

function sortValue(m: SortMessage, key: SortKey): string | number {
  const envelope = m.parsed?.root.envelope;
  switch (key) {
    case 'ARRIVAL':
      return m.internalDate.getTime();
    case 'SIZE':
      return m.size;
    case 'DATE':
      return sentTime(m);
    case 'SUBJECT':
      return asciiCasemap(baseSubject(text(envelope?.[1])).base);
    case 'FROM':
      return asciiCasemap(firstMailbox(envelope?.[2]));
    case 'TO':
      return asciiCasemap(firstMailbox(envelope?.[5]));
    case 'CC':
      return asciiCasemap(firstMailbox(envelope?.[6]));
    case 'DISPLAYFROM':
      return displayName(envelope?.[2]);
    case 'DISPLAYTO':
      return displayName(envelope?.[5]);
  }
}

/** The sent date, or the internal date when the Date header is missing or invalid (RFC 5256 2.2). */
export function sentTime(m: SortMessage): number {
  return parseDateHeader(text(m.parsed?.root.envelope?.[0]))?.time ?? m.internalDate.getTime();
}

const text = (value: ImapValue | undefined): string | undefined => (typeof value === 'string' ? value : undefined);

/** RFC 5256 3: the addr-mailbox of the first address; a group's first entry is its start marker, whose
 *  mailbox is the group name (as Dovecot sorts `Cc: team: a@b;` under "team"). */
function firstMailbox(list: ImapValue | undefined): string {
  const first = Array.isArray(list) ? list[0] : undefined;
  return Array.isArray(first) && typeof first[2] === 'string' ? first[2] : '';
}

/** The first real address of an ENVELOPE address list (group markers skipped). */
function firstAddress(list: ImapValue | undefined): (string | null)[] | undefined {
  if (!Array.isArray(list)) return undefined;
  return list.find((a) => Array.isArray(a) && a[3] !== null) as (string | null)[] | undefined;
}

/** RFC 5957: the decoded display name, or the address when there is none; a group gives its name (as Dovecot). */
function displayName(list: ImapValue | undefined): string {
  const first = Array.isArray(list) ? list[0] : undefined;
  if (Array.isArray(first) && first[3] === null && typeof first[2] === 'string') return decodeWords(first[2]).toUpperCase();
  const address = firstAddress(list);
  if (!address) return '';
  const [name, , mailbox, host] = address;
  const value = name ? decodeWords(name) : `${mailbox ?? ''}@${host ?? ''}`;
  return value.toUpperCase();
}
