// What the SMTP hooks ask of the store: who a recipient is, and storing one message for all
// recipients of a transaction in one durable deliver call.
import type { DeliveryOptions, DeliveryResult, DeliveryTarget, Directory, Mailstore } from '../store/types.js';
import { Replies } from './codes.js';

/** What SMTP (MX and submission) uses of the store: who a recipient is, and delivery. */
export type SmtpStore = Directory & Mailstore;

export type Recipient = { kind: 'local'; address: string; userId: number } | { kind: 'foreign'; address: string };

export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

/**
 * Local when the domain is ours: then the user must exist (550 5.1.1) and have room
 * (452 4.2.2, RFC 3463 3.3 "mailbox full"); `incomingBytes` is the size the client declared, if any.
 */
export async function resolveRecipient(store: Directory, address: string, incomingBytes: number): Promise<Recipient> {
  if (!address.includes('@')) throw Replies.unknownUser(); // a bare "postmaster": we keep no aliases
  if (!(await store.getDomain(domainOf(address)))) return { kind: 'foreign', address };
  const user = await store.getUser(address);
  if (!user || user.disabled) throw Replies.unknownUser();
  if (user.quotaBytes > 0 && user.usedBytes + Math.max(incomingBytes, 1) > user.quotaBytes) throw Replies.mailboxFull();
  return { kind: 'local', address, userId: user.id };
}

/**
 * One deliver call for the whole transaction: one stored copy of the bytes, local copies and
 * outbound queue entries in the same commit. Resolves once the commit is durable.
 */
export function storeMessage(
  store: Mailstore,
  raw: Buffer,
  recipients: Recipient[],
  extra: { sender: string; mailbox?: string; sentCopyUserId?: number; txnId?: string },
): Promise<DeliveryResult> {
  const targets: DeliveryTarget[] = [];
  const seenUsers = new Set<number>();
  const foreign: string[] = [];
  for (const recipient of recipients) {
    if (recipient.kind === 'foreign') foreign.push(recipient.address);
    else if (!seenUsers.has(recipient.userId)) {
      seenUsers.add(recipient.userId);
      targets.push(extra.mailbox ? { userId: recipient.userId, mailbox: extra.mailbox } : { userId: recipient.userId });
    }
  }
  if (extra.sentCopyUserId !== undefined) targets.push({ userId: extra.sentCopyUserId, mailbox: 'Sent', flags: ['\\Seen'] });
  const options: DeliveryOptions = foreign.length > 0 ? { outbound: { sender: extra.sender, recipients: foreign } } : {};
  // A transaction a gateway replays after a node died is stored once (DESIGN.md "Gateway").
  if (extra.txnId) options.txnId = extra.txnId;
  return store.deliver(raw, targets, options);
}
