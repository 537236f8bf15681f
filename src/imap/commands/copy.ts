// COPY, MOVE and their UID forms (RFC 3501 6.4.7, RFC 6851 MOVE) with COPYUID (RFC 4315).
import { mailboxName, sequenceSet } from '../args.js';
import { CODE, no } from '../errors.js';
import { formatSet } from '../message/sequence.js';
import type { CommandInfo, Session } from '../session.js';
import type { ImapValue } from '../value.js';
import { arity, type CommandResult } from './types.js';

export async function copy(s: Session, args: ImapValue[], info: CommandInfo): Promise<CommandResult | void> {
  arity(args, 2);
  const selected = s.selected!;
  const uids = selected.resolve(sequenceSet(args[0]), info.uid);
  const name = mailboxName(args[1]);
  const { store } = s.ctx.deps;
  const target = await store.getMailbox(s.userId, name);
  if (!target) throw no(`no mailbox ${name}`, CODE.tryCreate);
  const move = info.name === 'MOVE';
  if (move && selected.readOnly) throw no('mailbox is read-only', CODE.readOnly);
  if (uids.length === 0) return;
  const result = move ? await store.move(selected.id, uids, target.id) : await store.copy(selected.id, uids, target.id);
  const code =
    result.map.length > 0
      ? `COPYUID ${result.uidvalidity} ${formatSet(result.map.map(([from]) => from))} ${formatSet(result.map.map(([, to]) => to))}`
      : undefined;
  if (!move) return { code, text: 'COPY completed' };
  // RFC 6851 4.3: COPYUID in an untagged OK before the expunges.
  if (code) s.untaggedStatus('OK', 'moved', code);
  selected.expunged(result.map.map(([from]) => from));
  for (const values of selected.announceExpunges(s.enabled.has('QRESYNC'))) s.send(values);
}
