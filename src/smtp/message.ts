// The message of one DATA command: its bytes as the client sent them (dot-unstuffed by the
// library), and the trace header we put in front (RFC 5321 4.4).
import { isIPv6 } from 'node:net';
import type { Readable } from 'node:stream';
import type { SMTPServerSession } from 'smtp-server';

/**
 * Reads the message, keeping at most `maxBytes`: past that the rest is read and dropped
 * (the client is still sending it) and the result is undefined. Rejects when the client
 * goes away before the final dot.
 */
export function readMessage(stream: Readable, maxBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
      else chunks.length = 0;
    });
    stream.once('end', () => resolve(size <= maxBytes ? Buffer.concat(chunks, size) : undefined));
    stream.once('error', reject);
    stream.once('close', () => {
      if (!stream.readableEnded) reject(new Error('connection closed during DATA'));
    });
  });
}

/** RFC 5322 3.3 date-time, in UTC. */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

function addressLiteral(ip: string): string {
  const bare = ip.replace(/^::ffff:(?=\d+\.)/, '');
  return isIPv6(bare) ? `[IPv6:${bare}]` : `[${bare}]`;
}

/**
 * RFC 5321 4.4 trace header:
 *   Received: from <helo> (<reverse name> [ip]) by <us> with ESMTP[S][A] id <id> for <rcpt>; <date>
 * The FOR clause only with one recipient: with several it would reveal every Bcc to all of them.
 */
export function receivedHeader(session: SMTPServerSession, hostname: string, recipients: string[], now = new Date()): Buffer {
  const literal = addressLiteral(session.remoteAddress);
  const reverse = session.clientHostname && !session.clientHostname.startsWith('[') ? `${session.clientHostname} ` : '';
  const helo = session.hostNameAppearsAs || literal;
  // RFC 6531 3.7.3: a transaction that used SMTPUTF8 is "UTF8SMTP" (with S and A as usual).
  const protocol = session.envelope.smtpUtf8 ? session.transmissionType.replace(/^ESMTP/, 'UTF8SMTP') : session.transmissionType;
  const lines = [
    `Received: from ${helo} (${reverse}${literal})`,
    `\tby ${hostname} with ${protocol} id ${session.id}.${session.transaction}`,
  ];
  if (recipients.length === 1) lines.push(`\tfor <${recipients[0]}>;`);
  else lines[1] += ';';
  lines.push(`\t${rfc5322Date(now)}`);
  return Buffer.from(lines.join('\r\n') + '\r\n', 'utf8');
}
