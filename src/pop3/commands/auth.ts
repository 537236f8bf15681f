// RFC 5034 AUTH with the PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login) mechanisms.
// Without arguments it lists the mechanisms, as many clients expect.
import { authError, syntaxError, userError } from '../errors.js';
import type { Session as Pop3Session } from '../session.js';
import { AUTHORIZATION, type Pop3Command } from './command.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The SASL mechanisms AUTH takes, as CAPA lists them. */
export const SASL_MECHANISMS = ['PLAIN', 'LOGIN'];

/** Sends a challenge (base64) and reads the client's answer. */
async function ask(session: Pop3Session, challenge: string): Promise<string> {
  await session.reply(`+ ${challenge}`);
  return session.readContinuation();
}

/** RFC 5034 4: "*" cancels; "=" is an empty initial response; otherwise base64. */
function decode(response: string): string {
  if (response === '*') throw authError('authentication cancelled');
  if (response === '=') return '';
  if (!BASE64.test(response)) throw syntaxError('malformed base64');
  return Buffer.from(response, 'base64').toString('utf8');
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
    if (name !== 'PLAIN' && name !== 'LOGIN') throw userError(`unsupported mechanism ${mechanism}`);
    session.requirePlaintextAllowed();
    if (name === 'LOGIN') {
      // The user name (possibly as the initial response), then the password, each asked for.
      const user = decode(initial ?? (await ask(session, 'VXNlcm5hbWU6')));
      const password = decode(await ask(session, 'UGFzc3dvcmQ6'));
      await session.login(user, password, 'LOGIN');
      return;
    }
    const parts = decode(initial ?? (await ask(session, ''))).split('\0');
    if (parts.length !== 3) throw authError('malformed PLAIN response');
    const [authzid, authcid, password] = parts as [string, string, string];
    if (authzid !== '' && authzid.toLowerCase() !== authcid.toLowerCase()) throw authError('logging in as another user is not allowed');
    await session.login(authcid, password, 'PLAIN');
  },
};
