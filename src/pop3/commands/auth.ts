// RFC 5034 AUTH with the PLAIN mechanism (RFC 4616). Without arguments it lists the
// mechanisms, as many clients expect.
import { authError, syntaxError, userError } from '../errors.js';
import { AUTHORIZATION, type Pop3Command } from './command.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export const auth: Pop3Command = {
  states: AUTHORIZATION,
  async run(session, { words }) {
    const [mechanism, initial] = words;
    if (mechanism === undefined) {
      await session.replyLines('+OK', session.plaintextAllowed ? ['PLAIN'] : []);
      return;
    }
    if (mechanism.toUpperCase() !== 'PLAIN') throw userError(`unsupported mechanism ${mechanism}`);
    session.requirePlaintextAllowed();
    let response = initial;
    if (response === undefined) {
      await session.reply('+ ');
      response = await session.readContinuation();
    }
    // RFC 5034 4: "*" cancels; "=" is an empty initial response.
    if (response === '*') throw authError('authentication cancelled');
    if (response === '=') response = '';
    if (!BASE64.test(response)) throw syntaxError('malformed base64');
    const parts = Buffer.from(response, 'base64').toString('utf8').split('\0');
    if (parts.length !== 3) throw authError('malformed PLAIN response');
    const [authzid, authcid, password] = parts as [string, string, string];
    if (authzid !== '' && authzid.toLowerCase() !== authcid.toLowerCase()) throw authError('logging in as another user is not allowed');
    await session.login(authcid, password, 'PLAIN');
  },
};
