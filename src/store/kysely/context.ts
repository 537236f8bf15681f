// What the role implementations over Kysely share: the engine that runs their statements
// (kysely-store.ts: transactions, group commit, durability, the change feed), the helpers for
// rows and flags, and the few writes that more than one role makes (mailboxes, blob references).
import { createHash } from 'node:crypto';
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { Database, MailboxTable, MessageTable } from '../schema.js';
import { StoreError, type ChangeEvent, type ChangeKind, type Mailbox, type MailboxDelta, type MessageMeta } from '../types.js';

export type Tx = Transaction<Database> | Kysely<Database>;

/** A write's body: runs in a transaction and records the change rows it writes in `changes`. */
export type WriteFn<T> = (tx: Transaction<Database>, changes: ChangeEvent[]) => Promise<T>;

/**
 * A statement as SQL text run by KyselyContext.query: the same text on both engines (`?` for each
 * parameter), or one per engine where they differ.
 */
export type SqlText = string | { sqlite: string; postgres: string };

export type CommitOutcome = 'committed' | 'absent' | 'unknown';

/** txns ids of the markers that let a delivery batch find out whether its COMMIT happened. */
export const COMMIT_MARKER_PREFIX = 'commit-marker:';

/** The engine as the roles see it (KyselyStore builds it; its subclasses decide the behaviour). */
export interface KyselyContext {
  readonly db: Kysely<Database>;
  readonly kind: 'sqlite' | 'postgres';
  /** Runs a read, turning driver errors into StoreErrors. */
  read<T>(fn: () => Promise<T>): Promise<T>;
  /** Runs fn in a transaction, turns driver errors into StoreErrors, then publishes changes (once durable). */
  write<T>(fn: WriteFn<T>, rows?: number, durable?: boolean): Promise<T>;
  /** A write that may be answered before its fsync (flag changes, expunges, \Recent claims). */
  lazyWrite<T>(fn: WriteFn<T>, rows?: number): Promise<T>;
  /**
   * Runs one statement from its SQL text, without Kysely's query building: for the statements IMAP
   * runs on every command. `db` is the write's transaction inside write(), else ctx.db.
   */
  query<R>(db: Tx, text: SqlText, params: readonly unknown[]): Promise<R[]>;
  /** A list of values as the list statements take it (a JSON array on SQLite, an array on PostgreSQL). */
  uidList(values: readonly (number | string)[]): unknown;
  /** Writes a change row (the change feed) and adds its event to `out`, with what the write did if given. */
  recordChange(tx: Tx, userId: number, mailboxId: number | null, kind: ChangeKind, out: ChangeEvent[], delta?: MailboxDelta): Promise<void>;
  /** Queues new blobs for the full-text indexer, in the transaction that stores them (migration 012). */
  queueText(tx: Tx, hashes: string[]): Promise<void>;
  /** Indexes what a mailbox still has queued for the full-text index (before a search). */
  catchUpText(mailboxId: number): Promise<void>;

  // For the delivery pipeline (deliver.ts), which runs its own transactions.
  /** Runs fn in one transaction, retrying retryable failures of the body; never retries a failed COMMIT. */
  transact<T>(fn: WriteFn<T>): Promise<{ result: T; changes: ChangeEvent[] }>;
  /** Settles a committed write once durable, announcing its changes first (in commit order). */
  whenDurable(changes: ChangeEvent[], ok: () => void, failed: (error: unknown) => void): void;
  /** Whether a failed COMMIT may nevertheless have committed (a server over a network). */
  readonly ambiguousCommit: boolean;
  /** After a COMMIT with an unknown outcome: did the transaction that inserted `marker` commit? */
  commitOutcome(marker: string): Promise<CommitOutcome>;
  /** Where a statement that writes change rows may announce them itself (PostgreSQL NOTIFY). */
  changeNotice(): { channel: string; origin: string } | undefined;
  /** Marks an event as announced by the statement that wrote it: the commit does not announce it again. */
  announced(event: ChangeEvent): void;
}

