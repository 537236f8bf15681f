// Moving a user between groups online (`quill user move`, POST /api/admin/users/:address/move):
//   1. copy: the user's rows are copied to the target group while mail keeps arriving in the source;
//   2. the directory notes the move (moving_to, and the old user id forwarding to the address);
//   3. fence: in one source transaction the user's rows are locked (every delivery, append or
//      flag change for the user waits), what changed since the copy is copied too, and the user
//      is deleted from the source. Deliveries that waited then find no mailbox, and the grouped
//      store sends them again to the target (found through moving_to), so each goes to exactly one place;
//   4. the directory entry is switched. A crash at any point leaves the user in exactly one group
//      that the directory leads to; running the move again finishes it.
// UIDs, UIDVALIDITY, modseqs, flags and internal dates are kept, so IMAP clients' caches stay valid.
import { sql, type Kysely, type Selectable } from 'kysely';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database, MailboxTable, UserTable } from './schema.js';
import { isGroupedStore, type Group, type GroupedStore } from './grouped-store.js';
import { deleteOrphanMetas } from './kysely-store.js';
import { indexBlobText } from './text-index.js';
import { StoreError, type Store } from './types.js';

export interface MoveResult {
  address: string;
  from: string;
  to: string;
  oldUserId: number;
  newUserId: number;
  messages: number;
  /** How long deliveries to the user waited (the fence). */
  fenceMs: number;
}

/** Tables with a user_id that a move copies itself (the others refuse the move, see below). */
const MOVED_TABLES = new Set(['mailboxes', 'subscriptions', 'web_sessions', 'drive_nodes', 'drive_chunks', 'drive_uploads']);

/** Source drive content id -> target content id, kept from the copy to the fence. */
export type ContentMap = Map<number, number>;

const num = (v: number | string | bigint): number => Number(v);

type Db = Kysely<Database>;

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Adds (or with a negative count, releases) references to blobs; drops unreferenced ones. */
async function adjustRefs(db: Db, counts: Map<string, number>): Promise<void> {
  const entries = [...counts].filter(([, n]) => n !== 0);
  for (const part of chunks(entries, 1000)) {
    await sql`update blobs set refs = blobs.refs + g.n
              from (select unnest(${part.map(([h]) => h)}::text[]) as hash, unnest(${part.map(([, n]) => n)}::bigint[]) as n) g
              where blobs.hash = g.hash`.execute(db);
    const released = part.filter(([, n]) => n < 0).map(([h]) => h);
    if (released.length > 0) {
      await db.deleteFrom('blobs').where('hash', 'in', released).where('refs', '<=', 0).execute();
      await deleteOrphanMetas(db, released);
    }
  }
}

/** Refuses users with rows in tables a move does not know how to copy (e.g. a drive added later). */
async function checkMovable(src: Db, userId: number, address: string): Promise<void> {
  const { rows } = await sql<{ tbl: string; col: string }>`
    select c.conrelid::regclass::text as tbl, a.attname as col
    from pg_constraint c join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
    where c.contype = 'f' and c.confrelid = 'users'::regclass`.execute(src);
  for (const { tbl, col } of rows) {
    if (MOVED_TABLES.has(tbl)) continue;
    const found = await sql`select 1 from ${sql.table(tbl)} where ${sql.ref(col)} = ${userId} limit 1`.execute(src);
    if (found.rows.length > 0) throw new StoreError('invalid', `${address} has rows in ${tbl}, which a move cannot copy yet`);
  }
}

/**
 * Makes the target's copy of the user equal to the source's: user row, mailboxes (matched by
 * UIDVALIDITY, which a rename keeps), messages (by UID), tombstones, web sessions. Used for the
 * bulk copy and again, under the fence, for what changed since. Returns the target user id.
 */
