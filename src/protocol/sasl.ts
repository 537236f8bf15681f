// The SASL exchanges the servers and the gateway's fronts take, once: PLAIN (RFC 4616) and LOGIN
// (draft-murchison-sasl-login), with an initial response (IMAP SASL-IR RFC 4959, POP3 RFC 5034 4)
// where "=" is an empty one, and "*" as a response cancelling (RFC 3501 6.2.2, RFC 5034 4).
// Pure: the protocol sends each challenge and reads the answer through `ask`, and turns a
// SaslError into its own reply.

/** The mechanisms we take, as AUTH=... (IMAP) and CAPA's SASL line (POP3) list them. */
export const SASL_MECHANISMS = ['PLAIN', 'LOGIN'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export function isSaslMechanism(name: string): name is SaslMechanism {
  return (SASL_MECHANISMS as readonly string[]).includes(name.toUpperCase());
}

export type SaslFailure = 'unsupported' | 'cancelled' | 'malformed-base64' | 'malformed' | 'bad-authzid';

export class SaslError extends Error {
  constructor(
    readonly reason: SaslFailure,
    message: string,
  ) {
    super(message);
    this.name = 'SaslError';
  }
}

export interface SaslCredentials {
  authcid: string;
  password: string;
}

/** Sends a challenge (base64 text, possibly empty) and resolves with the client's response line. */
export type SaslAsk = (challenge: string) => Promise<string>;

// RFC 4648 4 base64, padded.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** draft-murchison-sasl-login prompts: "Username:" and "Password:". */
const USERNAME_PROMPT = 'VXNlcm5hbWU6';
const PASSWORD_PROMPT = 'UGFzc3dvcmQ6';

/** A client response: "*" cancels, otherwise base64 of UTF-8. */
function decode(response: string): string {
  const text = response.trim();
  if (text === '*') throw new SaslError('cancelled', 'authentication cancelled');
  if (!BASE64.test(text)) throw new SaslError('malformed-base64', 'invalid base64 in authentication response');
  return Buffer.from(text, 'base64').toString('utf8');
}

/**
 * Runs the exchange for `mechanism` and returns who the client says it is and its password,
 * unchecked. `initial` is the initial response if the command carried one ("=" is empty).
 */
export async function saslExchange(mechanism: string, initial: string | undefined, ask: SaslAsk): Promise<SaslCredentials> {
  const name = mechanism.toUpperCase();
  if (!isSaslMechanism(name)) throw new SaslError('unsupported', `mechanism ${mechanism} is not supported`);
  const first = initial === undefined ? undefined : initial === '=' ? '' : initial;
  if (name === 'LOGIN') {
    // The user name (possibly as the initial response), then the password, each asked for.
    const authcid = decode(first ?? (await ask(USERNAME_PROMPT)));
    const password = decode(await ask(PASSWORD_PROMPT));
    return { authcid, password };
  }
  // RFC 4616 2: [authzid] NUL authcid NUL passwd; the empty challenge when no initial response.
  const parts = decode(first ?? (await ask(''))).split('\0');
  if (parts.length !== 3) throw new SaslError('malformed', 'malformed PLAIN response');
  const [authzid, authcid, password] = parts as [string, string, string];
  if (authcid === '') throw new SaslError('malformed', 'malformed PLAIN response');
  // Logging in as someone else (a different authorization identity) is not offered.
  if (authzid !== '' && authzid.toLowerCase() !== authcid.toLowerCase()) throw new SaslError('bad-authzid', 'authorization identity must be the user');
  return { authcid, password };
}
