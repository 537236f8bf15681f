// RFC 1939 5 STAT: count and octets of the messages not marked as deleted.
import { TRANSACTION, type Pop3Command } from './command.js';

export const stat: Pop3Command = {
  states: TRANSACTION,
  async run(session) {
    const { count, octets } = await session.maildrop!.sizeAll();
    await session.reply(`+OK ${count} ${octets}`);
  },
};
