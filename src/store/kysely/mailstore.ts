// The Mailstore role over Kysely (roles/mailstore.ts): mailboxes, and the messages in them.
// Delivery, with its group commit, is deliver.ts; the change feed is the engine's (kysely-store.ts).
import { sql, type Selectable, type Transaction } from 'kysely';
import type { Mailstore } from '../roles/mailstore.js';
import type { Database, MailboxTable, MessageTable } from '../schema.js';
import { StoreError, type ChangeEvent, type DeliveryOptions, type DeliveryResult, type DeliveryTarget, type FlagOp, type FlagUpdate, type Mailbox, type MailboxStatus, type MessageMeta } from '../types.js';
import { Deliveries } from './deliver.js';
import {
  canonicalMailboxName,
  dropMailboxContents,
  hasFlag,
  hashBytes,
  insertMailbox,
  normalizeFlags,
  num,
  releaseBlobs,
  splitFlags,
  toMailbox,
  toMessage,
  type KyselyContext,
  type SqlText,
  type Tx,
} from './context.js';

/** Statements over a list of values (a JSON array on SQLite, an array on PostgreSQL): one text whatever the length. */
const DELETE_MESSAGES: SqlText = {
  sqlite: 'delete from messages where id in (select value from json_each(?))',
  postgres: 'delete from messages where id = any($1::bigint[])',
};
const INSERT_EXPUNGED: SqlText = {
  // "where true": SQLite's upsert after a SELECT needs a WHERE to parse.
  sqlite: 'insert into expunged (mailbox_id, uid, modseq) select ?, value, ? from json_each(?) where true on conflict (mailbox_id, uid) do update set modseq = excluded.modseq',
  postgres: 'insert into expunged (mailbox_id, uid, modseq) select $1, u, $2 from unnest($3::bigint[]) as u on conflict (mailbox_id, uid) do update set modseq = excluded.modseq',
};

/** Messages of a mailbox by UID: one statement text whatever the number of UIDs. */
const MESSAGES_BY_UIDS: SqlText = {
  sqlite: 'select * from messages where mailbox_id = ? and uid in (select value from json_each(?)) order by uid',
  postgres: 'select * from messages where mailbox_id = $1 and uid = any($2::bigint[]) order by uid',
};

export class KyselyMailstore implements Omit<Mailstore, 'onChange' | 'syncChanges'> {
  /** The delivery pipeline (group commit); close() waits for what it has in flight. */
  readonly deliveries: Deliveries;

  constructor(private readonly ctx: KyselyContext) {
    this.deliveries = new Deliveries(ctx);
  }

  // ---- mailboxes ---------------------------------------------------------

  async listMailboxes(userId: number): Promise<Mailbox[]> {
    const rows = await this.ctx.read(() => this.ctx.db.selectFrom('mailboxes').selectAll().where('user_id', '=', userId).orderBy('name').execute());
    return rows.map(toMailbox);
  }

  async getMailbox(userId: number, name: string): Promise<Mailbox | undefined> {
    const [row] = await this.ctx.read(() => this.ctx.query<Selectable<MailboxTable>>(this.ctx.db, 'select * from mailboxes where user_id = ? and name = ?', [userId, canonicalMailboxName(name)]));
    return row && toMailbox(row);
  }

  async getMailboxById(id: number): Promise<Mailbox | undefined> {
    const [row] = await this.ctx.read(() => this.ctx.query<Selectable<MailboxTable>>(this.ctx.db, 'select * from mailboxes where id = ?', [id]));
    return row && toMailbox(row);
  }

