// Who a submission client may send as (issue 17 row 5): the envelope sender (MAIL FROM) and
// the message's From: and Sender: fields must be the authenticated user's own address, or,
// for users and domains listed in smtp.trustedSenders, any address of the user's domain.
// Outbound mail is DKIM-signed for the From domain, so this is what keeps alice from signing
// as ceo@ (RFC 6409 8 lets an MSA enforce it; RFC 5322 3.6.2 defines From and Sender).
import addressparser from 'nodemailer/lib/addressparser';
import { domainOf } from './delivery.js';
import { Replies, type SmtpReply } from './codes.js';

/**
 * trustedSenders entries: "user@domain" lets that user send as any address in their domain;
 * "domain" (or "@domain") lets every user of the domain do so.
 */
export function mayUseAddress(user: string, address: string, trustedSenders: readonly string[]): boolean {
  const self = user.toLowerCase();
  const wanted = address.trim().toLowerCase();
  if (wanted === self) return true;
  const domain = domainOf(self);
  if (!wanted.includes('@') || domainOf(wanted) !== domain) return false;
  return trustedSenders.some((entry) => {
    const trusted = entry.toLowerCase().replace(/^@/, '');
    return trusted === self || trusted === domain;
  });
}

/** The header block of a message, unfolded field by field (RFC 5322 2.2.3). */
function headerFields(raw: Buffer): { name: string; value: string }[] {
  const ends = [raw.indexOf('\r\n\r\n'), raw.indexOf('\n\n')].filter((at) => at >= 0);
  const end = raw.subarray(0, 2).toString('latin1') === '\r\n' || raw[0] === 0x0a ? 0 : ends.length > 0 ? Math.min(...ends) : raw.length;
  const header = raw.subarray(0, end).toString('utf8');
  const fields: { name: string; value: string }[] = [];
  // A bare CR counts as a line break too: some reader downstream may take it for one.
  for (const line of header.split(/\r\n|\n|\r/)) {
    if (/^[ \t]/.test(line) && fields.length > 0) fields[fields.length - 1]!.value += ` ${line.trim()}`;
    else {
      const colon = line.indexOf(':');
      if (colon > 0) fields.push({ name: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).trim() });
    }
  }
  return fields;
}

/** The refusal for a message whose From: or Sender: names someone else, or undefined when it may go. */
export function checkHeaderSenders(raw: Buffer, user: string, trustedSenders: readonly string[]): SmtpReply | undefined {
  const fields = headerFields(raw);
  for (const name of ['from', 'sender']) {
    const found = fields.filter((field) => field.name === name);
    // RFC 5322 3.6: at most one of each; a second one is what a spoofer would hide behind.
    if (found.length > 1) return Replies.headerSenderNotOwned(name === 'from' ? 'From' : 'Sender', user);
    if (found.length === 0) continue;
    const addresses = addressparser(found[0]!.value, { flatten: true });
    if (addresses.length === 0 || addresses.some((entry) => !mayUseAddress(user, entry.address ?? '', trustedSenders))) {
      return Replies.headerSenderNotOwned(name === 'from' ? 'From' : 'Sender', user);
    }
  }
  return undefined;
}
