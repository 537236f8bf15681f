// RFC 1939 5 LIST: the scan listing of one message or of every message not marked as deleted.
import { TRANSACTION, type Pop3Command } from './command.js';

export const list: Pop3Command = {
  states: TRANSACTION,
  async run(session, { words }) {
    const maildrop = session.maildrop!;
    if (words.length > 0) {
      const message = maildrop.get(words[0]);
      await session.reply(`+OK ${message.number} ${await maildrop.sizeOf(message)}`);
      return;
    }
    const lines: string[] = [];
    let octets = 0;
    for (const message of maildrop.live()) {
      const size = await maildrop.sizeOf(message);
      octets += size;
      lines.push(`${message.number} ${size}`);
    }
    await session.replyLines(`+OK ${lines.length} messages (${octets} octets)`, lines);
  },
};