  async createMailbox(userId: number, name: string, specialUse: string | null = null, subscribed = true): Promise<Mailbox> {
    const canonical = canonicalMailboxName(name);
    return this.ctx.write(async (tx, changes) => {
      const existing = await tx.selectFrom('mailboxes').select('id').where('user_id', '=', userId).where('name', '=', canonical).executeTakeFirst();
      if (existing) throw new StoreError('conflict', `mailbox ${canonical} already exists`);
      // A subscription kept from a deleted mailbox of this name goes back onto the new one.
      const kept = await tx.deleteFrom('subscriptions').where('user_id', '=', userId).where('name', '=', canonical).executeTakeFirst();
      const mailbox = await insertMailbox(tx, userId, canonical, specialUse, subscribed || Number(kept.numDeletedRows) > 0);
      await this.ctx.recordChange(tx, userId, null, 'mailbox', changes);
      return mailbox;
    });
  }

  private async adjustUsage(tx: Tx, mailboxId: number, delta: number): Promise<void> {
    if (delta === 0) return;
    const mailbox = await tx.selectFrom('mailboxes').select('user_id').where('id', '=', mailboxId).executeTakeFirstOrThrow();
    await tx.updateTable('users').set({ used_bytes: sql`used_bytes + ${delta}` }).where('id', '=', mailbox.user_id).execute();
  }

  async deleteMailbox(mailboxId: number): Promise<void> {
    await this.ctx.write(async (tx, changes) => {
      const mailbox = await tx.selectFrom('mailboxes').selectAll().where('id', '=', mailboxId).executeTakeFirst();
      if (!mailbox) throw new StoreError('not-found', 'no such mailbox');
      if (mailbox.name === 'INBOX') throw new StoreError('invalid', 'INBOX cannot be deleted');
      const size = await tx.selectFrom('messages').select(sql<number>`coalesce(sum(size), 0)`.as('total')).where('mailbox_id', '=', mailboxId).executeTakeFirstOrThrow();
      await this.adjustUsage(tx, mailboxId, -num(size.total));
      await dropMailboxContents(this.ctx, tx, mailboxId);
      await tx.deleteFrom('mailboxes').where('id', '=', mailboxId).execute();
      // RFC 3501 6.3.6: the subscription outlives the mailbox.
      if (num(mailbox.subscribed) === 1) {
        await tx.insertInto('subscriptions').values({ user_id: num(mailbox.user_id), name: mailbox.name }).onConflict((oc) => oc.columns(['user_id', 'name']).doNothing()).execute();
      }
      await this.ctx.recordChange(tx, num(mailbox.user_id), mailboxId, 'mailbox', changes);
    });
  }

  async renameMailbox(userId: number, from: string, to: string): Promise<void> {
    const source = canonicalMailboxName(from);
    const target = canonicalMailboxName(to);
    await this.ctx.write(async (tx, changes) => {
      const mailbox = await tx.selectFrom('mailboxes').selectAll().where('user_id', '=', userId).where('name', '=', source).executeTakeFirst();
      if (!mailbox) throw new StoreError('not-found', `no mailbox ${source}`);
      const clash = await tx.selectFrom('mailboxes').select('id').where('user_id', '=', userId).where('name', '=', target).executeTakeFirst();
      if (clash) throw new StoreError('conflict', `mailbox ${target} already exists`);
      if (source === 'INBOX') {
        // RFC 3501 6.3.5: renaming INBOX moves its messages to the new name; INBOX stays, empty.
        const created = await insertMailbox(tx, userId, target, null);
        const uids = await tx.selectFrom('messages').select('uid').where('mailbox_id', '=', mailbox.id).execute();
        const modseq = num(mailbox.highest_modseq) + 1;
        await tx.updateTable('messages').set({ mailbox_id: created.id }).where('mailbox_id', '=', mailbox.id).execute();
        await tx.updateTable('mailboxes').set({ uidnext: num(mailbox.uidnext), highest_modseq: modseq }).where('id', '=', created.id).execute();
        if (uids.length > 0) {
          await tx.insertInto('expunged').values(uids.map((u) => ({ mailbox_id: mailbox.id, uid: u.uid, modseq }))).execute();
          await tx.updateTable('mailboxes').set({ highest_modseq: modseq }).where('id', '=', mailbox.id).execute();
        }
      } else {
        const children = await tx.selectFrom('mailboxes').select(['id', 'name']).where('user_id', '=', userId).where('name', 'like', `${source}/%`).execute();
        await tx.updateTable('mailboxes').set({ name: target }).where('id', '=', mailbox.id).execute();
        for (const child of children) {
          await tx.updateTable('mailboxes').set({ name: target + child.name.slice(source.length) }).where('id', '=', child.id).execute();
        }
      }
      await this.ctx.recordChange(tx, userId, null, 'mailbox', changes);
    });
  }

