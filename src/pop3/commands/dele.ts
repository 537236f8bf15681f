// RFC 1939 5 DELE: marks the message; it is removed only in the UPDATE state (QUIT).
import { TRANSACTION, type Pop3Command } from './command.js';

export const dele: Pop3Command = {
  states: TRANSACTION,
  async run(session, { words }) {
    const message = session.maildrop!.get(words[0]);
    message.deleted = true;
    await session.reply(`+OK message ${message.number} deleted`);
  },
};
