// RFC 1939 4 and 6 QUIT: in AUTHORIZATION just goodbye; in TRANSACTION the UPDATE state.
import { ANY_STATE, type Pop3Command } from './command.js';

export const quit: Pop3Command = {
  states: ANY_STATE,
  async run(session) {
    if (session.state === 'TRANSACTION') return session.update();
    await session.reply('+OK bye');
    session.end('quit');
  },
};
