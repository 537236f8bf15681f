// RFC 1939 5 NOOP.
import { TRANSACTION, type Pop3Command } from './command.js';

export const noop: Pop3Command = {
  states: TRANSACTION,
  async run(session) {
    await session.reply('+OK');
  },
};
