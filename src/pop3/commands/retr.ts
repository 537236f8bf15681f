// RFC 1939 5 RETR: the exact stored bytes, byte-stuffed, streamed as the client reads.
import { TRANSACTION, type Pop3Command } from './command.js';

export const retr: Pop3Command = {
  states: TRANSACTION,
  async run(session, { words }) {
    const maildrop = session.maildrop!;
    const message = maildrop.get(words[0]);
    const data = await maildrop.read(message);
    await session.replyMessage(`+OK ${await maildrop.sizeOf(message)} octets`, data);
  },
};