async function syncUser(src: Db, dst: Db, user: Selectable<UserTable>, dstUserId: number | undefined, contents: ContentMap): Promise<number> {
  const domainName = user.address.slice(user.address.lastIndexOf('@') + 1);
  await dst.insertInto('domains').values({ name: domainName, created_at: Date.now() }).onConflict((oc) => oc.column('name').doNothing()).execute();
  const domain = await dst.selectFrom('domains').select('id').where('name', '=', domainName).executeTakeFirstOrThrow();
  const values = {
    address: user.address,
    domain_id: num(domain.id),
    password_hash: user.password_hash,
    quota_bytes: num(user.quota_bytes),
    used_bytes: num(user.used_bytes),
    is_admin: num(user.is_admin),
    disabled: num(user.disabled),
    created_at: num(user.created_at),
    display_name: user.display_name,
  };
  let userId = dstUserId;
  if (userId === undefined) {
    // An interrupted earlier move may have left a copy: it is brought up to date like any other.
    const existing = await dst.selectFrom('users').select('id').where('address', '=', user.address).executeTakeFirst();
    userId = existing ? num(existing.id) : num((await dst.insertInto('users').values(values).returning('id').executeTakeFirstOrThrow()).id);
  }
  await dst.updateTable('users').set(values).where('id', '=', userId).execute();

  const srcBoxes = await src.selectFrom('mailboxes').selectAll().where('user_id', '=', user.id).execute();
  const dstBoxes = await dst.selectFrom('mailboxes').selectAll().where('user_id', '=', userId).execute();
  const dstByValidity = new Map(dstBoxes.map((b) => [num(b.uidvalidity), b]));
  const wanted = new Set(srcBoxes.map((b) => num(b.uidvalidity)));
  const refs = new Map<string, number>();
  const count = (hash: string, n: number) => refs.set(hash, (refs.get(hash) ?? 0) + n);
  for (const box of dstBoxes) {
    if (wanted.has(num(box.uidvalidity))) continue;
    for (const m of await dst.selectFrom('messages').select('blob_hash').where('mailbox_id', '=', box.id).execute()) count(m.blob_hash, -1);
    await dst.deleteFrom('messages').where('mailbox_id', '=', box.id).execute();
    await dst.deleteFrom('expunged').where('mailbox_id', '=', box.id).execute();
    await dst.deleteFrom('mailboxes').where('id', '=', box.id).execute();
  }
  // Out of the way first, so renames that swap names do not collide on (user_id, name).
  const kept = dstBoxes.filter((b) => wanted.has(num(b.uidvalidity)));
  for (const box of kept) await dst.updateTable('mailboxes').set({ name: `.quill-move-${box.id}` }).where('id', '=', box.id).execute();

  for (const box of srcBoxes) {
    const boxValues = {
      name: box.name,
      uidvalidity: num(box.uidvalidity),
      uidnext: num(box.uidnext),
      highest_modseq: num(box.highest_modseq),
      recent_uid: num(box.recent_uid),
      special_use: box.special_use,
      subscribed: num(box.subscribed),
      created_at: num(box.created_at),
    };
    const existing: Selectable<MailboxTable> | undefined = dstByValidity.get(num(box.uidvalidity));
    let dstBoxId: number;
    let copiedModseq = 0;
    if (existing) {
      dstBoxId = num(existing.id);
      copiedModseq = num(existing.highest_modseq);
      await dst.updateTable('mailboxes').set(boxValues).where('id', '=', dstBoxId).execute();
    } else {
      dstBoxId = num((await dst.insertInto('mailboxes').values({ user_id: userId, ...boxValues }).returning('id').executeTakeFirstOrThrow()).id);
    }
    await syncMessages(src, dst, num(box.id), dstBoxId, count);
    // Tombstones written since the copy (QRESYNC VANISHED must still report them).
    const tombstones = await src.selectFrom('expunged').select(['uid', 'modseq']).where('mailbox_id', '=', box.id).where('modseq', '>', copiedModseq).execute();
    for (const part of chunks(tombstones, 500)) {
      await dst
        .insertInto('expunged')
        .values(part.map((t) => ({ mailbox_id: dstBoxId, uid: num(t.uid), modseq: num(t.modseq) })))
        .onConflict((oc) => oc.columns(['mailbox_id', 'uid']).doUpdateSet({ modseq: sql`excluded.modseq` }))
        .execute();
    }
  }
  await copyMissingBlobs(src, dst, refs);
  await adjustRefs(dst, new Map([...refs].filter(([, n]) => n < 0)));

  // UIDVALIDITY must never repeat for a name: the target's counter goes past the copied values.
  const top = Math.max(0, ...srcBoxes.map((b) => num(b.uidvalidity)));
  await dst
    .insertInto('meta')
    .values({ key: 'uidvalidity', value: String(top) })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value: sql`cast(greatest(cast(meta.value as bigint), ${top}::bigint) as text)` }))
    .execute();

  const sessions = await src.selectFrom('web_sessions').selectAll().where('user_id', '=', user.id).execute();
  await dst.deleteFrom('web_sessions').where('user_id', '=', userId).execute();
  for (const part of chunks(sessions, 200)) {
    await dst
      .insertInto('web_sessions')
      .values(part.map((s) => ({ ...s, user_id: userId })))
      .onConflict((oc) => oc.column('id_hash').doNothing())
      .execute();
  }
  const subscriptions = await src.selectFrom('subscriptions').select('name').where('user_id', '=', user.id).execute();
  await dst.deleteFrom('subscriptions').where('user_id', '=', userId).execute();
  if (subscriptions.length > 0) await dst.insertInto('subscriptions').values(subscriptions.map((s) => ({ user_id: userId, name: s.name }))).execute();
  await syncDrive(src, dst, num(user.id), userId, contents);
  return userId;
}

