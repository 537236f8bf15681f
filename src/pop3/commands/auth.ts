// RFC 5034 AUTH with the PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login) mechanisms.
// Without arguments it lists the mechanisms, as many clients expect.
import { isSaslMechanism, SASL_MECHANISMS as SASL, SaslError, saslExchange } from '../../protocol/sasl.js';
import { authError, syntaxError, userError } from '../errors.js';
import type { Session as Pop3Session } from '../session.js';
import { AUTHORIZATION, type Pop3Command } from './command.js';

/** The SASL mechanisms AUTH takes, as CAPA lists them. */
export const SASL_MECHANISMS: readonly string[] = SASL;

/** Sends a challenge (base64) and reads the client's answer. */
async function ask(session: Pop3Session, challenge: string): Promise<string> {
  await session.reply(`+ ${challenge}`);
  return session.readContinuation();
}

export const auth: Pop3Command = {
  states: AUTHORIZATION,
  async run(session, { words }) {
    const [mechanism, initial] = words;
    if (mechanism === undefined) {
      await session.replyLines('+OK', session.plaintextAllowed ? SASL_MECHANISMS : []);
      return;
    }
    const name = mechanism.toUpperCase();
    if (!isSaslMechanism(name)) throw userError(`unsupported mechanism ${mechanism}`);
    session.requirePlaintextAllowed();
    let credentials;
    try {
      credentials = await saslExchange(name, initial, (challenge) => ask(session, challenge));
    } catch (error) {
      if (!(error instanceof SaslError)) throw error;
      // RFC 5034 4: a cancelled or failed exchange is -ERR; bad base64 is a syntax error.
      if (error.reason === 'malformed-base64') throw syntaxError('malformed base64');
      if (error.reason === 'bad-authzid') throw authError('logging in as another user is not allowed');
      throw authError(error.message);
    }
    await session.login(credentials.authcid, credentials.password, name);
  },
};
