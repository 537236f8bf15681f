// Reply codes (RFC 5321 4.2.3) and the enhanced status codes (RFC 3463) that go with them.
// Every refusal our hooks make is one of the replies below, so each code is decided here.

import { SmtpCode, SmtpReplies, type SmtpReplyParts } from '../protocol/smtp-replies.js';

/** The codes, named once for the node and the gateway (src/protocol/smtp-replies.ts). */
export const Code = SmtpCode;

/**
 * A reply our hooks hand to smtp-server. The text starts with its enhanced status code;
 * the connection (connection.ts) sees that and sends it instead of the library's guess.
 */
export class SmtpReply extends Error {
  readonly responseCode: number;

  constructor(code: number, enhanced: string, text: string) {
    super(`${enhanced} ${text}`);
    this.name = 'SmtpReply';
    this.responseCode = code;
  }
}

/** An enhanced status code at the start of a reply text (RFC 3463 2). */
export const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;

const fromParts = ({ code, enhanced, text }: SmtpReplyParts) => new SmtpReply(code, enhanced, text);

export const Replies = {
  tooManyConnections: () => new SmtpReply(Code.ServiceClosing, '4.7.0', 'Too many connections, try again later'),
  tooManyBadCommands: () => fromParts(SmtpReplies.tooManyBadCommands),
  shuttingDown: () => new SmtpReply(Code.ServiceClosing, '4.3.2', 'Server shutting down, try again later'),
  temporaryFailure: () => new SmtpReply(Code.LocalError, '4.3.0', 'Temporary local failure, try again later'),
  mailboxFull: () => new SmtpReply(Code.InsufficientStorage, '4.2.2', 'Mailbox full'),
  unknownUser: () => new SmtpReply(Code.MailboxUnavailable, '5.1.1', 'No such user here'),
  relayDenied: () => new SmtpReply(Code.MailboxUnavailable, '5.7.1', 'Relay access denied'),
  nulBytes: () => new SmtpReply(Code.TransactionFailed, '5.6.0', 'Message contains NUL bytes'),
  // RFC 7489 10.3 suggests 550 5.7.1 for a DMARC rejection.
  policyRejected: (reason: string) => new SmtpReply(Code.MailboxUnavailable, '5.7.1', `Message refused by policy: ${reason}`),
  // Submission (RFC 6409, RFC 4954)
  authRequired: () => new SmtpReply(Code.AuthRequired, '5.7.0', 'Authentication required'),
  authInvalid: () => fromParts(SmtpReplies.authInvalid),
  authLocked: () => fromParts(SmtpReplies.authLocked),
  authUnavailable: () => new SmtpReply(Code.TemporaryAuthFailure, '4.7.0', 'Temporary authentication failure'),
  tooManyAuthFailures: () => fromParts(SmtpReplies.tooManyAuthFailures),
  senderNotOwned: () => new SmtpReply(Code.MailboxNameNotAllowed, '5.7.1', 'Sender address does not belong to you'),
  headerSenderNotOwned: (field: 'From' | 'Sender', user: string) =>
    new SmtpReply(Code.MailboxUnavailable, '5.7.1', `The ${field}: header must name your own address (${user}), not someone else's`),
} as const;
