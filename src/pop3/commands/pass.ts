// RFC 1939 7 PASS: only right after USER; the password is the rest of the line, spaces included.
import { syntaxError } from '../errors.js';
import { AUTHORIZATION, type Pop3Command } from './command.js';

export const pass: Pop3Command = {
  states: AUTHORIZATION,
  async run(session, { rest }) {
    const name = session.pendingUser;
    session.pendingUser = undefined;
    if (name === undefined) throw syntaxError('send USER first');
    session.requirePlaintextAllowed();
    await session.login(name, rest, 'USER');
  },
};
