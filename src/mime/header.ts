// Header blocks on raw bytes (RFC 5322 2.2): where a header ends, its fields with byte
// offsets, and field values as text. Accepts CRLF and bare LF; never throws.

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** One header field as it sits in the message: `[start, end)` covers every line of it. */
export interface HeaderField {
  /** Lower-case field name; '' for a line that is not a field (garbage kept for byte-exact output). */
  name: string;
  start: number;
  /** Just after the colon. */
  valueStart: number;
  /** Just after the last line's LF (or the end of the block). */
  end: number;
}

/**
 * Where the body starts: just after the first empty line, so the header includes that
 * line (RFC 3501 6.4.5 BODY[HEADER]). Without an empty line the whole range is header.
 */
export function findBodyStart(buf: Buffer, start: number, end: number): number {
  let pos = start;
  while (pos < end) {
    if (buf[pos] === LF) return pos + 1;
    if (buf[pos] === CR && pos + 1 < end && buf[pos + 1] === LF) return pos + 2;
    const lf = buf.indexOf(LF, pos);
    if (lf < 0 || lf >= end) return end;
    pos = lf + 1;
  }
  return end;
}

/** Splits `[start, end)` (a header block, blank line included or not) into fields. */
export function parseHeaderFields(buf: Buffer, start: number, end: number): HeaderField[] {
  const fields: HeaderField[] = [];
  let current: HeaderField | undefined;
  let pos = start;
  while (pos < end) {
    const lf = buf.indexOf(LF, pos);
    const lineEnd = lf < 0 || lf >= end ? end : lf + 1;
    const first = buf[pos];
    if (first === LF || (first === CR && (pos + 1 === end || buf[pos + 1] === LF))) break; // the blank line
    if ((first === SP || first === HTAB) && current) {
      current.end = lineEnd;
    } else {
      current = { name: fieldName(buf, pos, lineEnd), start: pos, valueStart: pos, end: lineEnd };
      if (current.name) current.valueStart = buf.indexOf(COLON, pos) + 1;
      fields.push(current);
    }
    pos = lineEnd;
  }
  return fields;
}

function fieldName(buf: Buffer, start: number, end: number): string {
  let colon = -1;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c === COLON) {
      colon = i;
      break;
    }
    if (c <= SP && c !== HTAB && c !== SP) return '';
    if (c > 0x7e) return '';
  }
  if (colon <= start) return '';
  // obs-optional allows WSP before the colon; WSP inside the name makes it garbage.
  const name = buf.toString('latin1', start, colon).replace(/[ \t]+$/, '');
  if (!name || /[ \t]/.test(name)) return '';
  return name.toLowerCase();
}

/** Bytes as text: UTF-8 when valid (RFC 6532), Latin-1 otherwise so no byte is lost. */
export function bytesToText(buf: Buffer, start = 0, end = buf.length): string {
  const slice = buf.subarray(start, end);
  for (let i = 0; i < slice.length; i++) {
    if (slice[i]! > 0x7f) {
      try {
        return utf8Strict.decode(slice);
      } catch {
        return slice.toString('latin1');
      }
    }
  }
  return slice.toString('latin1');
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** The unfolded, trimmed value of a field, not decoded (RFC 5322 2.2.3). */
export function fieldValue(buf: Buffer, field: HeaderField): string {
  return bytesToText(buf, field.valueStart, field.end).replace(/\r?\n/g, '').replace(/\r/g, '').trim();
}

/** A parsed header block: field values by name in message order. */
export class HeaderMap {
  constructor(
    readonly buf: Buffer,
    readonly fields: HeaderField[],
  ) {}

  static parse(buf: Buffer, start = 0, end = buf.length): HeaderMap {
    return new HeaderMap(buf, parseHeaderFields(buf, start, end));
  }

  /** First value of a field, or undefined when absent. */
  first(name: string): string | undefined {
    const field = this.fields.find((f) => f.name === name);
    return field ? fieldValue(this.buf, field) : undefined;
  }

  all(name: string): string[] {
    return this.fields.filter((f) => f.name === name).map((f) => fieldValue(this.buf, f));
  }
}

/**
 * The bytes of the fields whose names are (or with `not`, are not) in `names`, in message
 * order, followed by the blank line (RFC 3501 6.4.5 HEADER.FIELDS / HEADER.FIELDS.NOT).
 */
export function selectHeaderFields(buf: Buffer, fields: HeaderField[], names: string[], not: boolean): Buffer {
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  const chunks: Buffer[] = [];
  for (const field of fields) {
    const listed = field.name !== '' && wanted.has(field.name);
    if (listed === not) continue;
    chunks.push(buf.subarray(field.start, field.end));
    if (buf[field.end - 1] !== LF) chunks.push(CRLF);
  }
  chunks.push(CRLF);
  return Buffer.concat(chunks);
}

const CRLF = Buffer.from('\r\n');
