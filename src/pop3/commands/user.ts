// RFC 1939 7 USER: remembers the name for PASS; whether it exists is not revealed.
import { syntaxError } from '../errors.js';
import { AUTHORIZATION, type Pop3Command } from './command.js';

export const user: Pop3Command = {
  states: AUTHORIZATION,
  async run(session, { rest }) {
    session.requirePlaintextAllowed();
    if (rest.trim() === '') throw syntaxError('USER needs a name');
    session.pendingUser = rest.trim();
    await session.reply('+OK send PASS');
  },
};