/**
 * The user's drive: contents (chunks) by content id, copying only chunks the target lacks (a
 * file's bytes never change under one content id; an upload only grows), then the tree of
 * nodes and the uploads in progress written again with the target's ids. Node ids change with
 * the move; upload ids (what a resuming client holds) do not.
 */
async function syncDrive(src: Db, dst: Db, srcUserId: number, dstUserId: number, contents: ContentMap): Promise<void> {
  const nodes = await src.selectFrom('drive_nodes').selectAll().where('user_id', '=', srcUserId).execute();
  const uploads = await src.selectFrom('drive_uploads').selectAll().where('user_id', '=', srcUserId).execute();
  const live = new Set<number>();
  for (const row of [...nodes, ...uploads]) if (row.content_id !== null) live.add(num(row.content_id));
  for (const [from, to] of contents) {
    if (live.has(from)) continue;
    await dst.deleteFrom('drive_chunks').where('content_id', '=', to).execute();
    contents.delete(from);
  }
  for (const from of live) {
    let to = contents.get(from);
    if (to === undefined) {
      const row = await dst
        .insertInto('meta')
        .values({ key: 'drive_content', value: '1' })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value: sql`cast(cast(meta.value as bigint) + 1 as text)` }))
        .returning('value')
        .executeTakeFirstOrThrow();
      to = num(row.value);
      contents.set(from, to);
    }
    const have = new Set((await dst.selectFrom('drive_chunks').select('seq').where('content_id', '=', to).execute()).map((r) => num(r.seq)));
    const wanted = (await src.selectFrom('drive_chunks').select('seq').where('content_id', '=', from).orderBy('seq').execute()).map((r) => num(r.seq)).filter((seq) => !have.has(seq));
    // A few 1 MiB chunks at a time.
    for (const part of chunks(wanted, 4)) {
      const rows = await src.selectFrom('drive_chunks').selectAll().where('content_id', '=', from).where('seq', 'in', part).execute();
      await dst
        .insertInto('drive_chunks')
        .values(rows.map((r) => ({ content_id: to!, seq: num(r.seq), user_id: dstUserId, start: num(r.start), size: num(r.size), data: r.data })))
        .execute();
    }
  }
  // The tree, parents before children (0 is the root).
  await dst.deleteFrom('drive_uploads').where('user_id', '=', dstUserId).execute();
  await dst.deleteFrom('drive_nodes').where('user_id', '=', dstUserId).execute();
  const ids = new Map<number, number>([[0, 0]]);
  let level = nodes.filter((n) => num(n.parent_id) === 0);
  while (level.length > 0) {
    for (const node of level) {
      const { id, user_id: _user, parent_id, content_id, ...rest } = node;
      const row = await dst
        .insertInto('drive_nodes')
        .values({ ...rest, user_id: dstUserId, parent_id: ids.get(num(parent_id))!, content_id: content_id === null ? null : contents.get(num(content_id))! })
        .returning('id')
        .executeTakeFirstOrThrow();
      ids.set(num(id), num(row.id));
    }
    const done = new Set(level.map((n) => num(n.id)));
    level = nodes.filter((n) => done.has(num(n.parent_id)));
  }
  for (const upload of uploads) {
    const { user_id: _user, parent_id, content_id, ...rest } = upload;
    await dst
      .insertInto('drive_uploads')
      .values({ ...rest, user_id: dstUserId, parent_id: ids.get(num(parent_id)) ?? 0, content_id: contents.get(num(content_id))! })
      .execute();
  }
}