  async setSubscribed(mailboxId: number, subscribed: boolean): Promise<void> {
    await this.ctx.write(async (tx) => {
      await tx.updateTable('mailboxes').set({ subscribed: subscribed ? 1 : 0 }).where('id', '=', mailboxId).execute();
    });
  }

  async listLostSubscriptions(userId: number): Promise<string[]> {
    const rows = await this.ctx.read(() => this.ctx.db.selectFrom('subscriptions').select('name').where('user_id', '=', userId).orderBy('name').execute());
    return rows.map((r) => r.name);
  }

  async dropLostSubscription(userId: number, name: string): Promise<boolean> {
    return this.ctx.write(async (tx) => {
      const result = await tx.deleteFrom('subscriptions').where('user_id', '=', userId).where('name', '=', canonicalMailboxName(name)).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    });
  }

  async mailboxStatus(mailboxId: number): Promise<MailboxStatus> {
    return this.ctx.read(async () => {
      const mailbox = await this.ctx.db.selectFrom('mailboxes').selectAll().where('id', '=', mailboxId).executeTakeFirst();
      if (!mailbox) throw new StoreError('not-found', 'no such mailbox');
      const counts = await this.ctx.db
        .selectFrom('messages')
        .select([
          sql<number>`count(*)`.as('messages'),
          sql<number>`coalesce(sum(case when seen = 0 then 1 else 0 end), 0)`.as('unseen'),
          sql<number>`coalesce(sum(case when uid > ${mailbox.recent_uid} then 1 else 0 end), 0)`.as('recent'),
          sql<number>`coalesce(sum(size), 0)`.as('size'),
        ])
        .where('mailbox_id', '=', mailboxId)
        .executeTakeFirstOrThrow();
      return {
        messages: num(counts.messages),
        unseen: num(counts.unseen),
        recent: num(counts.recent),
        size: num(counts.size),
        uidnext: num(mailbox.uidnext),
        uidvalidity: num(mailbox.uidvalidity),
        highestModseq: num(mailbox.highest_modseq),
      };
    });
  }

  async claimRecent(mailboxId: number, upTo?: number): Promise<number> {
    return this.ctx.lazyWrite(async (tx) => {
      const [mailbox] = await this.ctx.query<{ recent_uid: number | string; uidnext: number | string }>(tx, 'select recent_uid, uidnext from mailboxes where id = ?', [mailboxId]);
      if (!mailbox) throw new StoreError('not-found', 'no such mailbox');
      const old = num(mailbox.recent_uid);
      const top = Math.min(upTo ?? Infinity, num(mailbox.uidnext) - 1);
      if (top > old) await this.ctx.query(tx, 'update mailboxes set recent_uid = ? where id = ?', [top, mailboxId]);
      return old;
    });
  }

  // ---- messages ----------------------------------------------------------

  deliver(raw: Buffer, targets: DeliveryTarget[], options: DeliveryOptions = {}): Promise<DeliveryResult> {
    return this.deliveries.deliver(raw, targets, options);
  }

