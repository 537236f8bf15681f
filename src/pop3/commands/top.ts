// RFC 1939 7 TOP msg n: the header, the blank line, and the first n lines of the body.
import { syntaxError } from '../errors.js';
import { topOf } from '../framing.js';
import { TRANSACTION, type Pop3Command } from './command.js';

export const top: Pop3Command = {
  states: TRANSACTION,
  async run(session, { words }) {
    const maildrop = session.maildrop!;
    const message = maildrop.get(words[0]);
    const lines = words[1];
    if (lines === undefined || !/^\d{1,10}$/.test(lines)) throw syntaxError('TOP needs a message number and a line count');
    const data = await maildrop.read(message);
    await session.replyMessage('+OK top of message follows', topOf(data, Number(lines)));
  },
};