/** Messages of one mailbox by UID: missing ones inserted, gone ones deleted, changed flags updated. */
async function syncMessages(src: Db, dst: Db, srcBoxId: number, dstBoxId: number, count: (hash: string, n: number) => void): Promise<void> {
  const cols = ['id', 'uid', 'blob_hash', 'size', 'internal_date', 'flags', 'seen', 'deleted', 'modseq'] as const;
  const srcRows = await src.selectFrom('messages').select(cols).where('mailbox_id', '=', srcBoxId).orderBy('uid').execute();
  const dstRows = await dst.selectFrom('messages').select(cols).where('mailbox_id', '=', dstBoxId).execute();
  const dstByUid = new Map(dstRows.map((r) => [num(r.uid), r]));
  const srcUids = new Set(srcRows.map((r) => num(r.uid)));
  const gone = dstRows.filter((r) => !srcUids.has(num(r.uid)));
  for (const r of gone) count(r.blob_hash, -1);
  for (const part of chunks(gone.map((r) => r.id), 500)) await dst.deleteFrom('messages').where('id', 'in', part).execute();
  const inserts: typeof srcRows = [];
  for (const row of srcRows) {
    const have = dstByUid.get(num(row.uid));
    if (!have) {
      inserts.push(row);
      count(row.blob_hash, 1);
    } else if (num(have.modseq) !== num(row.modseq) || have.flags !== row.flags) {
      await dst.updateTable('messages').set({ flags: row.flags, seen: num(row.seen), deleted: num(row.deleted), modseq: num(row.modseq) }).where('id', '=', have.id).execute();
    }
  }
  // Blobs first (messages refer to them); copyMissingBlobs runs per call so the FK holds.
  await copyMissingBlobs(src, dst, new Map(inserts.map((r) => [r.blob_hash, 0])));
  for (const part of chunks(inserts, 200)) {
    await dst
      .insertInto('messages')
      .values(
        part.map((r) => ({
          mailbox_id: dstBoxId,
          uid: num(r.uid),
          blob_hash: r.blob_hash,
          size: num(r.size),
          internal_date: num(r.internal_date),
          flags: r.flags,
          seen: num(r.seen),
          deleted: num(r.deleted),
          modseq: num(r.modseq),
        })),
      )
      .execute();
  }
}

/**
 * Blobs the target lacks are copied with refs 0, then every positive count in `refs` is added
 * (and zeroed, so a second call does not add it again).
 */
