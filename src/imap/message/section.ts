// Body sections (RFC 3501 6.4.5 BODY[section]<partial>): parsing the section text and
// cutting its bytes out of the raw message.
import { parseHeaderFields, selectHeaderFields, type HeaderField } from '../../mime/header.js';
import { findPart, type MimePart } from '../../mime/mime.js';

export type SectionText = 'HEADER' | 'HEADER.FIELDS' | 'HEADER.FIELDS.NOT' | 'TEXT' | 'MIME';

export interface Section {
  /** Part numbers, empty for the whole message. */
  path: number[];
  text?: SectionText;
  /** Field names for HEADER.FIELDS and HEADER.FIELDS.NOT, as the client wrote them. */
  fields?: string[];
}

export class SectionError extends Error {}

/**
 * Parses what sits between the brackets: "", "1.2", "1.2.MIME", "HEADER.FIELDS (A B)".
 * Field names may be atoms or quoted strings.
 */
export function parseSection(text: string): Section {
  const m = /^((?:[1-9]\d*\.)*[1-9]\d*)?(?:(?:^|\.)(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?(.*)$/is.exec(text.trim());
  if (!m) throw new SectionError(`bad section ${text}`);
  const path = m[1] ? m[1].split('.').map(Number) : [];
  if (path.some((n) => !Number.isSafeInteger(n))) throw new SectionError('bad section part number');
  const section: Section = { path };
  if (m[2]) section.text = m[2].toUpperCase() as SectionText;
  const rest = m[3]!.trim();
  if (section.text === 'HEADER.FIELDS' || section.text === 'HEADER.FIELDS.NOT') {
    const list = /^\((.*)\)$/s.exec(rest);
    if (!list) throw new SectionError('HEADER.FIELDS needs a list of field names');
    section.fields = parseFieldNames(list[1]!);
    if (section.fields.length === 0) throw new SectionError('HEADER.FIELDS needs at least one field name');
  } else if (rest !== '') {
    throw new SectionError(`bad section ${text}`);
  }
  if (section.text === 'MIME' && path.length === 0) throw new SectionError('MIME needs a part number');
  return section;
}

function parseFieldNames(text: string): string[] {
  const names: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|([^\s()"]+)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) names.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return names;
}

/** The section as it is named in the response: `1.2.HEADER.FIELDS (FROM TO)`. */
export function formatSection(section: Section): string {
  const parts: string[] = section.path.map(String);
  if (section.text) parts.push(section.text);
  let out = parts.join('.');
  if (section.fields) out += ` (${section.fields.map(fieldNameText).join(' ')})`;
  return out;
}

const fieldNameText = (name: string): string => (/^[!#$&'+\-.0-9A-Z^_`a-z|~]+$/.test(name) ? name : JSON.stringify(name));

/**
 * The bytes of a section, or null when the message has no such part. HEADER, TEXT and
 * HEADER.FIELDS after a part number need a MESSAGE/RFC822 part; elsewhere they are empty.
 */
export function sectionBytes(raw: Buffer, root: MimePart, section: Section): Buffer | null {
  if (section.path.length === 0 && !section.text) return raw;
  const node = section.path.length === 0 ? root : findPart(root, section.path);
  if (!node) return null;
  if (!section.text) return raw.subarray(node.bodyStart, node.bodyEnd);
  if (section.text === 'MIME') return raw.subarray(node.headerStart, node.bodyStart);
  const message = section.path.length === 0 ? root : node.message;
  if (!message) return Buffer.alloc(0);
  switch (section.text) {
    case 'HEADER':
      return raw.subarray(message.headerStart, message.bodyStart);
    case 'TEXT':
      return raw.subarray(message.bodyStart, message.bodyEnd);
    default:
      return selectHeaderFields(raw, headerFieldsOf(raw, message), section.fields ?? [], section.text === 'HEADER.FIELDS.NOT');
  }
}

/**
 * The fields of a message's header, split once per parse: the parse cache keeps the MimePart, and
 * clients ask for HEADER.FIELDS of the same messages again and again (a list view's columns). The
 * offsets are the blob's, so any copy of its bytes gives the same fields.
 */
const headerFields = new WeakMap<MimePart, HeaderField[]>();

export function headerFieldsOf(raw: Buffer, message: MimePart): HeaderField[] {
  let fields = headerFields.get(message);
  if (!fields) headerFields.set(message, (fields = parseHeaderFields(raw, message.headerStart, message.bodyStart)));
  return fields;
}

/** `<origin.length>` (RFC 3501 6.4.5): the slice, empty when origin is past the end. */
export function partial(bytes: Buffer, origin: number, length?: number): Buffer {
  if (origin >= bytes.length) return Buffer.alloc(0);
  return bytes.subarray(origin, length === undefined ? undefined : origin + length);
}
