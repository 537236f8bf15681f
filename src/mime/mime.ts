// The MIME part tree of a raw message (RFC 2045, 2046) with byte offsets per part, built
// on the Buffer itself so every section can be cut byte-exactly. Lenient: broken input
// gives a best-effort tree, never an exception. The tree is plain JSON so it can be cached
// per content hash (Store.setBlobMeta) and shared by every session.
import libmime from 'libmime';
import { buildEnvelope, type EnvelopeValue } from './envelope.js';
import { findBodyStart, HeaderMap } from './header.js';

export type Params = [name: string, value: string][];

export interface MimePart {
  /** The part's header is `[headerStart, bodyStart)`, blank line included. */
  headerStart: number;
  bodyStart: number;
  bodyEnd: number;
  /** Upper-case media type and subtype. */
  type: string;
  subtype: string;
  /** Parameters with upper-case names and decoded (RFC 2231) values. */
  params: Params;
  id: string | null;
  description: string | null;
  /** Upper-case Content-Transfer-Encoding, 7BIT by default. */
  encoding: string;
  md5: string | null;
  disposition: { type: string; params: Params } | null;
  language: string[] | null;
  location: string | null;
  /** Body lines, for TEXT/* and MESSAGE/RFC822. */
  lines: number;
  /** Children of a multipart. */
  parts?: MimePart[];
  /** The message inside a MESSAGE/RFC822 part. */
  message?: MimePart;
  /** ENVELOPE of a message (the top level, or the inside of MESSAGE/RFC822). */
  envelope?: EnvelopeValue[];
}

/** Deeper nesting is treated as opaque bodies: enough for real mail, safe for hostile mail. */
const MAX_DEPTH = 64;
const LF = 0x0a;
const CR = 0x0d;

/** Parses a whole message. `message: true` on the root gives it an ENVELOPE. */
export function parseMime(raw: Buffer): MimePart {
  return parsePart(raw, 0, raw.length, DEFAULT_TYPE, 0, true);
}

type DefaultType = { type: string; subtype: string };
const DEFAULT_TYPE: DefaultType = { type: 'TEXT', subtype: 'PLAIN' };
const DIGEST_DEFAULT: DefaultType = { type: 'MESSAGE', subtype: 'RFC822' };

function parsePart(buf: Buffer, start: number, end: number, defaults: DefaultType, depth: number, isMessage: boolean): MimePart {
  const bodyStart = findBodyStart(buf, start, end);
  const headers = HeaderMap.parse(buf, start, bodyStart);
  const part: MimePart = {
    headerStart: start,
    bodyStart,
    bodyEnd: end,
    ...contentType(headers.first('content-type'), defaults),
    id: headers.first('content-id') ?? null,
    description: headers.first('content-description') ?? null,
    encoding: encoding(headers.first('content-transfer-encoding')),
    md5: headers.first('content-md5') ?? null,
    disposition: disposition(headers.first('content-disposition')),
    language: language(headers.first('content-language')),
    location: headers.first('content-location') ?? null,
    lines: 0,
  };
  if (isMessage) part.envelope = buildEnvelope(headers);

  const nested = depth < MAX_DEPTH;
  if (part.type === 'MULTIPART') {
    const boundary = part.params.find(([name]) => name === 'BOUNDARY')?.[1];
    const childDefault = part.subtype === 'DIGEST' ? DIGEST_DEFAULT : DEFAULT_TYPE;
    const ranges = boundary && nested ? splitMultipart(buf, bodyStart, end, boundary) : [];
    // RFC 3501 needs at least one part; a multipart without usable boundaries becomes
    // one part made of its whole body, with no header of its own.
    part.parts =
      ranges.length === 0
        ? [emptyHeaderPart(buf, bodyStart, end, DEFAULT_TYPE)]
        : ranges.map(([s, e]) => parsePart(buf, s, e, childDefault, depth + 1, false));
  } else if (part.type === 'MESSAGE' && part.subtype === 'RFC822' && nested && !isEncoded(part.encoding)) {
    part.message = parsePart(buf, bodyStart, end, DEFAULT_TYPE, depth + 1, true);
  }
  if (part.type === 'TEXT' || part.message) part.lines = countLines(buf, bodyStart, end);
  return part;
}

function emptyHeaderPart(buf: Buffer, start: number, end: number, defaults: DefaultType): MimePart {
  return {
    headerStart: start,
    bodyStart: start,
    bodyEnd: end,
    ...contentType(undefined, defaults),
    id: null,
    description: null,
    encoding: '7BIT',
    md5: null,
    disposition: null,
    language: null,
    location: null,
    lines: defaults.type === 'TEXT' ? countLines(buf, start, end) : 0,
  };
}