async function copyMissingBlobs(src: Db, dst: Db, refs: Map<string, number>): Promise<void> {
  const hashes = [...refs.keys()];
  for (const part of chunks(hashes, 100)) {
    const present = new Set((await dst.selectFrom('blobs').select('hash').where('hash', 'in', part).execute()).map((r) => r.hash));
    const missing = part.filter((h) => !present.has(h));
    for (const few of chunks(missing, 20)) {
      const rows = await src.selectFrom('blobs').select(['hash', 'size', 'data']).where('hash', 'in', few).execute();
      await dst
        .insertInto('blobs')
        .values(rows.map((r) => ({ hash: r.hash, size: num(r.size), data: r.data, refs: 0 })))
        .onConflict((oc) => oc.column('hash').doNothing())
        .execute();
      // Their words for full-text search (groups are PostgreSQL).
      for (const r of rows) await indexBlobText(dst, 'postgres', r.hash, Buffer.from(r.data));
      // Their parses too, so the user's first search in the new group need not parse everything again.
      const metas = await src.selectFrom('blob_meta').select(['hash', 'meta']).where('hash', 'in', few).execute();
      if (metas.length > 0) await dst.insertInto('blob_meta').values(metas).onConflict((oc) => oc.column('hash').doNothing()).execute();
    }
  }
  const adds = new Map([...refs].filter(([, n]) => n > 0));
  await adjustRefs(dst, adds);
  for (const hash of adds.keys()) refs.set(hash, 0);
}

/** Deletes the user and everything of theirs from the source group (inside the fence). */
async function deleteUser(src: Db, userId: number): Promise<void> {
  const boxes = src.selectFrom('mailboxes').select('id').where('user_id', '=', userId);
  const held = await src
    .selectFrom('messages')
    .select(['blob_hash', sql<number>`count(*)`.as('n')])
    .where('mailbox_id', 'in', boxes)
    .groupBy('blob_hash')
    .execute();
  await src.deleteFrom('messages').where('mailbox_id', 'in', boxes).execute();
  await src.deleteFrom('expunged').where('mailbox_id', 'in', boxes).execute();
  await src.deleteFrom('mailboxes').where('user_id', '=', userId).execute();
  await src.deleteFrom('web_sessions').where('user_id', '=', userId).execute();
  await src.deleteFrom('subscriptions').where('user_id', '=', userId).execute();
  await src.deleteFrom('drive_uploads').where('user_id', '=', userId).execute();
  await src.deleteFrom('drive_nodes').where('user_id', '=', userId).execute();
  await src.deleteFrom('drive_chunks').where('user_id', '=', userId).execute();
  await src.deleteFrom('users').where('id', '=', userId).execute();
  await adjustRefs(src, new Map(held.map((r) => [r.blob_hash, -num(r.n)])));
}

const isDeadlock = (error: unknown) => (error as { code?: string })?.code === '40P01' || ((error as { cause?: { code?: string } })?.cause?.code === '40P01');

/**
 * Moves a user to another group without losing or duplicating mail (see the top of this file).
 * What the admin API calls: StoreError 'not-found' (no such user or group), 'invalid' (same
 * group, or a store of one group), 'conflict' (moved meanwhile), 'unavailable' (a database).
 */
export async function moveUser(store: Store, address: string, targetGroup: string): Promise<MoveResult> {
  if (!isGroupedStore(store)) throw new StoreError('invalid', 'moving users needs a store of several groups (quill group add)');
  const lower = address.toLowerCase();
  const from = await store.locate(lower, true);
  if (!from) throw new StoreError('not-found', `no user ${lower}`);
  const to = await store.group(targetGroup);
  if (from.group === to) throw new StoreError('invalid', `${lower} is in group ${to.info.name} already`);
  try {
    // A move that stopped after the source let the user go: only the switch is left to do.
    if (from.movingTo === to.info.name && !(await from.group.store.getUser(lower))) {
      const user = await to.store.getUser(lower);
      if (user) {
        await switchDirectory(store, lower, { group: from.group.info.name, userId: from.userId }, { group: to.info.name, userId: user.id });
        store.forget(lower);
        return { address: lower, from: from.group.info.name, to: to.info.name, oldUserId: from.userId, newUserId: user.id, messages: 0, fenceMs: 0 };
      }
    }
    return await move(store, lower, from.group, from.userId, to, from.group.store.kysely, to.store.kysely);
  } catch (error) {
    if (error instanceof StoreError) throw error;
    throw new StoreError('unavailable', `moving ${lower}: ${(error as Error).message}`, { cause: error });
  }
}

