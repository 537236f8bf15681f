// RFC 1939 7 UIDL: unique-id listing, `${uidvalidity}.${uid}` of the INBOX message.
import { TRANSACTION, type Pop3Command } from './command.js';

export const uidl: Pop3Command = {
  states: TRANSACTION,
  async run(session, { words }) {
    const maildrop = session.maildrop!;
    if (words.length > 0) {
      const message = maildrop.get(words[0]);
      await session.reply(`+OK ${message.number} ${maildrop.uniqueId(message)}`);
      return;
    }
    const lines = maildrop.live().map((message) => `${message.number} ${maildrop.uniqueId(message)}`);
    await session.replyLines('+OK unique-id listing follows', lines);
  },
};
