// BODYSTRUCTURE and ENVELOPE as typed objects (RFC 3501 7.4.2), so tests can compare what
// matters without depending on a server's quoting or letter case.
import { str, type Value } from '../clients/imap.js';

export interface Part {
  type: string;
  subtype: string;
  params: Record<string, string>;
  id?: string | null;
  description?: string | null;
  encoding?: string;
  size?: number;
  lines?: number;
  envelope?: Value[];
  body?: Part;
  parts?: Part[];
  md5?: string | null;
  disposition?: { type: string; params: Record<string, string> } | null;
  language?: Value;
  location?: string | null;
}

function text(value: Value | undefined): string | null {
  return value === null || value === undefined ? null : str(value);
}

/** A parameter list: names lower case, RFC 2231 continuations and charsets decoded. */
export function params(value: Value | undefined): Record<string, string> {
  if (!Array.isArray(value)) return {};
  const raw: [string, string][] = [];
  for (let i = 0; i + 1 < value.length; i += 2) raw.push([str(value[i]).toLowerCase(), str(value[i + 1])]);
  const pieces = new Map<string, { index: number; value: string; encoded: boolean }[]>();
  const out: Record<string, string> = {};
  for (const [name, v] of raw) {
    const match = /^([^*]+)\*(?:(\d+)\*?|)$/.exec(name);
    if (!match) {
      out[name] = v;
      continue;
    }
    const base = match[1]!;
    const list = pieces.get(base) ?? [];
    list.push({ index: Number(match[2] ?? 0), value: v, encoded: name.endsWith('*') });
    pieces.set(base, list);
  }
  for (const [base, list] of pieces) {
    list.sort((a, b) => a.index - b.index);
    let charset = 'utf-8';
    const bytes: number[] = [];
    list.forEach((piece, i) => {
      let v = piece.value;
      if (piece.encoded && i === 0) {
        const parts = v.split("'");
        if (parts.length >= 3) {
          charset = parts[0] || 'utf-8';
          v = parts.slice(2).join("'");
        }
      }
      if (piece.encoded) {
        for (let j = 0; j < v.length; j++) {
          if (v[j] === '%' && /^[0-9a-f]{2}$/i.test(v.slice(j + 1, j + 3))) {
            bytes.push(parseInt(v.slice(j + 1, j + 3), 16));
            j += 2;
          } else bytes.push(...Buffer.from(v[j]!, 'utf8'));
        }
      } else bytes.push(...Buffer.from(v, 'utf8'));
    });
    out[base] = new TextDecoder(charset).decode(Buffer.from(bytes));
  }
  return out;
}

function extensions(part: Part, rest: Value[], withMd5: boolean): void {
  let i = 0;
  if (withMd5) part.md5 = text(rest[i++]);
  if (i < rest.length) {
    const disposition = rest[i++];
    part.disposition = Array.isArray(disposition) ? { type: str(disposition[0]).toLowerCase(), params: params(disposition[1]) } : null;
  }
  if (i < rest.length) part.language = rest[i++];
  if (i < rest.length) part.location = text(rest[i++]);
}

/** Parses a BODYSTRUCTURE (or BODY) value. */
export function parsePart(value: Value | undefined): Part {
  if (!Array.isArray(value)) throw new Error(`not a body structure: ${JSON.stringify(value)}`);
  if (Array.isArray(value[0])) {
    let i = 0;
    const parts: Part[] = [];
    while (Array.isArray(value[i])) parts.push(parsePart(value[i++]));
    const part: Part = { type: 'multipart', subtype: str(value[i++]).toLowerCase(), params: {}, parts };
    if (i < value.length) part.params = params(value[i++]);
    extensions(part, value.slice(i), false);
    return part;
  }
  const [type, subtype, fields, id, description, encoding, size] = value;
  const part: Part = {
    type: str(type).toLowerCase(),
    subtype: str(subtype).toLowerCase(),
    params: params(fields),
    id: text(id),
    description: text(description),
    encoding: str(encoding).toLowerCase(),
    size: Number(size),
  };
  let rest = value.slice(7);
  if (part.type === 'text') {
    part.lines = Number(rest[0]);
    rest = rest.slice(1);
  } else if (part.type === 'message' && part.subtype === 'rfc822') {
    part.envelope = rest[0] as Value[];
    part.body = parsePart(rest[1]);
    part.lines = Number(rest[2]);
    rest = rest.slice(3);
  }
  extensions(part, rest, true);
  return part;
}

/** A compact outline: "multipart/mixed[text/plain,message/rfc822{text/plain}]". */
export function outline(part: Part): string {
  const name = `${part.type}/${part.subtype}`;
  if (part.parts) return `${name}[${part.parts.map(outline).join(',')}]`;
  if (part.body) return `${name}{${outline(part.body)}}`;
  return name;
}

/** The part at an IMAP part number ("2.1"), as the section spec addresses it. */
export function partAt(root: Part, path: string): Part {
  let part = root;
  for (const step of path.split('.').map(Number)) {
    if (part.body) part = part.body;
    if (part.parts) part = part.parts[step - 1]!;
    else if (step !== 1) throw new Error(`no part ${path}`);
  }
  return part;
}

export interface Address {
  name: string | null;
  mailbox: string | null;
  host: string | null;
}

export interface Envelope {
  date: string | null;
  subject: string | null;
  from: Address[] | null;
  sender: Address[] | null;
  replyTo: Address[] | null;
  to: Address[] | null;
  cc: Address[] | null;
  bcc: Address[] | null;
  inReplyTo: string | null;
  messageId: string | null;
}

function addresses(value: Value | undefined): Address[] | null {
  if (!Array.isArray(value)) return null;
  return value.map((entry) => {
    const [name, , mailbox, host] = entry as Value[];
    return { name: text(name), mailbox: text(mailbox), host: text(host) };
  });
}

export function parseEnvelope(value: Value | undefined): Envelope {
  if (!Array.isArray(value) || value.length !== 10) throw new Error(`not an envelope: ${JSON.stringify(value)}`);
  const [date, subject, from, sender, replyTo, to, cc, bcc, inReplyTo, messageId] = value;
  return {
    date: text(date),
    subject: text(subject),
    from: addresses(from),
    sender: addresses(sender),
    replyTo: addresses(replyTo),
    to: addresses(to),
    cc: addresses(cc),
    bcc: addresses(bcc),
    inReplyTo: text(inReplyTo),
    messageId: text(messageId),
  };
}
