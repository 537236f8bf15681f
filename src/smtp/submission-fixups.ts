// What a submission server does to a message from a user's client (RFC 6409 8): add Date
// and Message-ID when the client left them out, and take out Bcc so the recipients it names
// stay hidden. Only the header block changes; the body bytes stay exactly as sent.
import { randomBytes } from 'node:crypto';
import { rfc5322Date } from './message.js';

/** End of the header block: the offset of the empty line's CRLF, or the whole message. */
function headerEnd(raw: Buffer): number {
  if (raw.subarray(0, 2).toString('latin1') === '\r\n') return 0;
  const at = raw.indexOf('\r\n\r\n');
  return at < 0 ? raw.length : at + 2;
}

export function fixUpSubmission(raw: Buffer, hostname: string, now = new Date()): Buffer {
  const end = headerEnd(raw);
  const header = raw.subarray(0, end).toString('latin1');
  // Fields with their folded continuation lines (RFC 5322 2.2.3).
  const fields = header.match(/[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*/g) ?? [];
  // A header we cannot split cleanly (bare LF, no final CRLF) is left exactly as it came.
  if (fields.join('') !== header) return raw;
  const named = (field: string, name: string) => field.slice(0, name.length + 1).toLowerCase() === `${name}:`;
  const kept = fields.filter((field) => !named(field, 'bcc')); // RFC 6409 8.1 (and RFC 5322 3.6.3)
  const added: string[] = [];
  if (!kept.some((f) => named(f, 'date'))) added.push(`Date: ${rfc5322Date(now)}\r\n`); // RFC 6409 8.3
  if (!kept.some((f) => named(f, 'message-id'))) added.push(`Message-ID: <${randomBytes(12).toString('hex')}@${hostname}>\r\n`); // 8.3
  if (added.length === 0 && kept.length === fields.length) return raw;
  return Buffer.concat([Buffer.from(kept.join(''), 'latin1'), Buffer.from(added.join(''), 'latin1'), raw.subarray(end)]);
}
