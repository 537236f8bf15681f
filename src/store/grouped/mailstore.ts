// The Mailstore role of the grouped store: a user's mailboxes and messages are in the user's
// group, which an id names by arithmetic; a delivery is split into one part per group.
import { groupIndexOf } from '../directory.js';
import type { PostgresStore } from '../postgres.js';
import type { Mailstore } from '../roles/mailstore.js';
import { StoreError, type DeliveryOptions, type DeliveryResult, type DeliveryTarget, type MessageMeta } from '../types.js';
import { forward } from './forward.js';
import type { GroupRouter } from './router.js';

export function groupedMailstore(r: GroupRouter): Omit<Mailstore, 'onChange' | 'syncChanges'> {
  const byId = (args: unknown[]) => r.storeForId(args[0] as number);
  /** COPY and MOVE stay within a group (UIDs and blob references are per group). */
  const sameGroup = (args: unknown[]) => {
    if (groupIndexOf(args[0] as number) !== groupIndexOf(args[2] as number)) throw new StoreError('invalid', 'cannot copy between mailboxes of different groups');
    return r.storeForId(args[0] as number);
  };
  return {
    ...forward(
      [
        'listMailboxes',
        'getMailbox',
        'getMailboxById',
        'createMailbox',
        'deleteMailbox',
        'renameMailbox',
        'setSubscribed',
        'listLostSubscriptions',
        'dropLostSubscription',
        'mailboxStatus',
        'claimRecent',
        'append',
        'listUids',
        'setFlags',
        'expunge',
        'expungedSince',
      ],
      byId,
    ),
    ...forward(['copy', 'move'], sameGroup),

    // Listings note which group returned a blob hash: the blob is read from there.
    async listMessages(mailboxId, range): Promise<MessageMeta[]> {
      const store = await r.storeForId(mailboxId);
      const metas = await store.listMessages(mailboxId, range);
      r.noteBlobs(store, metas);
      return metas;
    },

    async getMessage(mailboxId, uid): Promise<MessageMeta | undefined> {
      const store = await r.storeForId(mailboxId);
      const meta = await store.getMessage(mailboxId, uid);
      if (meta) r.noteBlobs(store, [meta]);
      return meta;
    },

    async deliver(raw: Buffer, targets: DeliveryTarget[], options: DeliveryOptions = {}): Promise<DeliveryResult> {
      // One internal date for every copy, whichever group stores it.
      const base: DeliveryOptions = { internalDate: options.internalDate ?? new Date() };
      if (options.txnId) base.txnId = options.txnId;
      const result: DeliveryResult = { stored: false, copies: [], outboundIds: [] };
      let outboundDone = !options.outbound || options.outbound.recipients.length === 0;
      let pending = targets;
      for (let attempt = 1; ; attempt++) {
        const parts = new Map<PostgresStore, DeliveryTarget[]>();
        for (const target of pending) {
          const { store } = await r.groupForId(target.userId);
          parts.set(store, [...(parts.get(store) ?? []), target]);
        }
        // Outbound entries live in the directory: with the directory's group part if it has one.
        if (!outboundDone && !parts.has(r.directoryStore)) parts.set(r.directoryStore, []);
        const settled = await Promise.all(
          [...parts].map(async ([store, part]) => {
            const withOutbound = !outboundDone && store === r.directoryStore;
            const partOptions: DeliveryOptions = withOutbound ? { ...base, outbound: options.outbound } : base;
            try {
              return { part, withOutbound, done: await store.deliver(raw, part, partOptions), error: undefined };
            } catch (error) {
              return { part, withOutbound, done: undefined, error };
            }
          }),
        );
        const failed: { part: DeliveryTarget[]; error: unknown }[] = [];
        for (const outcome of settled) {
          if (!outcome.done) {
            failed.push(outcome);
            continue;
          }
          result.stored ||= outcome.done.stored;
          result.copies.push(...outcome.done.copies);
          result.outboundIds.push(...outcome.done.outboundIds);
          if (outcome.withOutbound) outboundDone = true;
        }
        if (failed.length === 0) return result;
        // A part for a user who moved meanwhile fails with not-found (its mailboxes are gone from
        // the old group): send it again to where the user is now. Any other failure is the answer.
        const other = failed.find((f) => !(f.error instanceof StoreError && f.error.code === 'not-found'));
        if (other || attempt >= 3) throw (other ?? failed[0]!).error;
        const retry: DeliveryTarget[] = [];
        let moved = false;
        for (const { part } of failed) {
          for (const target of part) {
            const now = await r.currentUserId(target.userId);
            if (now !== undefined && now !== target.userId) moved = true;
            retry.push({ ...target, userId: now ?? target.userId });
          }
        }
        if (!moved) throw failed[0]!.error;
        pending = retry;
      }
    },
  };
}
