// EXPUNGE (RFC 3501 6.4.3) and UID EXPUNGE (RFC 4315 2.1).
import { sequenceSet } from '../args.js';
import { CODE, no } from '../errors.js';
import type { CommandInfo, Session } from '../session.js';
import type { ImapValue } from '../value.js';
import { arity } from './types.js';

export async function expunge(s: Session, args: ImapValue[], info: CommandInfo): Promise<void> {
  arity(args, info.uid ? 1 : 0);
  const selected = s.selected!;
  if (selected.readOnly) throw no('mailbox is read-only', CODE.readOnly);
  const { store } = s.ctx.deps;
  let removed: number[];
  if (info.uid) {
    const uids = selected.resolve(sequenceSet(args[0]), true);
    removed = uids.length > 0 ? await store.expunge(selected.id, uids, true) : [];
  } else {
    // The \Deleted messages from the shared index, caught up with every commit so far (other
    // processes' too where the store can tell at once): the store then reads only those rows,
    // and with none there is no write at all. It expunges only those still \Deleted.
    const sure = store.syncChanges?.() === true;
    await selected.index.fresh();
    const deleted = sure ? selected.index.deletedUids() : undefined;
    removed = deleted === undefined ? await store.expunge(selected.id) : deleted.length > 0 ? await store.expunge(selected.id, deleted, true) : [];
  }
  selected.expunged(removed);
  for (const values of selected.announceExpunges(s.enabled.has('QRESYNC'))) s.send(values);
}