const isEncoded = (enc: string): boolean => enc === 'BASE64' || enc === 'QUOTED-PRINTABLE';

/**
 * Body ranges of the parts of a multipart (RFC 2046 5.1.1). The CRLF before a delimiter
 * belongs to the delimiter. A missing close-delimiter ends the last part at `end`.
 */
export function splitMultipart(buf: Buffer, start: number, end: number, boundary: string): [number, number][] {
  const delimiter = Buffer.from(`--${boundary}`, 'latin1');
  const ranges: [number, number][] = [];
  let partStart = -1;
  let pos = start;
  while (pos < end) {
    const at = buf.indexOf(delimiter, pos);
    if (at < 0 || at + delimiter.length > end) break;
    pos = at + 1;
    if (at !== start && buf[at - 1] !== LF) continue;
    let after = at + delimiter.length;
    const close = buf[after] === 0x2d && buf[after + 1] === 0x2d && after + 2 <= end;
    if (close) after += 2;
    // Only transport padding may follow on the delimiter line.
    let lineEnd = after;
    while (lineEnd < end && (buf[lineEnd] === 0x20 || buf[lineEnd] === 0x09 || buf[lineEnd] === CR)) lineEnd++;
    if (lineEnd < end && buf[lineEnd] !== LF) continue;
    const next = lineEnd < end ? lineEnd + 1 : end;
    if (partStart >= 0) {
      let partEnd = at;
      if (partEnd > start && buf[partEnd - 1] === LF) partEnd--;
      if (partEnd > start && buf[partEnd - 1] === CR) partEnd--;
      ranges.push([partStart, Math.max(partStart, partEnd)]);
    }
    if (close) return ranges;
    partStart = next;
    pos = next;
  }
  if (partStart >= 0) ranges.push([partStart, end]);
  return ranges;
}

function countLines(buf: Buffer, start: number, end: number): number {
  let lines = 0;
  let pos = start;
  for (;;) {
    const lf = buf.indexOf(LF, pos);
    if (lf < 0 || lf >= end) break;
    lines++;
    pos = lf + 1;
  }
  if (pos < end) lines++; // a last line without its line break still counts
  return lines;
}

function parseValue(value: string): { value: string; params: Params } {
  try {
    const parsed = libmime.parseHeaderValue(value, { stripComments: true });
    return { value: parsed.value.trim(), params: Object.entries(parsed.params).map(([k, v]) => [k.toUpperCase(), String(v)]) };
  } catch {
    return { value: value.trim(), params: [] };
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function contentType(value: string | undefined, defaults: DefaultType): { type: string; subtype: string; params: Params } {
  const fallback = () => ({
    ...defaults,
    params: defaults.type === 'TEXT' ? ([['CHARSET', 'US-ASCII']] as Params) : [],
  });
  if (value === undefined) return fallback();
  const parsed = parseValue(value);
  const slash = parsed.value.indexOf('/');
  const type = parsed.value.slice(0, slash).trim();
  const subtype = parsed.value.slice(slash + 1).trim();
  if (slash < 0 || !TOKEN.test(type) || !TOKEN.test(subtype)) return fallback();
  return { type: type.toUpperCase(), subtype: subtype.toUpperCase(), params: parsed.params };
}

function encoding(value: string | undefined): string {
  const token = value?.replace(/\([^)]*\)/g, '').trim().split(/\s+/)[0];
  return token ? token.toUpperCase() : '7BIT';
}

function disposition(value: string | undefined): MimePart['disposition'] {
  if (value === undefined) return null;
  const parsed = parseValue(value);
  if (!TOKEN.test(parsed.value)) return null;
  return { type: parsed.value.toUpperCase(), params: parsed.params };
}

function language(value: string | undefined): string[] | null {
  if (value === undefined) return null;
  const tags = value
    .replace(/\([^)]*\)/g, '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  return tags.length ? tags : null;
}

/** Follows a section part path (RFC 3501 6.4.5: "1.2.3"); undefined when there is no such part. */
export function findPart(root: MimePart, path: number[]): MimePart | undefined {
  let node = root;
  for (let i = 0; i < path.length; i++) {
    const n = path[i]!;
    // Entering a MESSAGE/RFC822 part numbers the parts of the message inside it.
    if (i > 0) {
      if (node.message) node = node.message;
      else if (!node.parts) return undefined;
    }
    if (node.parts) {
      const child = node.parts[n - 1];
      if (!child) return undefined;
      node = child;
    } else if (n !== 1) {
      return undefined;
    }
  }
  return node;
}
