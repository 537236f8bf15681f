// A batch of deliveries written to PostgreSQL in one statement (issue 23): the transaction ids,
// blobs, the mailboxes' UID and modseq counters, messages, users' byte counts, change rows and
// their NOTIFY, as data-modifying CTEs, so the batch costs one round trip instead of one per table. The
// caller (Deliveries.deliverBatch, kysely/deliver.ts) prepares the rows and turns the answer into results; the
// full-text step and outbound entries stay separate statements after it.
import { sql, type Transaction } from 'kysely';
import type { Database } from './schema.js';

export interface PgBatchItem {
  /** Idempotency key; null for none. At most one item of a batch carries a given id. */
  txn: string | null;
  hash: string;
  /** References this item adds to its blob (targets and outbound recipients). */
  refs: number;
}

export interface PgBatchTarget {
  /** Index of its item in `items`. */
  item: number;
  userId: number;
  /** Canonical mailbox name; INBOX is used when the user has no such mailbox. */
  name: string;
  hash: string;
  size: number;
  internalDate: number;
  flags: string;
  seen: number;
  deleted: number;
}

export interface PgBatchInput {
  now: number;
  /** A commit marker to insert into txns with the batch (its outcome can then be looked up). */
  marker?: string;
  /**
   * NOTIFY the change rows on this channel, tagged with origin, in the change feed's format
   * (pg-change-feed.ts: {"o": origin, "e": [[id, userId, mailboxId, kind], ...]}).
   */
  notice?: { channel: string; origin: string };
  items: PgBatchItem[];
  /** One entry per distinct hash among the items. */
  blobs: { hash: string; raw: Buffer }[];
  /** In delivery order: UIDs are given in this order within each mailbox. */
  targets: PgBatchTarget[];
}

export interface PgBatchOutput {
  /** Indexes of the items stored (the others' transaction ids were taken already). */
  live: number[];
  /** Per target of a live item that found its mailbox, in target order. */
  placed: { target: number; mailboxId: number; uid: number; uidvalidity: number; modseq: number }[];
  /** Targets of live items whose user has neither the named mailbox nor an INBOX. */
  unplaced: number[];
  /** The change rows written, in id order. */
  changes: { id: number; userId: number; mailboxId: number }[];
}

const num = (v: unknown): number => Number(v);

/** Change events per NOTIFY payload: some 70 bytes each at most (three bigints and the kind). */
const NOTIFY_EVENTS = 80;

/**
 * Writes the batch. Data-modifying CTEs all run on the statement's snapshot, so each step takes
 * what the previous one decided from its RETURNING: the claimed txn ids decide the live items,
 * their references the blob rows, the mailboxes' new counters the UIDs (RFC 3501 2.3.1.1: strictly
 * ascending within a mailbox) and the one modseq a mailbox's new messages share (RFC 7162 3.1).
 * When some target is unplaced the caller must fail the transaction: rows were written for the rest.
 */