/** A COMMIT that failed in a way that leaves its outcome unknown: the data may be stored. */
export class AmbiguousCommitError extends StoreError {
  constructor(
    cause: unknown,
    /** What the transaction body returned and recorded, valid if it did commit after all. */
    readonly attempt: { result: unknown; changes: ChangeEvent[] },
  ) {
    super('unavailable', `commit outcome unknown: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

export const num = (v: number | string | bigint): number => Number(v);

/** Rows in runs of at most `size` (bound parameters per statement stay far below the engines' limits). */
export function chunks<T>(rows: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

const SYSTEM_FLAGS = new Map(['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft', '\\Recent'].map((f) => [f.toLowerCase(), f]));

/** Canonical case for system flags, duplicates removed, \Recent never stored. */
export function normalizeFlags(flags: readonly string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const raw of flags) {
    const flag = SYSTEM_FLAGS.get(raw.toLowerCase()) ?? raw;
    const key = flag.toLowerCase();
    if (flag === '\\Recent' || seen.has(key) || flag.length === 0) continue;
    seen.add(key);
    out.push(flag);
  }
  return out;
}

export function splitFlags(text: string): string[] {
  return text.length === 0 ? [] : text.split(' ');
}

export function hasFlag(flags: readonly string[], flag: string): number {
  return flags.some((f) => f.toLowerCase() === flag.toLowerCase()) ? 1 : 0;
}

export function hashBytes(raw: Buffer): string {
  return createHash('sha256').update(raw).digest('hex');
}

/** INBOX is case-insensitive (RFC 3501 5.1); every other name is kept as given. */
export function canonicalMailboxName(name: string): string {
  if (name.toUpperCase() === 'INBOX') return 'INBOX';
  if (name.toUpperCase().startsWith('INBOX/')) return 'INBOX' + name.slice(5);
  return name;
}

export function toMailbox(row: Selectable<MailboxTable>): Mailbox {
  return {
    id: num(row.id),
    userId: num(row.user_id),
    name: row.name,
    uidvalidity: num(row.uidvalidity),
    uidnext: num(row.uidnext),
    highestModseq: num(row.highest_modseq),
    recentUid: num(row.recent_uid),
    specialUse: row.special_use,
    subscribed: num(row.subscribed) === 1,
  };
}

export function toMessage(row: Selectable<MessageTable>): MessageMeta {
  return {
    id: num(row.id),
    mailboxId: num(row.mailbox_id),
    uid: num(row.uid),
    blobHash: row.blob_hash,
    size: num(row.size),
    internalDate: new Date(num(row.internal_date)),
    flags: splitFlags(row.flags),
    modseq: num(row.modseq),
  };
}

const DELETE_UNUSED_BLOBS: SqlText = {
  sqlite: 'delete from blobs where hash in (select value from json_each(?)) and refs <= 0',
  postgres: 'delete from blobs where hash = any($1::text[]) and refs <= 0',
};
const DELETE_ORPHAN_METAS: SqlText = {
  sqlite: 'delete from blob_meta where hash in (select value from json_each(?)) and not exists (select 1 from blobs where blobs.hash = blob_meta.hash)',
  postgres: 'delete from blob_meta where hash = any($1::text[]) and not exists (select 1 from blobs where blobs.hash = blob_meta.hash)',
};

/** Drops a reference to each of `hashes` (once per occurrence); blobs no one refers to go, with their parses. */
export async function releaseBlobs(ctx: KyselyContext, tx: Tx, hashes: string[]): Promise<void> {
  const counts = new Map<string, number>();
  for (const hash of hashes) counts.set(hash, (counts.get(hash) ?? 0) + 1);
  for (const [hash, n] of counts) {
    await ctx.query(tx, 'update blobs set refs = refs - ? where hash = ?', [n, hash]);
  }
  if (counts.size > 0) {
    const list = ctx.uidList([...counts.keys()]);
    await ctx.query(tx, DELETE_UNUSED_BLOBS, [list]);
    await ctx.query(tx, DELETE_ORPHAN_METAS, [list]);
  }
}

/** Drops the parses of those of `hashes` whose blob is gone (after a delete from blobs). */
export async function deleteOrphanMetas(tx: Kysely<Database>, hashes: string[]): Promise<void> {
  if (hashes.length === 0) return;
  await tx
    .deleteFrom('blob_meta')
    .where('hash', 'in', hashes)
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('blobs').select('blobs.hash').whereRef('blobs.hash', '=', 'blob_meta.hash'))))
    .execute();
}

/** UIDVALIDITY must never repeat for a name (RFC 3501 2.3.1.1): one counter for all mailboxes. */
async function nextUidvalidity(tx: Tx): Promise<number> {
  // One atomic upsert, so concurrent writers on PostgreSQL each get their own value.
  const now = Math.floor(Date.now() / 1000) % 0xffffffff;
  const row = await tx
    .insertInto('meta')
    .values({ key: 'uidvalidity', value: String(now) })
    .onConflict((oc) =>
      oc.column('key').doUpdateSet({
        value: sql`cast(case when cast(meta.value as bigint) + 1 > cast(${now} as bigint) then cast(meta.value as bigint) + 1 else cast(${now} as bigint) end as text)`,
      }),
    )
    .returning('value')
    .executeTakeFirstOrThrow();
  return Number(row.value);
}

/** A new, empty mailbox (inside a write): for CREATE and for a new user's default mailboxes. */
export async function insertMailbox(tx: Tx, userId: number, name: string, specialUse: string | null, subscribed = true): Promise<Mailbox> {
  const row = await tx
    .insertInto('mailboxes')
    .values({
      user_id: userId,
      name,
      uidvalidity: await nextUidvalidity(tx),
      uidnext: 1,
      highest_modseq: 1,
      recent_uid: 0,
      special_use: specialUse,
      subscribed: subscribed ? 1 : 0,
      created_at: Date.now(),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toMailbox(row);
}

/** Removes a mailbox's messages and releases their blobs (inside a write). */
export async function dropMailboxContents(ctx: KyselyContext, tx: Tx, mailboxId: number): Promise<void> {
  const rows = await tx.selectFrom('messages').select(['blob_hash', 'size']).where('mailbox_id', '=', mailboxId).execute();
  await tx.deleteFrom('messages').where('mailbox_id', '=', mailboxId).execute();
  await tx.deleteFrom('expunged').where('mailbox_id', '=', mailboxId).execute();
  await releaseBlobs(ctx, tx, rows.map((r) => r.blob_hash));
}

/**
 * Makes the methods named in `names` of a role implementation methods of `target` (the store):
 * one store object for callers, one small class per role behind it, no forwarding code.
 */
export function expose<R extends object>(target: object, role: R, names: readonly (keyof R & string)[]): void {
  for (const name of names) {
    const method = role[name];
    if (typeof method !== 'function') throw new Error(`${role.constructor.name} has no method ${name}`);
    Object.defineProperty(target, name, { value: (method as (...args: unknown[]) => unknown).bind(role), writable: true, configurable: true });
  }
}
