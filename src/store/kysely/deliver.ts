// Mailstore.deliver over Kysely: the delivery pipeline. Deliveries that arrive while a commit
// runs share the next one (group commit); on PostgreSQL a batch is one statement (pg-deliver.ts).
import { randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import { writeDeliveryBatch, type PgBatchTarget } from '../pg-deliver.js';
import type { Database } from '../schema.js';
import { StoreError, type ChangeEvent, type DeliveryOptions, type DeliveryResult, type DeliveryTarget } from '../types.js';
import { AmbiguousCommitError, canonicalMailboxName, chunks, COMMIT_MARKER_PREFIX, hasFlag, hashBytes, normalizeFlags, num, type KyselyContext } from './context.js';

interface PendingDelivery {
  raw: Buffer;
  hash: string;
  targets: DeliveryTarget[];
  options: DeliveryOptions;
  resolve: (result: DeliveryResult) => void;
  reject: (error: unknown) => void;
}

export class Deliveries {
  private pending: PendingDelivery[] = [];
  private flushScheduled = false;
  /** The batch being written, if any: close() waits for it. */
  flushing: Promise<void> = Promise.resolve();

  constructor(private readonly ctx: KyselyContext) {}

  deliver(raw: Buffer, targets: DeliveryTarget[], options: DeliveryOptions = {}): Promise<DeliveryResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ raw, hash: hashBytes(raw), targets, options, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushing = this.flushing.then(() => this.flushDeliveries());
        });
      }
    });
  }

  /**
   * Group commit: every delivery that arrived while the previous commit was running is
   * written in one transaction, so one fsync acknowledges them all. If the batch fails,
   * each delivery is retried alone so one bad message cannot fail its neighbours.
   * Where a COMMIT can fail with an unknown outcome, the batch also writes a marker row, and
   * its fate is looked up before anything is run again or answered.
   */
  private async flushDeliveries(): Promise<void> {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    let done: { result: DeliveryResult[]; changes: ChangeEvent[] } | undefined;
    for (let attempt = 1; !done; attempt++) {
      const marker = this.ctx.ambiguousCommit ? `${COMMIT_MARKER_PREFIX}${randomUUID()}` : undefined;
      try {
        done = await this.ctx.transact(async (tx, collected) => {
          return this.deliverBatch(tx, batch, collected, marker);
        });
      } catch (error) {
        if (!(error instanceof AmbiguousCommitError)) break;
        // Running a batch that did commit again would store it twice.
        const outcome = marker ? await this.ctx.commitOutcome(marker) : 'unknown';
        if (outcome === 'committed') {
          done = error.attempt as { result: DeliveryResult[]; changes: ChangeEvent[] };
        } else if (outcome === 'unknown' || attempt >= 2) {
          // The sender retries later (451), and its transaction id makes that retry idempotent.
          for (const item of batch) item.reject(error);
          return;
        }
        // 'absent': it did not commit and never will; run it again.
      }
    }
    if (done) {
      const { result } = done;
      await new Promise<void>((resolve) =>
        this.ctx.whenDurable(
          done!.changes,
          () => {
            batch.forEach((item, i) => item.resolve(result[i]!));
            resolve();
          },
          (error) => {
            batch.forEach((item) => item.reject(error));
            resolve();
          },
        ),
      );
      return;
    }
    for (const item of batch) {
      try {
        item.resolve(await this.ctx.write((tx, collected) => this.deliverOne(tx, item, collected)));
      } catch (error) {
        item.reject(error);
      }
    }
  }

  /**
   * What deliverOne does for every item of a batch, in one statement per table for the whole
   * batch (transaction ids, blobs, the mailboxes' UID and modseq counters, messages, users'
   * byte counts, change rows), so a batch costs a few round trips to PostgreSQL instead of six
   * per recipient. The messages a batch puts in one mailbox share one modseq (RFC 7162 3.1:
   * one operation, one mod-sequence). Outbound entries go one by one (their ids are returned).
   */
  private async deliverBatch(tx: Transaction<Database>, batch: readonly PendingDelivery[], changes: ChangeEvent[], marker?: string): Promise<DeliveryResult[]> {
    if (this.ctx.kind === 'postgres') return this.deliverBatchInOneStatement(tx, batch, changes, marker);
    const results: DeliveryResult[] = batch.map(() => ({ stored: false, copies: [], outboundIds: [] }));
    const now = Date.now();
    if (marker) await tx.insertInto('txns').values({ id: marker, created_at: now }).execute();
    let live = batch.map((_, i) => i);
    const txnIds = [...new Set(batch.map((item) => item.options.txnId).filter((id): id is string => id !== undefined))];
    if (txnIds.length > 0) {
      // A replayed id stores nothing; within one batch the first item with an id takes it.
      const rows = await tx.insertInto('txns').values(txnIds.map((id) => ({ id, created_at: now }))).onConflict((oc) => oc.column('id').doNothing()).returning('id').execute();
      const claimed = new Set(rows.map((row) => row.id));
      live = live.filter((i) => {
        const id = batch[i]!.options.txnId;
        if (id === undefined) return true;
        return claimed.delete(id);
      });
    }
    if (live.length === 0) return results;

    const blobs = new Map<string, { raw: Buffer; refs: number }>();
    for (const i of live) {
      const item = batch[i]!;
      const blob = blobs.get(item.hash) ?? { raw: item.raw, refs: 0 };
      blob.refs += item.targets.length + (item.options.outbound?.recipients.length ?? 0);
      blobs.set(item.hash, blob);
    }
    for (const chunk of chunks([...blobs], 200)) {
      await tx
        .insertInto('blobs')
        .values(chunk.map(([hash, { raw, refs }]) => ({ hash, size: raw.length, data: raw, refs })))
        .onConflict((oc) => oc.column('hash').doUpdateSet({ refs: sql`blobs.refs + excluded.refs` }))
        .execute();
    }
    // Full-text words of each new blob (issue 21): queued here, indexed after the commit.
    await this.ctx.queueText(tx, [...blobs.keys()]);

    // Each target's mailbox (INBOX when the named one is missing), found in one query.
    const targets = live.flatMap((i) => batch[i]!.targets.map((target) => ({ item: i, target, name: canonicalMailboxName(target.mailbox ?? 'INBOX') })));
    const mailboxIds = new Map<string, number>();
    if (targets.length > 0) {
      const userIds = [...new Set(targets.map((t) => t.target.userId))];
      const names = [...new Set([...targets.map((t) => t.name), 'INBOX'])];
      const rows = await tx.selectFrom('mailboxes').select(['id', 'user_id', 'name']).where('user_id', 'in', userIds).where('name', 'in', names).execute();
      for (const row of rows) mailboxIds.set(`${num(row.user_id)}\0${row.name}`, num(row.id));
    }
    const placed = targets.map((t) => {
      const mailboxId = mailboxIds.get(`${t.target.userId}\0${t.name}`) ?? mailboxIds.get(`${t.target.userId}\0INBOX`);
      if (mailboxId === undefined) throw new StoreError('not-found', `user ${t.target.userId} has no INBOX`);
      return { ...t, mailboxId };
    });

    // UIDs and a modseq per mailbox, one UPDATE for all (in id order, the order of the row locks).
    const perMailbox = new Map<number, number>();
    for (const p of placed) perMailbox.set(p.mailboxId, (perMailbox.get(p.mailboxId) ?? 0) + 1);
    const counters = new Map<number, { nextUid: number; modseq: number; uidvalidity: number }>();
    if (perMailbox.size > 0) {
      const values = [...perMailbox].sort((a, b) => a[0] - b[0]).map(([id, n]) => sql`(cast(${id} as bigint), cast(${n} as bigint))`);
      const { rows } = await sql<{ id: number; uidnext: number; highest_modseq: number; uidvalidity: number }>`
        with v(id, n) as (values ${sql.join(values)})
        update mailboxes set uidnext = mailboxes.uidnext + v.n, highest_modseq = mailboxes.highest_modseq + 1
        from v where mailboxes.id = v.id
        returning mailboxes.id, mailboxes.uidnext, mailboxes.highest_modseq, mailboxes.uidvalidity`.execute(tx);
      for (const row of rows) {
        const id = num(row.id);
        counters.set(id, { nextUid: num(row.uidnext) - perMailbox.get(id)!, modseq: num(row.highest_modseq), uidvalidity: num(row.uidvalidity) });
      }
    }

    const internalDates = new Map(live.map((i) => [i, (batch[i]!.options.internalDate ?? new Date()).getTime()]));
    const messages = placed.map((p) => {
      const counter = counters.get(p.mailboxId);
      if (!counter) throw new StoreError('not-found', 'no such mailbox');
      const uid = counter.nextUid++;
      const flags = normalizeFlags(p.target.flags ?? []);
      results[p.item]!.copies.push({ userId: p.target.userId, mailboxId: p.mailboxId, uid, uidvalidity: counter.uidvalidity });
      const raw = batch[p.item]!.raw;
      return {
        mailbox_id: p.mailboxId,
        uid,
        blob_hash: batch[p.item]!.hash,
        size: raw.length,
        internal_date: internalDates.get(p.item)!,
        flags: flags.join(' '),
        seen: hasFlag(flags, '\\Seen'),
        deleted: hasFlag(flags, '\\Deleted'),
        modseq: counter.modseq,
      };
    });
    for (const chunk of chunks(messages, 500)) await tx.insertInto('messages').values(chunk).execute();

    const bytes = new Map<number, number>();
    for (const p of placed) bytes.set(p.target.userId, (bytes.get(p.target.userId) ?? 0) + batch[p.item]!.raw.length);
    if (bytes.size > 0) {
      const values = [...bytes].sort((a, b) => a[0] - b[0]).map(([id, n]) => sql`(cast(${id} as bigint), cast(${n} as bigint))`);
      await sql`with v(id, n) as (values ${sql.join(values)}) update users set used_bytes = users.used_bytes + v.n from v where users.id = v.id`.execute(tx);
    }

    for (const chunk of chunks(placed, 500)) {
      const rows = await tx
        .insertInto('changes')
        .values(chunk.map((p) => ({ user_id: p.target.userId, mailbox_id: p.mailboxId, kind: 'append', created_at: now })))
        .returning(['id', 'user_id', 'mailbox_id'])
        .execute();
      for (const row of rows) changes.push({ id: num(row.id), userId: num(row.user_id), mailboxId: row.mailbox_id === null ? null : num(row.mailbox_id), kind: 'append' });
    }

    for (const i of live) {
      const item = batch[i]!;
      results[i]!.stored = true;
      for (const recipient of item.options.outbound?.recipients ?? []) results[i]!.outboundIds.push(await this.queueOutbound(tx, item, recipient, now));
    }
    return results;
  }

  /**
   * deliverBatch on PostgreSQL: the same rows, written and announced (NOTIFY) by one statement
   * (pg-deliver.ts), then the full-text step and outbound entries. A batch costs BEGIN, that
   * statement, the full-text statements and COMMIT.
   */
  private async deliverBatchInOneStatement(tx: Transaction<Database>, batch: readonly PendingDelivery[], changes: ChangeEvent[], marker: string | undefined): Promise<DeliveryResult[]> {
    const results: DeliveryResult[] = batch.map(() => ({ stored: false, copies: [], outboundIds: [] }));
    const now = Date.now();
    // Within one batch the first item with a transaction id takes it; the others store nothing.
    const seenIds = new Set<string>();
    const candidates = batch
      .map((item, i) => ({ item, i }))
      .filter(({ item }) => {
        const id = item.options.txnId;
        if (id === undefined) return true;
        if (seenIds.has(id)) return false;
        seenIds.add(id);
        return true;
      });
    const blobs = new Map<string, Buffer>();
    for (const { item } of candidates) if (!blobs.has(item.hash)) blobs.set(item.hash, item.raw);
    const targets: PgBatchTarget[] = [];
    const targetOf: { i: number; userId: number }[] = [];
    for (const [n, { item, i }] of candidates.entries()) {
      const internalDate = (item.options.internalDate ?? new Date()).getTime();
      for (const target of item.targets) {
        const flags = normalizeFlags(target.flags ?? []);
        targets.push({
          item: n,
          userId: target.userId,
          name: canonicalMailboxName(target.mailbox ?? 'INBOX'),
          hash: item.hash,
          size: item.raw.length,
          internalDate,
          flags: flags.join(' '),
          seen: hasFlag(flags, '\\Seen'),
          deleted: hasFlag(flags, '\\Deleted'),
        });
        targetOf.push({ i, userId: target.userId });
      }
    }
    const notice = this.ctx.changeNotice();
    const out = await writeDeliveryBatch(tx, {
      now,
      marker,
      notice,
      items: candidates.map(({ item }) => ({ txn: item.options.txnId ?? null, hash: item.hash, refs: item.targets.length + (item.options.outbound?.recipients.length ?? 0) })),
      blobs: [...blobs].map(([hash, raw]) => ({ hash, raw })),
      targets,
    });
    if (out.unplaced.length > 0) throw new StoreError('not-found', `user ${targetOf[out.unplaced[0]!]!.userId} has no INBOX`);
    for (const p of out.placed) {
      const { i, userId } = targetOf[p.target]!;
      results[i]!.copies.push({ userId, mailboxId: p.mailboxId, uid: p.uid, uidvalidity: p.uidvalidity });
    }
    for (const c of out.changes) {
      const event: ChangeEvent = { id: c.id, userId: c.userId, mailboxId: c.mailboxId, kind: 'append' };
      if (notice) this.ctx.announced(event);
      changes.push(event);
    }
    const live = out.live.map((n) => candidates[n]!);

    // Full-text words of each new blob (issue 21): queued here, indexed after the commit.
    await this.ctx.queueText(tx, [...new Set(live.map(({ item }) => item.hash))]);

    for (const { item, i } of live) {
      results[i]!.stored = true;
      for (const recipient of item.options.outbound?.recipients ?? []) results[i]!.outboundIds.push(await this.queueOutbound(tx, item, recipient, now));
    }
    return results;
  }

  private async queueOutbound(tx: Transaction<Database>, item: PendingDelivery, recipient: string, now: number): Promise<number> {
    const row = await tx
      .insertInto('outbound')
      .values({
        sender: item.options.outbound!.sender,
        recipient,
        domain: recipient.slice(recipient.lastIndexOf('@') + 1).toLowerCase(),
        blob_hash: item.hash,
        status: 'queued',
        attempts: 0,
        created_at: now,
        next_attempt_at: now,
        last_error: null,
        lease_owner: null,
        lease_until: null,
        warned: 0,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return num(row.id);
  }

  private async deliverOne(tx: Transaction<Database>, item: PendingDelivery, changes: ChangeEvent[]): Promise<DeliveryResult> {
    return (await this.deliverBatch(tx, [item], changes))[0]!;
  }
}
