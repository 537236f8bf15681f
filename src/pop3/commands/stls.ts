// RFC 2595 4 STLS: TLS from here on; the session starts over in AUTHORIZATION.
import { syntaxError } from '../errors.js';
import { AUTHORIZATION, type Pop3Command } from './command.js';

export const stls: Pop3Command = {
  states: AUTHORIZATION,
  async run(session) {
    if (session.isSecure) throw syntaxError('TLS is already active');
    await session.startTls();
  },
};