  /** Allocates the next UID and modseq of a mailbox for `count` new messages. */
  private async allocate(tx: Tx, mailboxId: number, count: number): Promise<{ firstUid: number; modseq: number; uidvalidity: number; userId: number }> {
    // Read-modify-write in one statement: on PostgreSQL the row lock makes concurrent allocations wait.
    const [mailbox] = await this.ctx.query<{ uidnext: number | string; highest_modseq: number | string; uidvalidity: number | string; user_id: number | string }>(
      tx,
      'update mailboxes set uidnext = uidnext + ?, highest_modseq = highest_modseq + 1 where id = ? returning uidnext, highest_modseq, uidvalidity, user_id',
      [count, mailboxId],
    );
    if (!mailbox) throw new StoreError('not-found', 'no such mailbox');
    return { firstUid: num(mailbox.uidnext) - count, modseq: num(mailbox.highest_modseq), uidvalidity: num(mailbox.uidvalidity), userId: num(mailbox.user_id) };
  }

  private async putBlob(tx: Tx, hash: string, raw: Buffer, refs: number): Promise<void> {
    // An upsert, so two writers storing the same new bytes cannot both insert.
    await tx
      .insertInto('blobs')
      .values({ hash, size: raw.length, data: raw, refs })
      .onConflict((oc) => oc.column('hash').doUpdateSet({ refs: sql`blobs.refs + excluded.refs` }))
      .execute();
    await this.ctx.queueText(tx, [hash]);
  }

  /** Inserts a message row; returns its id. */
  private async insertMessage(tx: Tx, mailboxId: number, uid: number, hash: string, size: number, flags: string[], internalDate: number, modseq: number): Promise<number> {
    const [row] = await this.ctx.query<{ id: number | string }>(tx, 'insert into messages (mailbox_id, uid, blob_hash, size, internal_date, flags, seen, deleted, modseq) values (?, ?, ?, ?, ?, ?, ?, ?, ?) returning id', [
      mailboxId,
      uid,
      hash,
      size,
      internalDate,
      flags.join(' '),
      hasFlag(flags, '\\Seen'),
      hasFlag(flags, '\\Deleted'),
      modseq,
    ]);
    return num(row!.id);
  }

  async append(mailboxId: number, raw: Buffer, flags: string[], internalDate?: Date): Promise<{ uid: number; uidvalidity: number; modseq: number }> {
    const hash = hashBytes(raw);
    return this.ctx.write(async (tx, changes) => {
      const [owner] = await this.ctx.query<{ user_id: number | string; quota_bytes: number | string; used_bytes: number | string }>(
        tx,
        'select users.id as user_id, users.quota_bytes, users.used_bytes from mailboxes inner join users on users.id = mailboxes.user_id where mailboxes.id = ?',
        [mailboxId],
      );
      if (!owner) throw new StoreError('not-found', 'no such mailbox');
      if (num(owner.quota_bytes) > 0 && num(owner.used_bytes) + raw.length > num(owner.quota_bytes)) {
        throw new StoreError('quota', 'quota exceeded');
      }
      const { firstUid, modseq, uidvalidity, userId } = await this.allocate(tx, mailboxId, 1);
      await this.putBlob(tx, hash, raw, 1);
      const stored = normalizeFlags(flags);
      const date = new Date((internalDate ?? new Date()).getTime());
      const id = await this.insertMessage(tx, mailboxId, firstUid, hash, raw.length, stored, date.getTime(), modseq);
      await this.ctx.query(tx, 'update users set used_bytes = used_bytes + ? where id = ?', [raw.length, userId]);
      const appended: MessageMeta = { id, mailboxId, uid: firstUid, blobHash: hash, size: raw.length, internalDate: date, flags: stored, modseq };
      await this.ctx.recordChange(tx, userId, mailboxId, 'append', changes, { modseq, appended: [appended], uidnext: firstUid + 1 });
      return { uid: firstUid, uidvalidity, modseq };
    });
  }

