// SMTP reply codes (RFC 5321 4.2.2, 4.2.3) with their enhanced status codes (RFC 3463), named once
// for the node's hooks (src/smtp/codes.ts) and the gateway's SMTP front (src/gateway/smtp-front.ts).

export const SmtpCode = {
  Ready: 220,
  Closing: 221,
  AuthSucceeded: 235,
  Ok: 250,
  AuthContinue: 334,
  StartData: 354,
  ServiceClosing: 421,
  LocalError: 451,
  InsufficientStorage: 452,
  TemporaryAuthFailure: 454,
  SyntaxError: 500,
  ParameterSyntax: 501,
  NotImplemented: 502,
  BadSequence: 503,
  ParameterNotImplemented: 504,
  AuthRequired: 530,
  AuthInvalid: 535,
  MailboxUnavailable: 550,
  MailboxNameNotAllowed: 553,
  TransactionFailed: 554,
  ParametersNotRecognized: 555,
} as const;

/** One reply: its code, enhanced status code and text. */
export interface SmtpReplyParts {
  code: number;
  enhanced: string;
  text: string;
}

const reply = (code: number, enhanced: string, text: string): SmtpReplyParts => ({ code, enhanced, text });

/** The reply as a line on the wire, without CRLF (RFC 2034 3: the enhanced code after the reply code). */
export function replyLine({ code, enhanced, text }: SmtpReplyParts): string {
  return `${code} ${enhanced} ${text}`;
}

/** Replies both sides of the gateway give, and the gateway's own. */
export const SmtpReplies = {
  ok: reply(SmtpCode.Ok, '2.0.0', 'OK'),
  flushed: reply(SmtpCode.Ok, '2.0.0', 'Flushed'),
  readyForTls: reply(SmtpCode.Ready, '2.0.0', 'Ready to start TLS'),
  authSucceeded: reply(SmtpCode.AuthSucceeded, '2.7.0', 'Authentication successful'),
  idleTooLong: reply(SmtpCode.ServiceClosing, '4.4.2', 'Idle too long, closing connection'),
  linkNotAuthenticated: reply(SmtpCode.ServiceClosing, '4.7.0', 'Gateway link not authenticated'),
  tooManyBadCommands: reply(SmtpCode.ServiceClosing, '4.7.0', 'Too many bad commands, closing connection'),
  tooManyAuthFailures: reply(SmtpCode.ServiceClosing, '4.7.0', 'Too many failed authentications, closing connection'),
  nodeUnavailable: reply(SmtpCode.LocalError, '4.3.2', 'Mail node unavailable, try again later'),
  authLocked: reply(SmtpCode.TemporaryAuthFailure, '4.7.0', 'Too many failed logins from your address, try again later'),
  lineTooLong: reply(SmtpCode.SyntaxError, '5.5.2', 'Line too long'),
  bareLineBreak: reply(SmtpCode.SyntaxError, '5.5.2', 'Syntax error: bare CR, LF or NUL in command line'),
  unrecognized: reply(SmtpCode.SyntaxError, '5.5.1', 'Command unrecognized'),
  authCancelled: reply(SmtpCode.ParameterSyntax, '5.7.0', 'Authentication cancelled'),
  bdatNotSupported: reply(SmtpCode.NotImplemented, '5.5.1', 'BDAT not supported, use DATA'),
  authNotHere: reply(SmtpCode.NotImplemented, '5.5.1', 'AUTH not available here'),
  ehloFirst: reply(SmtpCode.BadSequence, '5.5.1', 'Say EHLO first'),
  tlsNotAvailable: reply(SmtpCode.BadSequence, '5.5.1', 'TLS not available'),
  alreadyAuthenticated: reply(SmtpCode.BadSequence, '5.5.1', 'Already authenticated'),
  unknownMechanism: reply(SmtpCode.ParameterNotImplemented, '5.5.4', 'Unrecognized authentication type'),
  startTlsFirst: reply(SmtpCode.AuthRequired, '5.7.0', 'Must issue a STARTTLS command first'),
  authInvalid: reply(SmtpCode.AuthInvalid, '5.7.8', 'Authentication credentials invalid'),
  talkingEarly: (host: string) => reply(SmtpCode.TransactionFailed, '5.5.0', `${host} talking before the greeting, goodbye`),
  closing: (host: string) => reply(SmtpCode.Closing, '2.0.0', `${host} closing connection`),
  helloSyntax: (verb: string) => reply(SmtpCode.ParameterSyntax, '5.5.4', `Syntax: ${verb} hostname`),
  parameterNotRecognized: (name: string) => reply(SmtpCode.ParametersNotRecognized, '5.5.4', `${name} parameter not recognized`),
} as const;
