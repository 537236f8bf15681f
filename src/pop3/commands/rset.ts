// RFC 1939 5 RSET: unmarks every message marked as deleted.
import { TRANSACTION, type Pop3Command } from './command.js';

export const rset: Pop3Command = {
  states: TRANSACTION,
  async run(session) {
    const maildrop = session.maildrop!;
    maildrop.unmarkAll();
    const { count, octets } = await maildrop.sizeAll();
    await session.reply(`+OK maildrop has ${count} messages (${octets} octets)`);
  },
};
