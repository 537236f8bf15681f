// Delivery status notifications (RFC 3464): a multipart/report telling the sender which
// recipients failed (or are delayed) and why, with the original message's headers.
import { randomBytes } from 'node:crypto';

export interface DsnRecipient {
  recipient: string;
  /** The remote server's reply or our own reason, e.g. "550 5.1.1 no such user". */
  diagnostic: string;
  remoteMta?: string;
}

export interface DsnInput {
  kind: 'failed' | 'delayed';
  reportingMta: string;
  sender: string;
  arrivalDate: Date;
  recipients: DsnRecipient[];
  original: Buffer;
  /** For 'delayed': until when we keep trying. */
  retryUntil?: Date;
  now?: Date;
}

/** The enhanced status code of a reply (RFC 3463), or one derived from its class. */
export function statusOf(diagnostic: string): string {
  const enhanced = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(diagnostic);
  if (enhanced) return enhanced[1]!;
  if (/^5/.test(diagnostic)) return '5.0.0';
  return '4.0.0';
}

/** The header block of a message: everything before the first empty line. */
export function headerBlock(raw: Buffer): Buffer {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 2 : lf >= 0 ? lf + 1 : raw.length;
  return raw.subarray(0, end);
}

/** One header field per line: a diagnostic from a remote server must not break the report. */
const oneLine = (text: string) => text.replace(/[\r\n]+/g, ' ').slice(0, 900);

export function buildDsn(input: DsnInput): Buffer {
  const now = input.now ?? new Date();
  const boundary = `dsn-${randomBytes(12).toString('hex')}`;
  const failed = input.kind === 'failed';
  const human = failed
    ? 'This is the mail system at ' + input.reportingMta + '.\r\n\r\nYour message could not be delivered to one or more recipients. It has been returned below.\r\n'
    : 'This is the mail system at ' + input.reportingMta + '.\r\n\r\nYour message has not been delivered yet to one or more recipients. The mail system will keep trying' +
      (input.retryUntil ? ` until ${input.retryUntil.toUTCString()}` : '') + '. You do not need to resend it.\r\n';
  const perRecipient = input.recipients
    .map((r) => {
      const lines = [
        `Final-Recipient: rfc822; ${oneLine(r.recipient)}`,
        `Action: ${failed ? 'failed' : 'delayed'}`,
        `Status: ${statusOf(r.diagnostic)}`,
      ];
      if (r.remoteMta) lines.push(`Remote-MTA: dns; ${oneLine(r.remoteMta)}`);
      lines.push(`Diagnostic-Code: smtp; ${oneLine(r.diagnostic)}`, `Last-Attempt-Date: ${now.toUTCString()}`);
      if (!failed && input.retryUntil) lines.push(`Will-Retry-Until: ${input.retryUntil.toUTCString()}`);
      return lines.join('\r\n');
    })
    .join('\r\n\r\n');
  const head = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>`,
    `To: <${input.sender}>`,
    `Subject: ${failed ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)'}`,
    `Date: ${now.toUTCString()}`,
    `Message-ID: <${Date.now()}.${randomBytes(6).toString('hex')}@${input.reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated delivery status notification.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    human,
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; ${input.reportingMta}`,
    `Arrival-Date: ${input.arrivalDate.toUTCString()}`,
    '',
    perRecipient,
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head), headerBlock(input.original), Buffer.from(`\r\n--${boundary}--\r\n`)]);
}