async function move(store: GroupedStore, address: string, source: Group, oldUserId: number, target: Group, src: Db, dst: Db): Promise<MoveResult> {
  const first = await src.selectFrom('users').selectAll().where('id', '=', oldUserId).executeTakeFirst();
  if (!first) throw new StoreError('not-found', `no user ${address} in group ${source.info.name}`);
  await checkMovable(src, oldUserId, address);
  const from = { group: source.info.name, userId: oldUserId };
  // 1. The bulk copy, while mail keeps arriving in the source.
  const contents: ContentMap = new Map();
  const newUserId = await dst.transaction().execute((tx) => syncUser(src, tx, first, undefined, contents));
  // The directory says where the user is going (and the old id forwards) before the source
  // lets the user go: from then on readers and deliveries find the user in the target.
  await store.directory.setMoving(address, from, target.info.name);
  // 2. The fence: a short source transaction that holds every row the user's writers update.
  let fence: { messages: number; ms: number } | undefined;
  for (let attempt = 1; !fence; attempt++) {
    // Content ids the fence's target transaction allocates are gone if it rolls back.
    const contentsBefore = new Map(contents);
    const started = Date.now();
    try {
      const messages = await src.transaction().execute(async (tx) => {
        // Mailboxes, then the user: the order deliveries take these locks in.
        await sql`select id from mailboxes where user_id = ${oldUserId} order by id for update`.execute(tx);
        const user = await tx.selectFrom('users').selectAll().where('id', '=', oldUserId).forUpdate().executeTakeFirst();
        if (!user) throw new StoreError('conflict', `${address} was removed or moved meanwhile`);
        await checkMovable(tx, oldUserId, address);
        const copied = await dst.transaction().execute(async (dtx) => {
          await syncUser(tx, dtx, user, newUserId, contents);
          return num((await dtx.selectFrom('messages').innerJoin('mailboxes', 'mailboxes.id', 'messages.mailbox_id').select(sql<number>`count(*)`.as('n')).where('mailboxes.user_id', '=', newUserId).executeTakeFirstOrThrow()).n);
        });
        await deleteUser(tx, oldUserId);
        return copied;
      });
      fence = { messages, ms: Date.now() - started };
    } catch (error) {
      contents.clear();
      contentsBefore.forEach((to, from) => contents.set(from, to));
      if (attempt < 3 && isDeadlock(error)) continue;
      // The source still has the user (its transaction rolled back): undo the rest.
      await store.directory.setMoving(address, from, null).catch(() => undefined);
      await dst.transaction().execute((tx) => deleteUser(tx, newUserId)).catch(() => undefined);
      throw error;
    }
  }
  // 3. The switch. Should it fail, the user is in the target only and found there through the
  // directory's moving_to; running the move again finishes it.
  await switchDirectory(store, address, from, { group: target.info.name, userId: newUserId });
  store.forget(address);
  return { address, from: source.info.name, to: target.info.name, oldUserId, newUserId, messages: fence.messages, fenceMs: fence.ms };
}

/** The directory switch; when its COMMIT's outcome is unknown, the directory is asked until it can tell. */
async function switchDirectory(store: GroupedStore, address: string, from: { group: string; userId: number }, to: { group: string; userId: number }): Promise<void> {
  try {
    await store.directory.switchUser(address, from, to);
    return;
  } catch (error) {
    if (error instanceof StoreError) throw error;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const now = await store.directory.lookup(address).catch(() => undefined);
      if (now) {
        if (now.group === to.group && now.userId === to.userId) return;
        throw error;
      }
      await sleep(200);
    }
    throw error;
  }
}