export async function writeDeliveryBatch(tx: Transaction<Database>, input: PgBatchInput): Promise<PgBatchOutput> {
  const { items, targets, blobs } = input;
  const blobRows = blobs.length > 0 ? sql.join(blobs.map((b) => sql`(${b.hash}::text, ${b.raw.length}::bigint, ${b.raw}::bytea)`)) : sql`(null::text, null::bigint, null::bytea)`;
  // Sent at COMMIT, in order, only if the transaction commits (as beforeCommit's NOTIFY).
  // NOTIFY_EVENTS per payload keeps each well below PostgreSQL's 8000-byte limit.
  const notify = input.notice
    ? sql`(select count(pg_notify(${input.notice.channel}, payload)) from (
          select json_build_object('o', ${input.notice.origin}::text, 'e', json_agg(json_build_array(id, user_id, mailbox_id, 'append') order by id))::text as payload
            from (select *, (row_number() over (order by id) - 1) / ${NOTIFY_EVENTS} as part from changed) c
            group by part order by part) p) as notified`
    : sql`0 as notified`;
  const { rows } = await sql<{
    live: number[];
    p_target: number[];
    p_mailbox: string[];
    p_uid: string[];
    p_validity: string[];
    p_modseq: string[];
    unplaced: number[];
    c_id: string[];
    c_user: string[];
    c_mailbox: string[];
  }>`
    with item as (
      select * from unnest(${items.map((_, i) => i)}::int[], ${items.map((i) => i.txn)}::text[], ${items.map((i) => i.hash)}::text[], ${items.map((i) => i.refs)}::bigint[])
        as t(ord, txn, hash, refs)
    ),
    claimed as (
      insert into txns (id, created_at)
        select txn, ${input.now}::bigint from item where txn is not null
        union all select ${input.marker ?? null}::text, ${input.now}::bigint where ${input.marker ?? null}::text is not null
      on conflict (id) do nothing returning id
    ),
    live as (select * from item where txn is null or txn in (select id from claimed)),
    blob_in(hash, size, data) as (values ${blobRows}),
    blob_refs as (select hash, sum(refs) as refs from live group by hash),
    stored_blobs as (
      insert into blobs (hash, size, data, refs)
        select b.hash, b.size, b.data, r.refs from blob_in b join blob_refs r on r.hash = b.hash
      on conflict (hash) do update set refs = blobs.refs + excluded.refs
    ),
    target as (
      select * from unnest(${targets.map((_, i) => i)}::int[], ${targets.map((t) => t.item)}::int[], ${targets.map((t) => t.userId)}::bigint[],
          ${targets.map((t) => t.name)}::text[], ${targets.map((t) => t.hash)}::text[], ${targets.map((t) => t.size)}::bigint[],
          ${targets.map((t) => t.internalDate)}::bigint[], ${targets.map((t) => t.flags)}::text[], ${targets.map((t) => t.seen)}::int[],
          ${targets.map((t) => t.deleted)}::int[])
        as t(ord, item, user_id, name, hash, size, internal_date, flags, seen, deleted)
      where t.item in (select ord from live)
    ),
    placed as (
      select t.*, coalesce(named.id, inbox.id) as mailbox_id from target t
        left join mailboxes named on named.user_id = t.user_id and named.name = t.name
        left join mailboxes inbox on inbox.user_id = t.user_id and inbox.name = 'INBOX'
    ),
    -- In id order, as the row locks are best taken (another node's batch takes them in the same order).
    per_mailbox as (select mailbox_id, count(*) as n from placed where mailbox_id is not null group by mailbox_id order by mailbox_id),
    counters as (
      update mailboxes set uidnext = mailboxes.uidnext + c.n, highest_modseq = mailboxes.highest_modseq + 1
        from per_mailbox c where mailboxes.id = c.mailbox_id
      returning mailboxes.id, mailboxes.uidnext - c.n as first_uid, mailboxes.highest_modseq as modseq, mailboxes.uidvalidity
    ),
    numbered as (
      select p.*, c.first_uid + row_number() over (partition by p.mailbox_id order by p.ord) - 1 as uid, c.modseq, c.uidvalidity
        from placed p join counters c on c.id = p.mailbox_id
    ),
    stored_messages as (
      insert into messages (mailbox_id, uid, blob_hash, size, internal_date, flags, seen, deleted, modseq)
        select mailbox_id, uid, hash, size, internal_date, flags, seen, deleted, modseq from numbered order by ord
    ),
    per_user as (select user_id, sum(size) as n from numbered group by user_id order by user_id),
    used as (update users set used_bytes = users.used_bytes + u.n from per_user u where users.id = u.user_id),
    changed as (
      insert into changes (user_id, mailbox_id, kind, created_at)
        select user_id, mailbox_id, 'append', ${input.now}::bigint from numbered order by ord
      returning id, user_id, mailbox_id
    )
    select
      array(select ord from live order by ord) as live,
      array(select ord from numbered order by ord) as p_target,
      array(select mailbox_id from numbered order by ord) as p_mailbox,
      array(select uid from numbered order by ord) as p_uid,
      array(select uidvalidity from numbered order by ord) as p_validity,
      array(select modseq from numbered order by ord) as p_modseq,
      array(select ord from target where ord not in (select ord from numbered) order by ord) as unplaced,
      array(select id from changed order by id) as c_id,
      array(select user_id from changed order by id) as c_user,
      array(select mailbox_id from changed order by id) as c_mailbox,
      ${notify}`.execute(tx);
  const row = rows[0]!;
  return {
    live: row.live.map(num),
    placed: row.p_target.map((target, i) => ({
      target: num(target),
      mailboxId: num(row.p_mailbox[i]),
      uid: num(row.p_uid[i]),
      uidvalidity: num(row.p_validity[i]),
      modseq: num(row.p_modseq[i]),
    })),
    unplaced: row.unplaced.map(num),
    changes: row.c_id.map((id, i) => ({ id: num(id), userId: num(row.c_user[i]), mailboxId: num(row.c_mailbox[i]) })),
  };
}