  async listMessages(mailboxId: number, range: { fromUid?: number; toUid?: number; changedSince?: number; limit?: number } = {}): Promise<MessageMeta[]> {
    // One of 16 statement texts, by the bounds given.
    let text = 'select * from messages where mailbox_id = ?';
    const params: number[] = [mailboxId];
    if (range.fromUid !== undefined) (text += ' and uid >= ?'), params.push(range.fromUid);
    if (range.toUid !== undefined) (text += ' and uid <= ?'), params.push(range.toUid);
    if (range.changedSince !== undefined) (text += ' and modseq > ?'), params.push(range.changedSince);
    text += ' order by uid';
    if (range.limit !== undefined) (text += ' limit ?'), params.push(range.limit);
    const rows = await this.ctx.read(() => this.ctx.query<Selectable<MessageTable>>(this.ctx.db, text, params));
    return rows.map(toMessage);
  }

  async listUids(mailboxId: number): Promise<number[]> {
    const rows = await this.ctx.read(() => this.ctx.db.selectFrom('messages').select('uid').where('mailbox_id', '=', mailboxId).orderBy('uid').execute());
    return rows.map((r) => num(r.uid));
  }

  async getMessage(mailboxId: number, uid: number): Promise<MessageMeta | undefined> {
    const row = await this.ctx.read(() => this.ctx.db.selectFrom('messages').selectAll().where('mailbox_id', '=', mailboxId).where('uid', '=', uid).executeTakeFirst());
    return row && toMessage(row);
  }

  async setFlags(mailboxId: number, uids: number[], op: FlagOp, flags: string[], unchangedSince?: number): Promise<{ updated: FlagUpdate[]; failed: number[] }> {
    const wanted = normalizeFlags(flags);
    return this.ctx.lazyWrite(async (tx, changes) => {
      const rows = await this.selectByUids(tx, mailboxId, uids);
      const updated: FlagUpdate[] = [];
      const failed: number[] = [];
      let modseq = 0;
      let userId = 0;
      for (const row of rows) {
        // RFC 7162 3.1.3: UNCHANGEDSINCE fails messages modified after the given modseq.
        if (unchangedSince !== undefined && num(row.modseq) > unchangedSince) {
          failed.push(num(row.uid));
          continue;
        }
        const current = splitFlags(row.flags);
        let next: string[];
        if (op === 'replace') next = wanted;
        else if (op === 'add') next = normalizeFlags([...current, ...wanted]);
        else next = current.filter((f) => !hasFlag(wanted, f));
        if (next.join(' ') === current.join(' ')) continue;
        if (modseq === 0) ({ modseq, userId } = await this.allocate(tx, mailboxId, 0));
        await this.ctx.query(tx, 'update messages set flags = ?, seen = ?, deleted = ?, modseq = ? where id = ?', [
          next.join(' '),
          hasFlag(next, '\\Seen'),
          hasFlag(next, '\\Deleted'),
          modseq,
          row.id,
        ]);
        updated.push({ uid: num(row.uid), flags: next, modseq });
      }
      if (updated.length > 0) await this.ctx.recordChange(tx, userId, mailboxId, 'flags', changes, { modseq, flags: updated });
      return { updated, failed };
    });
  }

  private async selectByUids(tx: Tx, mailboxId: number, uids: number[]): Promise<Selectable<MessageTable>[]> {
    const out: Selectable<MessageTable>[] = [];
    // Chunked to stay under the bound-parameter limits of both engines.
    for (let i = 0; i < uids.length; i += 500) {
      const chunk = uids.slice(i, i + 500);
      out.push(...(await this.ctx.query<Selectable<MessageTable>>(tx, MESSAGES_BY_UIDS, [mailboxId, this.ctx.uidList(chunk)])));
    }
    return out;
  }

  async expunge(mailboxId: number, uids?: number[], onlyDeleted = true): Promise<number[]> {
    return this.ctx.lazyWrite((tx, changes) => this.expungeIn(tx, mailboxId, uids, onlyDeleted, changes));
  }

