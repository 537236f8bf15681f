// IMAP errors by kind, mapped to responses in one place (Session.dispatch):
// a user error is a tagged NO, a syntax error a tagged BAD, a store fault NO [UNAVAILABLE]
// with a log line, anything else NO [SERVERBUG] with a log line. Response codes: RFC 5530.
import { StoreError } from '../store/types.js';

export const CODE = {
  alreadyExists: 'ALREADYEXISTS',
  authenticationFailed: 'AUTHENTICATIONFAILED',
  badCharset: 'BADCHARSET (UTF-8 US-ASCII)',
  cannot: 'CANNOT',
  clientBug: 'CLIENTBUG',
  limit: 'LIMIT',
  nonexistent: 'NONEXISTENT',
  noPerm: 'NOPERM',
  overQuota: 'OVERQUOTA',
  privacyRequired: 'PRIVACYREQUIRED',
  readOnly: 'READ-ONLY',
  readWrite: 'READ-WRITE',
  serverBug: 'SERVERBUG',
  tooBig: 'TOOBIG',
  tryCreate: 'TRYCREATE',
  unavailable: 'UNAVAILABLE',
  unknownCte: 'UNKNOWN-CTE',
} as const;

export class ImapError extends Error {
  constructor(
    readonly kind: 'NO' | 'BAD',
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'ImapError';
  }
}

/** The command was understood but cannot be done. */
export const no = (message: string, code?: string): ImapError => new ImapError('NO', message, code);
/** The command is malformed or not valid here. */
export const bad = (message: string, code?: string): ImapError => new ImapError('BAD', message, code);

/** A StoreError as the client should see it; undefined for faults that are logged (temporary). */
export function storeErrorReply(error: StoreError, fallbackCode?: string): ImapError | undefined {
  switch (error.code) {
    case 'not-found':
      return no(error.message, fallbackCode ?? CODE.nonexistent);
    case 'conflict':
      return no(error.message, CODE.alreadyExists);
    case 'quota':
      return no('quota exceeded', CODE.overQuota);
    case 'invalid':
      return no(error.message, CODE.cannot);
    case 'unavailable':
      return undefined;
  }
}

export { StoreError };
