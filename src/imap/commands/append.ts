// APPEND (RFC 3501 6.3.11) with APPENDUID (RFC 4315) and the APPENDLIMIT (RFC 7889).
import { dateTime, flagList, isAtom, mailboxName } from '../args.js';
import { StoreError } from '../../store/types.js';
import { bad, CODE, no } from '../errors.js';
import type { Session } from '../session.js';
import type { ImapValue } from '../value.js';
import type { CommandResult } from './types.js';

export async function append(s: Session, args: ImapValue[]): Promise<CommandResult> {
  if (args.length < 2) throw bad('APPEND needs a mailbox and a message');
  const name = mailboxName(args[0]);
  let i = 1;
  let flags: string[] = [];
  let date: Date | undefined;
  if (Array.isArray(args[i])) flags = flagList(args[i++]);
  if (typeof args[i] === 'string' && i + 1 < args.length) date = dateTime(args[i++]);
  const content = args[i];
  if (i + 1 !== args.length) throw bad('APPEND takes one message');
  if (isAtom(content) || Array.isArray(content) || content === null || content === undefined || typeof content === 'number') throw bad('the message must be a literal');
  const raw = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  if (raw.length > s.ctx.deps.config.limits.messageSize) throw no('message too big', CODE.tooBig);
  if (raw.length === 0) throw no('empty message', CODE.cannot);
  const { store } = s.ctx.deps;
  // From the user's mailbox list the hub keeps (as STATUS does), not a store read per APPEND.
  const mailbox = await s.ctx.hub.mailbox(s.userId, name);
  if (!mailbox) throw no(`no mailbox ${name}`, CODE.tryCreate);
  let result: Awaited<ReturnType<typeof store.append>>;
  try {
    result = await store.append(mailbox.id, raw, flags, date);
  } catch (error) {
    // Deleted meanwhile (by another session or process).
    if (error instanceof StoreError && error.code === 'not-found') throw no(`no mailbox ${name}`, CODE.tryCreate);
    throw error;
  }
  return { code: `APPENDUID ${result.uidvalidity} ${result.uid}`, text: 'APPEND completed' };
}