  private async expungeIn(tx: Transaction<Database>, mailboxId: number, uids: number[] | undefined, onlyDeleted: boolean, changes: ChangeEvent[]): Promise<number[]> {
    let rows: Selectable<MessageTable>[];
    if (uids) rows = await this.selectByUids(tx, mailboxId, uids);
    else rows = await this.ctx.query<Selectable<MessageTable>>(tx, 'select * from messages where mailbox_id = ? and deleted = 1 order by uid', [mailboxId]);
    if (onlyDeleted) rows = rows.filter((r) => num(r.deleted) === 1);
    if (rows.length === 0) return [];
    const { modseq, userId } = await this.allocate(tx, mailboxId, 0);
    await this.ctx.query(tx, DELETE_MESSAGES, [this.ctx.uidList(rows.map((r) => num(r.id)))]);
    await this.ctx.query(tx, INSERT_EXPUNGED, [mailboxId, modseq, this.ctx.uidList(rows.map((r) => num(r.uid)))]);
    const freed = rows.reduce((sum, r) => sum + num(r.size), 0);
    await this.ctx.query(tx, 'update users set used_bytes = used_bytes - ? where id = ?', [freed, userId]);
    await releaseBlobs(this.ctx, tx, rows.map((r) => r.blob_hash));
    const expunged = rows.map((r) => num(r.uid));
    await this.ctx.recordChange(tx, userId, mailboxId, 'expunge', changes, { modseq, expunged });
    return expunged;
  }

  async expungedSince(mailboxId: number, modseq: number): Promise<number[]> {
    const rows = await this.ctx.read(() => this.ctx.query<{ uid: number | string }>(this.ctx.db, 'select uid from expunged where mailbox_id = ? and modseq > ? order by uid', [mailboxId, modseq]));
    return rows.map((r) => num(r.uid));
  }

  async copy(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<{ map: [number, number][]; uidvalidity: number }> {
    return this.ctx.write((tx, changes) => this.copyIn(tx, fromMailboxId, uids, toMailboxId, changes));
  }

  private async copyIn(tx: Transaction<Database>, fromMailboxId: number, uids: number[], toMailboxId: number, changes: ChangeEvent[]) {
    const rows = await this.selectByUids(tx, fromMailboxId, uids);
    const target = await tx
      .selectFrom('mailboxes')
      .innerJoin('users', 'users.id', 'mailboxes.user_id')
      .select(['users.quota_bytes', 'users.used_bytes', 'mailboxes.uidvalidity'])
      .where('mailboxes.id', '=', toMailboxId)
      .executeTakeFirst();
    if (!target) throw new StoreError('not-found', 'no such mailbox');
    if (rows.length === 0) return { map: [] as [number, number][], uidvalidity: num(target.uidvalidity) };
    const added = rows.reduce((sum, r) => sum + num(r.size), 0);
    if (num(target.quota_bytes) > 0 && num(target.used_bytes) + added > num(target.quota_bytes)) throw new StoreError('quota', 'quota exceeded');
    const { firstUid, modseq, uidvalidity, userId } = await this.allocate(tx, toMailboxId, rows.length);
    const map: [number, number][] = [];
    for (const [i, row] of rows.entries()) {
      await tx.updateTable('blobs').set({ refs: sql`refs + 1` }).where('hash', '=', row.blob_hash).execute();
      const flags = splitFlags(row.flags);
      await this.insertMessage(tx, toMailboxId, firstUid + i, row.blob_hash, num(row.size), flags, num(row.internal_date), modseq);
      map.push([num(row.uid), firstUid + i]);
    }
    await tx.updateTable('users').set({ used_bytes: sql`used_bytes + ${added}` }).where('id', '=', userId).execute();
    await this.ctx.recordChange(tx, userId, toMailboxId, 'append', changes);
    return { map, uidvalidity };
  }

  async move(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<{ map: [number, number][]; uidvalidity: number }> {
    return this.ctx.write(async (tx, changes) => {
      const result = await this.copyIn(tx, fromMailboxId, uids, toMailboxId, changes);
      await this.expungeIn(tx, fromMailboxId, result.map.map(([from]) => from), false, changes);
      return result;
    });
  }
}
