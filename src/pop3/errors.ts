// POP3 replies by kind, mapped to -ERR lines in one place (Session.fail).
// Response codes: RFC 2449 8.1 (IN-USE), RFC 3206 4 (SYS/TEMP, SYS/PERM) and 5 (AUTH).

export const RESP_CODE = {
  auth: '[AUTH]',
  inUse: '[IN-USE]',
  sysTemp: '[SYS/TEMP]',
  sysPerm: '[SYS/PERM]',
} as const;

/**
 * - user: the command was understood but cannot be done (no such message, ...).
 * - syntax: unknown command, wrong state, bad arguments; counts towards limits.badCommands.
 * - auth: failed or refused authentication ([AUTH]); counts towards limits.authFailures.
 * Store faults and bugs are not Pop3Errors: Session.fail answers them with [SYS/TEMP] or
 * [SYS/PERM] and logs the cause.
 */
export type Pop3ErrorKind = 'user' | 'syntax' | 'auth';

export class Pop3Error extends Error {
  constructor(
    readonly kind: Pop3ErrorKind,
    message: string,
    /** A response code to put before the text, overriding the kind's default. */
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'Pop3Error';
  }

  /** The reply line, without CRLF. */
  toReply(): string {
    const code = this.code ?? (this.kind === 'auth' ? RESP_CODE.auth : undefined);
    return code ? `-ERR ${code} ${this.message}` : `-ERR ${this.message}`;
  }
}

/** The client went away while a reply was being written: the session just ends. */
export class ConnectionClosed extends Error {
  override name = 'ConnectionClosed';
  constructor() {
    super('connection closed');
  }
}

export const userError = (message: string, code?: string) => new Pop3Error('user', message, code);
export const syntaxError = (message: string) => new Pop3Error('syntax', message);
export const authError = (message: string) => new Pop3Error('auth', message);
