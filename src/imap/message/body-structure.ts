// BODY and BODYSTRUCTURE (RFC 3501 7.4.2) from a part tree.
import type { ImapValue } from '../value.js';
import type { MimePart, Params } from '../../mime/mime.js';

/** `extensible`: BODYSTRUCTURE (with extension data); otherwise the BODY form. */
export function bodyStructure(part: MimePart, extensible: boolean): ImapValue[] {
  if (part.parts) {
    const out: ImapValue[] = part.parts.map((child) => bodyStructure(child, extensible));
    out.push(part.subtype);
    // body-ext-mpart: parameters, disposition, language, location.
    if (extensible) out.push(params(part.params), disposition(part), language(part), part.location);
    return out;
  }
  const out: ImapValue[] = [
    part.type,
    part.subtype,
    params(part.params),
    part.id,
    part.description,
    part.encoding,
    part.bodyEnd - part.bodyStart,
  ];
  if (part.message) out.push(part.message.envelope ?? null, bodyStructure(part.message, extensible), part.lines);
  else if (part.type === 'TEXT') out.push(part.lines);
  // body-ext-1part: MD5, disposition, language, location.
  if (extensible) out.push(part.md5, disposition(part), language(part), part.location);
  return out;
}

function params(list: Params): ImapValue {
  return list.length === 0 ? null : list.flat();
}

function disposition(part: MimePart): ImapValue {
  return part.disposition ? [part.disposition.type, params(part.disposition.params)] : null;
}

function language(part: MimePart): ImapValue {
  if (!part.language) return null;
  return part.language.length === 1 ? part.language[0]! : part.language;
}
