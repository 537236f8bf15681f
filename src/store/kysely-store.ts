// The Store implemented once over Kysely; the SQLite and PostgreSQL backends differ only
// in how they connect, how they are told of changes made by other processes, and pragmas.
import { createHash, randomUUID } from 'node:crypto';
import { CompiledQuery, sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { Database, DriveNodeTable, DriveUploadTable, MessageTable, MailboxTable, UserTable, OutboundTable, AuditLogTable } from './schema.js';
import { ftsQuery, queryWords, tsQuery } from './text-query.js';
import { TextIndexer, type TextIndexerOptions } from './text-indexer.js';
import { writeDeliveryBatch, type PgBatchTarget } from './pg-deliver.js';
import {
  DEFAULT_MAILBOXES,
  DRIVE_UPLOAD_TTL_MS,
  StoreError,
  driveNameProblem,
  type ChangeEvent,
  type ChangeKind,
  type ChangeListener,
  type DeliveryOptions,
  type DeliveryResult,
  type DeliveryTarget,
  type Domain,
  type DriveNode,
  type DriveUpload,
  type FlagOp,
  type FlagUpdate,
  type LoadFigures,
  type Mailbox,
  type Member,
  type MemberRequest,
  type MemberState,
  type MailboxStatus,
  type MessageMeta,
  type OutboundEntry,
  type Store,
  type StoreStatus,
  type User,
  type WebSession,
  type AuditEntry,
} from './types.js';

type Tx = Transaction<Database> | Kysely<Database>;

/** Rows in runs of at most `size` (bound parameters per statement stay far below the engines' limits). */
function chunks<T>(rows: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

interface PendingDelivery {
  raw: Buffer;
  hash: string;
  targets: DeliveryTarget[];
  options: DeliveryOptions;
  resolve: (result: DeliveryResult) => void;
  reject: (error: unknown) => void;
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

function splitFlags(text: string): string[] {
  return text.length === 0 ? [] : text.split(' ');
}

function hasFlag(flags: readonly string[], flag: string): number {
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

const num = (v: number | string | bigint): number => Number(v);

/**
 * A statement as SQL text run by KyselyStore.query: the same text on both engines (`?` for each
 * parameter), or one per engine where they differ.
 */
export type SqlText = string | { sqlite: string; postgres: string };

/** `?` placeholders as PostgreSQL numbers them ($1, $2, ...), made once per text. */
const pgTexts = new Map<string, string>();
function pgText(text: string): string {
  let out = pgTexts.get(text);
  if (out === undefined) {
    let n = 0;
    out = text.replace(/\?/g, () => `$${++n}`);
    if (pgTexts.size < 1000) pgTexts.set(text, out);
  }
  return out;
}

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
const DELETE_UNUSED_BLOBS: SqlText = {
  sqlite: 'delete from blobs where hash in (select value from json_each(?)) and refs <= 0',
  postgres: 'delete from blobs where hash = any($1::text[]) and refs <= 0',
};
const DELETE_ORPHAN_METAS: SqlText = {
  sqlite: 'delete from blob_meta where hash in (select value from json_each(?)) and not exists (select 1 from blobs where blobs.hash = blob_meta.hash)',
  postgres: 'delete from blob_meta where hash = any($1::text[]) and not exists (select 1 from blobs where blobs.hash = blob_meta.hash)',
};

/** Messages of a mailbox by UID: one statement text whatever the number of UIDs. */
const MESSAGES_BY_UIDS: SqlText = {
  sqlite: 'select * from messages where mailbox_id = ? and uid in (select value from json_each(?)) order by uid',
  postgres: 'select * from messages where mailbox_id = $1 and uid = any($2::bigint[]) order by uid',
};

function toUser(row: Selectable<UserTable>): User {
  return {
    id: num(row.id),
    address: row.address,
    domainId: num(row.domain_id),
    passwordHash: row.password_hash,
    quotaBytes: num(row.quota_bytes),
    usedBytes: num(row.used_bytes),
    isAdmin: num(row.is_admin) === 1,
    disabled: num(row.disabled) === 1,
    createdAt: new Date(num(row.created_at)),
    displayName: row.display_name,
  };
}

function toMailbox(row: Selectable<MailboxTable>): Mailbox {
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

function toMessage(row: Selectable<MessageTable>): MessageMeta {
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

function toOutbound(row: Selectable<OutboundTable> & { size: number | string }): OutboundEntry {
  return {
    id: num(row.id),
    sender: row.sender,
    recipient: row.recipient,
    domain: row.domain,
    blobHash: row.blob_hash,
    size: num(row.size),
    status: row.status as OutboundEntry['status'],
    attempts: num(row.attempts),
    createdAt: new Date(num(row.created_at)),
    nextAttemptAt: new Date(num(row.next_attempt_at)),
    lastError: row.last_error,
    warned: num(row.warned) === 1,
  };
}

function toAudit(row: Selectable<AuditLogTable>): AuditEntry {
  return {
    id: num(row.id),
    at: new Date(num(row.at)),
    actor: row.actor,
    action: row.action,
    target: row.target,
    detail: row.detail === null ? null : (JSON.parse(row.detail) as Record<string, unknown>),
    node: row.node,
  };
}

/** A COMMIT that failed in a way that leaves its outcome unknown: the data may be stored. */
class AmbiguousCommitError extends StoreError {
  constructor(
    cause: unknown,
    /** What the transaction body returned and recorded, valid if it did commit after all. */
    readonly attempt: { result: unknown; changes: ChangeEvent[] },
  ) {
    super('unavailable', `commit outcome unknown: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** txns ids of the markers that let a delivery batch find out whether its COMMIT happened. */
export const COMMIT_MARKER_PREFIX = 'commit-marker:';

export type CommitOutcome = 'committed' | 'absent' | 'unknown';

/** Most writes, and about the most rows, one shared transaction takes (KyselyStore.coalesceWrites). */
const GROUP_WRITES = 64;
const GROUP_ROWS = 250;

/** A write waiting for its turn in a shared transaction (KyselyStore.coalesceWrites). */
interface QueuedWrite {
  fn: (tx: Transaction<Database>, changes: ChangeEvent[]) => Promise<unknown>;
  /** Rows it writes, roughly: a shared transaction stops taking writes past GROUP_ROWS. */
  rows: number;
  /** Whether it is answered only once durable() (else right after COMMIT; see KyselyStore.lazyWrite). */
  durable: boolean;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** Rejects a queued write with the StoreError its failure maps to. */
function settleFailed(item: QueuedWrite, error: unknown): void {
  try {
    unavailable(error);
  } catch (mapped) {
    item.reject(mapped);
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

/** Wraps driver errors so protocol code can answer with a temporary failure. */
function unavailable(error: unknown): never {
  if (error instanceof StoreError) throw error;
  const message = error instanceof Error ? error.message : String(error);
  if (/UNIQUE|duplicate key/i.test(message)) throw new StoreError('conflict', message, { cause: error });
  throw new StoreError('unavailable', `store error: ${message}`, { cause: error });
}

export abstract class KyselyStore implements Store {
  abstract readonly kind: 'sqlite' | 'postgres';
  private pending: PendingDelivery[] = [];
  private flushScheduled = false;
  private flushing: Promise<void> = Promise.resolve();
  private listeners = new Set<ChangeListener>();
  /** Adds the words of stored blobs after their commit (text-indexer.ts). */
  private readonly textIndexer: TextIndexer;

  constructor(protected readonly db: Kysely<Database>) {
    // kind is a field of the subclass, not set yet here.
    this.textIndexer = new TextIndexer({ db, dialect: () => this.kind, write: (fn) => this.write(fn) });
  }

  /** Starts the background full-text indexer (once the schema is current). */
  protected startTextIndexer(options?: TextIndexerOptions): void {
    this.textIndexer.start(options);
  }

  /** Queues new blobs for the full-text indexer, in the transaction that stores them (migration 012). */
  private async queueText(tx: Tx, hashes: string[]): Promise<void> {
    for (const chunk of chunks(hashes, 500)) {
      await tx.insertInto('text_pending').values(chunk.map((hash) => ({ hash }))).onConflict((oc) => oc.column('hash').doNothing()).execute();
    }
    this.textIndexer.noteWrite();
  }

  // ---- change feed -------------------------------------------------------

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  protected emit(event: ChangeEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure must not break the writer or other listeners.
      }
    }
  }

  /** Called after a commit with the change rows this process wrote. */
  protected afterCommit(events: ChangeEvent[]): void {
    for (const event of events) this.emit(event);
  }

  /** Called right after a COMMIT with its change rows, before they are durable and announced. */
  protected noteCommitted(_events: ChangeEvent[]): void {}

  /**
   * For a backend whose COMMIT returns before the data is on disk (SQLite with its fsync moved off
   * the event loop): a promise of an fsync started after every COMMIT so far. Nothing is answered
   * or announced before it settles. Undefined: COMMIT itself is durable.
   */
  protected durable(): Promise<void> | undefined {
    return undefined;
  }

  /**
   * Whether flag changes, expunges and \Recent claims wait for durable() like every other write
   * (store.fsyncFlagChanges). When false they are answered and announced right after COMMIT and
   * reach the disk with the next fsync (laterDurable): a power cut can undo the last of them, as
   * with Dovecot's default mail_fsync=optimized, never a stored message nor the file's consistency.
   */
  protected fsyncFlagChanges = true;

  /** After a COMMIT answered before its fsync: make sure an fsync follows soon. */
  protected laterDurable(): void {}

  /** Settles a committed write once durable(), announcing its changes first (in commit order). */
  private whenDurable(changes: ChangeEvent[], ok: () => void, failed: (error: unknown) => void, durable = true): void {
    if (!durable) {
      this.laterDurable();
      this.afterCommit(changes);
      ok();
      return;
    }
    const sync = this.durable();
    if (!sync) {
      this.afterCommit(changes);
      ok();
      return;
    }
    sync.then(
      () => {
        this.afterCommit(changes);
        ok();
      },
      (error: unknown) => {
        // Committed, but not known to be on disk: announced (the database shows it), reported as failed.
        this.afterCommit(changes);
        failed(new StoreError('unavailable', `commit not confirmed on disk: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
      },
    );
  }

  /** Called inside a transaction just before COMMIT (PostgreSQL sends NOTIFY here). */
  protected async beforeCommit(_tx: Transaction<Database>, _events: ChangeEvent[]): Promise<void> {}

  /**
   * Where a statement that writes change rows may announce them itself (PostgreSQL: NOTIFY's
   * channel and this process's tag), saving beforeCommit its round trip. Undefined: it may not.
   */
  protected changeNotice(): { channel: string; origin: string } | undefined {
    return undefined;
  }

  /** Change events already announced by the statement that wrote them: beforeCommit skips them. */
  private readonly announced = new WeakSet<ChangeEvent>();

  /** Errors after which the whole transaction may simply run again (deadlock, serialization). */
  protected isRetryable(_error: unknown): boolean {
    return false;
  }

  /**
   * Whether a failed COMMIT may nevertheless have committed. True for a server reached over a
   * network: the connection can drop after the server committed but before it answered.
   */
  protected readonly ambiguousCommit: boolean = false;

  /**
   * After a COMMIT with an unknown outcome: did the transaction that inserted `marker` into txns
   * commit (and is it durable)? 'absent' means it did not and now never will; 'unknown' that
   * the database cannot say yet. Backends with ambiguousCommit override this.
   */
  protected async commitOutcome(_marker: string): Promise<CommitOutcome> {
    return 'unknown';
  }

  /** Runs fn in one transaction, retrying retryable failures of the body; never retries a failed COMMIT. */
  private async transact<T>(fn: (tx: Transaction<Database>, changes: ChangeEvent[]) => Promise<T>): Promise<{ result: T; changes: ChangeEvent[] }> {
    for (let attempt = 1; ; attempt++) {
      const changes: ChangeEvent[] = [];
      let bodyDone = false;
      let out: T | undefined;
      try {
        const result = await this.db.transaction().execute(async (tx) => {
          out = await fn(tx, changes);
          await this.beforeCommit(tx, changes.filter((event) => !this.announced.has(event)));
          bodyDone = true;
          return out;
        });
        this.noteCommitted(changes);
        return { result, changes };
      } catch (error) {
        if (bodyDone && this.ambiguousCommit && !(error instanceof StoreError)) {
          throw new AmbiguousCommitError(error, { result: out, changes });
        }
        if (!bodyDone && attempt < 3 && this.isRetryable(error)) continue;
        throw error;
      }
    }
  }

  private async recordChange(tx: Tx, userId: number, mailboxId: number | null, kind: ChangeKind, out: ChangeEvent[]): Promise<void> {
    const [row] = await this.query<{ id: number | string }>(tx, 'insert into changes (user_id, mailbox_id, kind, created_at) values (?, ?, ?, ?) returning id', [
      userId,
      mailboxId,
      kind,
      Date.now(),
    ]);
    out.push({ id: num(row!.id), userId, mailboxId, kind });
  }

  /**
   * Whether writes that queue up behind a running one share one transaction, each in its own
   * savepoint (one commit, one fsync for all): on for SQLite, whose one connection runs
   * transactions one at a time anyway. A failing write rolls back to its savepoint alone.
   */
  protected readonly coalesceWrites: boolean = false;
  private writeQueue: QueuedWrite[] = [];
  private writing = false;

  /** Runs fn in a transaction, turns driver errors into StoreErrors, then publishes changes. */
  protected async write<T>(fn: (tx: Transaction<Database>, changes: ChangeEvent[]) => Promise<T>, rows = 1, durable = true): Promise<T> {
    if (this.coalesceWrites) {
      return new Promise<T>((resolve, reject) => {
        this.writeQueue.push({ fn, rows, durable, resolve: resolve as (value: unknown) => void, reject });
        if (!this.writing) {
          // Started after this turn of the event loop: the commands of other sessions read in the
          // same turn join this transaction (better-sqlite3 runs a whole transaction before the
          // loop turns again, so without the wait nothing ever queued behind a running write).
          this.writing = true;
          setImmediate(() => void this.runWrites());
        }
      });
    }
    return this.writeAlone(fn, durable);
  }

  /** A write that may be answered before its fsync (flag changes, expunges, \Recent claims): see fsyncFlagChanges. */
  protected lazyWrite<T>(fn: (tx: Transaction<Database>, changes: ChangeEvent[]) => Promise<T>, rows = 1): Promise<T> {
    return this.write(fn, rows, this.fsyncFlagChanges);
  }

  private async writeAlone<T>(fn: (tx: Transaction<Database>, changes: ChangeEvent[]) => Promise<T>, durable: boolean): Promise<T> {
    let done: { result: T; changes: ChangeEvent[] };
    try {
      done = await this.transact(fn);
    } catch (error) {
      unavailable(error);
    }
    return new Promise<T>((resolve, reject) => this.whenDurable(done.changes, () => resolve(done.result), reject, durable));
  }

  /**
   * Runs queued writes: alone when one waits, else up to GROUP_WRITES (fewer when they write many
   * rows) in one transaction (group commit).
   */
  private async runWrites(): Promise<void> {
    this.writing = true;
    try {
      for (let round = 0; this.writeQueue.length > 0; round++) {
        // A turn of the event loop between transactions: better-sqlite3 runs each one without
        // yielding, so a long queue (a search's cache writes) would otherwise hold up every session.
        if (round > 0) await new Promise((resolve) => setImmediate(resolve));
        let take = 0;
        for (let rows = 0; take < this.writeQueue.length && take < GROUP_WRITES && rows < GROUP_ROWS; take++) rows += this.writeQueue[take]!.rows;
        const batch = this.writeQueue.splice(0, take);
        if (batch.length === 1) {
          const only = batch[0]!;
          let alone: { result: unknown; changes: ChangeEvent[] };
          try {
            alone = await this.transact(only.fn);
          } catch (error) {
            settleFailed(only, error);
            continue;
          }
          // Not awaited: the next transaction runs while this one's fsync is under way.
          this.whenDurable(alone.changes, () => only.resolve(alone.result), only.reject, only.durable);
          continue;
        }
        const outcomes: ({ ok: true; result: unknown; changes: ChangeEvent[] } | { ok: false; error: unknown })[] = [];
        try {
          await this.transact(async (tx, changes) => {
            for (const [i, item] of batch.entries()) {
              await this.query(tx, `savepoint w${i}`, []);
              const own: ChangeEvent[] = [];
              try {
                const result = await item.fn(tx, own);
                await this.query(tx, `release savepoint w${i}`, []);
                changes.push(...own);
                outcomes.push({ ok: true, result, changes: own });
              } catch (error) {
                // Undo this write alone; if even that fails, the whole transaction fails below.
                await this.query(tx, `rollback to savepoint w${i}`, []);
                await this.query(tx, `release savepoint w${i}`, []);
                outcomes.push({ ok: false, error });
              }
            }
          });
        } catch (error) {
          for (const item of batch) settleFailed(item, error);
          continue;
        }
        // Writes that need not wait are answered now (lazyWrite), the others once the fsync is done.
        for (const durable of [false, true]) {
          const picked = [...batch.keys()].filter((i) => batch[i]!.durable === durable);
          if (picked.length === 0) continue;
          const changes = picked.flatMap((i) => {
            const outcome = outcomes[i]!;
            return outcome.ok ? outcome.changes : [];
          });
          this.whenDurable(
            changes,
            () =>
              picked.forEach((i) => {
                const outcome = outcomes[i]!;
                if (outcome.ok) batch[i]!.resolve(outcome.result);
                else settleFailed(batch[i]!, outcome.error);
              }),
            (error) => picked.forEach((i) => batch[i]!.reject(error)),
            durable,
          );
        }
      }
    } finally {
      this.writing = false;
    }
  }

  protected async read<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      unavailable(error);
    }
  }

  /**
   * Runs one statement from its SQL text, without Kysely's query building: for the statements IMAP
   * runs on every command (flag changes, expunges, appends, an index catching up). `db` is the
   * write's transaction inside write(), else this.db. SQLite runs it as a kept prepared statement.
   */
  protected async query<R>(db: Tx, text: SqlText, params: readonly unknown[]): Promise<R[]> {
    const compiled = typeof text === 'string' ? (this.kind === 'postgres' ? pgText(text) : text) : text[this.kind];
    return (await db.executeQuery<R>(CompiledQuery.raw(compiled, params as unknown[]))).rows;
  }

  /** A list of values as MESSAGES_BY_UIDS and the other list statements take it. */
  private uidList(values: readonly (number | string)[]): unknown {
    return this.kind === 'sqlite' ? JSON.stringify(values) : values;
  }

  async ping(): Promise<void> {
    await this.read(() => sql`select 1`.execute(this.db));
  }

  async close(): Promise<void> {
    await this.textIndexer.stop();
    await this.flushing;
    await this.db.destroy();
  }

  // ---- domains -----------------------------------------------------------

  async addDomain(name: string): Promise<Domain> {
    const lower = name.toLowerCase();
    return this.write(async (tx) => {
      const existing = await tx.selectFrom('domains').select('id').where('name', '=', lower).executeTakeFirst();
      if (existing) throw new StoreError('conflict', `domain ${lower} already exists`);
      const createdAt = Date.now();
      const row = await tx.insertInto('domains').values({ name: lower, created_at: createdAt }).returning('id').executeTakeFirstOrThrow();
      return { id: num(row.id), name: lower, createdAt: new Date(createdAt) };
    });
  }

  async getDomain(name: string): Promise<Domain | undefined> {
    const row = await this.read(() => this.db.selectFrom('domains').selectAll().where('name', '=', name.toLowerCase()).executeTakeFirst());
    return row && { id: num(row.id), name: row.name, createdAt: new Date(num(row.created_at)) };
  }

  async listDomains(): Promise<Domain[]> {
    const rows = await this.read(() => this.db.selectFrom('domains').selectAll().orderBy('name').execute());
    return rows.map((row) => ({ id: num(row.id), name: row.name, createdAt: new Date(num(row.created_at)) }));
  }

  async removeDomain(name: string): Promise<void> {
    const lower = name.toLowerCase();
    await this.write(async (tx) => {
      const domain = await tx.selectFrom('domains').select('id').where('name', '=', lower).executeTakeFirst();
      if (!domain) throw new StoreError('not-found', `no domain ${lower}`);
      const users = await tx.selectFrom('users').select(tx.fn.countAll().as('n')).where('domain_id', '=', domain.id).executeTakeFirstOrThrow();
      if (num(users.n as number) > 0) throw new StoreError('conflict', `domain ${lower} still has ${users.n} user(s); remove them first`);
      await tx.deleteFrom('domains').where('id', '=', domain.id).execute();
    });
  }

  // ---- users -------------------------------------------------------------

  async addUser(input: { address: string; passwordHash: string; quotaBytes?: number; isAdmin?: boolean }): Promise<User> {
    const address = input.address.toLowerCase();
    const at = address.lastIndexOf('@');
    if (at < 1 || at === address.length - 1) throw new StoreError('invalid', `not an address: ${input.address}`);
    const domainName = address.slice(at + 1);
    const id = await this.write(async (tx, changes) => {
      const domain = await tx.selectFrom('domains').select('id').where('name', '=', domainName).executeTakeFirst();
      if (!domain) throw new StoreError('not-found', `no domain ${domainName}; add it with \`quill domain add ${domainName}\``);
      const existing = await tx.selectFrom('users').select('id').where('address', '=', address).executeTakeFirst();
      if (existing) throw new StoreError('conflict', `user ${address} already exists`);
      const row = await tx
        .insertInto('users')
        .values({
          address,
          domain_id: num(domain.id),
          password_hash: input.passwordHash,
          quota_bytes: input.quotaBytes ?? 0,
          used_bytes: 0,
          is_admin: input.isAdmin ? 1 : 0,
          disabled: 0,
          created_at: Date.now(),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      const userId = num(row.id);
      for (const mailbox of DEFAULT_MAILBOXES) await this.insertMailbox(tx, userId, mailbox.name, mailbox.specialUse);
      await this.recordChange(tx, userId, null, 'mailbox', changes);
      return userId;
    });
    return (await this.getUserById(id))!;
  }

  async getUser(address: string): Promise<User | undefined> {
    const row = await this.read(() => this.db.selectFrom('users').selectAll().where('address', '=', address.toLowerCase()).executeTakeFirst());
    return row && toUser(row);
  }

  async getUserById(id: number): Promise<User | undefined> {
    const row = await this.read(() => this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst());
    return row && toUser(row);
  }

  async listUsers(domain?: string): Promise<User[]> {
    const rows = await this.read(() => {
      let q = this.db.selectFrom('users').selectAll('users').orderBy('address');
      if (domain) q = q.innerJoin('domains', 'domains.id', 'users.domain_id').where('domains.name', '=', domain.toLowerCase());
      return q.execute();
    });
    return rows.map(toUser);
  }

  async removeUser(address: string): Promise<void> {
    const lower = address.toLowerCase();
    await this.write(async (tx) => {
      const user = await tx.selectFrom('users').select('id').where('address', '=', lower).executeTakeFirst();
      if (!user) throw new StoreError('not-found', `no user ${lower}`);
      const mailboxes = await tx.selectFrom('mailboxes').select('id').where('user_id', '=', user.id).execute();
      for (const mailbox of mailboxes) await this.dropMailboxContents(tx, num(mailbox.id));
      await tx.deleteFrom('mailboxes').where('user_id', '=', user.id).execute();
      await tx.deleteFrom('users').where('id', '=', user.id).execute();
    });
  }

  async setPassword(address: string, passwordHash: string): Promise<void> {
    await this.updateUser(address, { password_hash: passwordHash });
  }

  async setQuota(address: string, quotaBytes: number): Promise<void> {
    await this.updateUser(address, { quota_bytes: quotaBytes });
  }

  async setUserDisabled(address: string, disabled: boolean): Promise<void> {
    await this.updateUser(address, { disabled: disabled ? 1 : 0 });
  }

  async setUserAdmin(address: string, isAdmin: boolean): Promise<void> {
    await this.updateUser(address, { is_admin: isAdmin ? 1 : 0 });
  }

  async setDisplayName(address: string, displayName: string): Promise<void> {
    await this.updateUser(address, { display_name: displayName });
  }

  async searchUsers(query: { q?: string; offset?: number; limit?: number }): Promise<{ users: User[]; total: number }> {
    // Addresses are stored lower-case, so a lower-case LIKE is case-insensitive on both backends.
    const pattern = query.q ? `%${query.q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%` : undefined;
    return this.read(async () => {
      let base = this.db.selectFrom('users');
      if (pattern !== undefined) base = base.where(sql<boolean>`address like ${pattern} escape '\\'`);
      const count = await base.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
      const rows = await base
        .selectAll()
        .orderBy('address')
        .limit(query.limit ?? 100)
        .offset(query.offset ?? 0)
        .execute();
      return { users: rows.map(toUser), total: num(count.n as number) };
    });
  }

  private async updateUser(address: string, values: { password_hash?: string; quota_bytes?: number; disabled?: number; is_admin?: number; display_name?: string }): Promise<void> {
    await this.write(async (tx) => {
      const result = await tx.updateTable('users').set(values).where('address', '=', address.toLowerCase()).executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) throw new StoreError('not-found', `no user ${address.toLowerCase()}`);
    });
  }

  // ---- mailboxes ---------------------------------------------------------

  /** UIDVALIDITY must never repeat for a name (RFC 3501 2.3.1.1): one counter for all mailboxes. */
  private async nextUidvalidity(tx: Tx): Promise<number> {
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

  private async insertMailbox(tx: Tx, userId: number, name: string, specialUse: string | null, subscribed = true): Promise<Mailbox> {
    const row = await tx
      .insertInto('mailboxes')
      .values({
        user_id: userId,
        name,
        uidvalidity: await this.nextUidvalidity(tx),
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

  async listMailboxes(userId: number): Promise<Mailbox[]> {
    const rows = await this.read(() => this.db.selectFrom('mailboxes').selectAll().where('user_id', '=', userId).orderBy('name').execute());
    return rows.map(toMailbox);
  }

  async getMailbox(userId: number, name: string): Promise<Mailbox | undefined> {
    const [row] = await this.read(() => this.query<Selectable<MailboxTable>>(this.db, 'select * from mailboxes where user_id = ? and name = ?', [userId, canonicalMailboxName(name)]));
    return row && toMailbox(row);
  }

  async getMailboxById(id: number): Promise<Mailbox | undefined> {
    const [row] = await this.read(() => this.query<Selectable<MailboxTable>>(this.db, 'select * from mailboxes where id = ?', [id]));
    return row && toMailbox(row);
  }

  async createMailbox(userId: number, name: string, specialUse: string | null = null, subscribed = true): Promise<Mailbox> {
    const canonical = canonicalMailboxName(name);
    return this.write(async (tx, changes) => {
      const existing = await tx.selectFrom('mailboxes').select('id').where('user_id', '=', userId).where('name', '=', canonical).executeTakeFirst();
      if (existing) throw new StoreError('conflict', `mailbox ${canonical} already exists`);
      // A subscription kept from a deleted mailbox of this name goes back onto the new one.
      const kept = await tx.deleteFrom('subscriptions').where('user_id', '=', userId).where('name', '=', canonical).executeTakeFirst();
      const mailbox = await this.insertMailbox(tx, userId, canonical, specialUse, subscribed || Number(kept.numDeletedRows) > 0);
      await this.recordChange(tx, userId, null, 'mailbox', changes);
      return mailbox;
    });
  }

  /** Removes a mailbox's messages and releases their blobs (inside a write). */
  private async dropMailboxContents(tx: Tx, mailboxId: number): Promise<void> {
    const rows = await tx.selectFrom('messages').select(['blob_hash', 'size']).where('mailbox_id', '=', mailboxId).execute();
    await tx.deleteFrom('messages').where('mailbox_id', '=', mailboxId).execute();
    await tx.deleteFrom('expunged').where('mailbox_id', '=', mailboxId).execute();
    await this.releaseBlobs(tx, rows.map((r) => r.blob_hash));
  }

  private async releaseBlobs(tx: Tx, hashes: string[]): Promise<void> {
    const counts = new Map<string, number>();
    for (const hash of hashes) counts.set(hash, (counts.get(hash) ?? 0) + 1);
    for (const [hash, n] of counts) {
      await this.query(tx, 'update blobs set refs = refs - ? where hash = ?', [n, hash]);
    }
    if (counts.size > 0) {
      const list = this.uidList([...counts.keys()]);
      await this.query(tx, DELETE_UNUSED_BLOBS, [list]);
      await this.query(tx, DELETE_ORPHAN_METAS, [list]);
    }
  }

  private async adjustUsage(tx: Tx, mailboxId: number, delta: number): Promise<void> {
    if (delta === 0) return;
    const mailbox = await tx.selectFrom('mailboxes').select('user_id').where('id', '=', mailboxId).executeTakeFirstOrThrow();
    await tx.updateTable('users').set({ used_bytes: sql`used_bytes + ${delta}` }).where('id', '=', mailbox.user_id).execute();
  }

  async deleteMailbox(mailboxId: number): Promise<void> {
    await this.write(async (tx, changes) => {
      const mailbox = await tx.selectFrom('mailboxes').selectAll().where('id', '=', mailboxId).executeTakeFirst();
      if (!mailbox) throw new StoreError('not-found', 'no such mailbox');
      if (mailbox.name === 'INBOX') throw new StoreError('invalid', 'INBOX cannot be deleted');
      const size = await tx.selectFrom('messages').select(sql<number>`coalesce(sum(size), 0)`.as('total')).where('mailbox_id', '=', mailboxId).executeTakeFirstOrThrow();
      await this.adjustUsage(tx, mailboxId, -num(size.total));
      await this.dropMailboxContents(tx, mailboxId);
      await tx.deleteFrom('mailboxes').where('id', '=', mailboxId).execute();
      // RFC 3501 6.3.6: the subscription outlives the mailbox.
      if (num(mailbox.subscribed) === 1) {
        await tx.insertInto('subscriptions').values({ user_id: num(mailbox.user_id), name: mailbox.name }).onConflict((oc) => oc.columns(['user_id', 'name']).doNothing()).execute();
      }
      await this.recordChange(tx, num(mailbox.user_id), mailboxId, 'mailbox', changes);
    });
  }

  async renameMailbox(userId: number, from: string, to: string): Promise<void> {
    const source = canonicalMailboxName(from);
    const target = canonicalMailboxName(to);
    await this.write(async (tx, changes) => {
      const mailbox = await tx.selectFrom('mailboxes').selectAll().where('user_id', '=', userId).where('name', '=', source).executeTakeFirst();
      if (!mailbox) throw new StoreError('not-found', `no mailbox ${source}`);
      const clash = await tx.selectFrom('mailboxes').select('id').where('user_id', '=', userId).where('name', '=', target).executeTakeFirst();
      if (clash) throw new StoreError('conflict', `mailbox ${target} already exists`);
      if (source === 'INBOX') {
        // RFC 3501 6.3.5: renaming INBOX moves its messages to the new name; INBOX stays, empty.
        const created = await this.insertMailbox(tx, userId, target, null);
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
      await this.recordChange(tx, userId, null, 'mailbox', changes);
    });
  }

  async setSubscribed(mailboxId: number, subscribed: boolean): Promise<void> {
    await this.write(async (tx) => {
      await tx.updateTable('mailboxes').set({ subscribed: subscribed ? 1 : 0 }).where('id', '=', mailboxId).execute();
    });
  }

  async listLostSubscriptions(userId: number): Promise<string[]> {
    const rows = await this.read(() => this.db.selectFrom('subscriptions').select('name').where('user_id', '=', userId).orderBy('name').execute());
    return rows.map((r) => r.name);
  }

  async dropLostSubscription(userId: number, name: string): Promise<boolean> {
    return this.write(async (tx) => {
      const result = await tx.deleteFrom('subscriptions').where('user_id', '=', userId).where('name', '=', canonicalMailboxName(name)).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    });
  }

  async mailboxStatus(mailboxId: number): Promise<MailboxStatus> {
    return this.read(async () => {
      const mailbox = await this.db.selectFrom('mailboxes').selectAll().where('id', '=', mailboxId).executeTakeFirst();
      if (!mailbox) throw new StoreError('not-found', 'no such mailbox');
      const counts = await this.db
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
    return this.lazyWrite(async (tx) => {
      const [mailbox] = await this.query<{ recent_uid: number | string; uidnext: number | string }>(tx, 'select recent_uid, uidnext from mailboxes where id = ?', [mailboxId]);
      if (!mailbox) throw new StoreError('not-found', 'no such mailbox');
      const old = num(mailbox.recent_uid);
      const top = Math.min(upTo ?? Infinity, num(mailbox.uidnext) - 1);
      if (top > old) await this.query(tx, 'update mailboxes set recent_uid = ? where id = ?', [top, mailboxId]);
      return old;
    });
  }

  // ---- messages ----------------------------------------------------------

  /** Allocates the next UID and modseq of a mailbox for `count` new messages. */
  private async allocate(tx: Tx, mailboxId: number, count: number): Promise<{ firstUid: number; modseq: number; uidvalidity: number; userId: number }> {
    // Read-modify-write in one statement: on PostgreSQL the row lock makes concurrent allocations wait.
    const [mailbox] = await this.query<{ uidnext: number | string; highest_modseq: number | string; uidvalidity: number | string; user_id: number | string }>(
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
    await this.queueText(tx, [hash]);
  }

  async searchText(mailboxId: number, query: string, options: { orPartial?: boolean } = {}): Promise<number[]> {
    const words = queryWords(query);
    if (words.length === 0) return [];
    const partial = options.orPartial ? 1 : 2; // `partial = 2` matches nothing
    return this.read(async () => {
      // Mail stored a moment ago may still wait for the indexer.
      await this.textIndexer.catchUp(mailboxId);
      const found =
        this.kind === 'sqlite'
          ? // The hits first, materialized, then their messages by blob hash (CROSS JOIN keeps the
            // order, INDEXED BY the index): planned otherwise, SQLite reads the mailbox once per hit.
            await sql<{ uid: number }>`with hits as materialized (select rowid as id from blob_fts where blob_fts match ${ftsQuery(words)}
                union select id from blob_text where partial = 1 and ${partial} = 1)
              select m.uid from hits cross join blob_text t on t.id = hits.id cross join messages m indexed by messages_blob_hash on m.blob_hash = t.hash
              where m.mailbox_id = ${mailboxId} order by m.uid`.execute(this.db)
          : // Hits first here too (GIN), then their messages by blob hash.
            await sql<{ uid: number }>`with hits as materialized (select hash from blob_text where tsv @@ to_tsquery('simple', ${tsQuery(words)})
                union select hash from blob_text where partial = 1 and ${partial} = 1)
              select m.uid from hits join messages m on m.blob_hash = hits.hash
              where m.mailbox_id = ${mailboxId} order by m.uid`.execute(this.db);
      return found.rows.map((r) => num(r.uid));
    });
  }

  private async insertMessage(tx: Tx, mailboxId: number, uid: number, hash: string, size: number, flags: string[], internalDate: number, modseq: number): Promise<void> {
    await this.query(tx, 'insert into messages (mailbox_id, uid, blob_hash, size, internal_date, flags, seen, deleted, modseq) values (?, ?, ?, ?, ?, ?, ?, ?, ?)', [
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
  }

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
      const marker = this.ambiguousCommit ? `${COMMIT_MARKER_PREFIX}${randomUUID()}` : undefined;
      try {
        done = await this.transact(async (tx, collected) => {
          return this.deliverBatch(tx, batch, collected, marker);
        });
      } catch (error) {
        if (!(error instanceof AmbiguousCommitError)) break;
        // Running a batch that did commit again would store it twice.
        const outcome = marker ? await this.commitOutcome(marker) : 'unknown';
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
        this.whenDurable(
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
        item.resolve(await this.write((tx, collected) => this.deliverOne(tx, item, collected)));
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
    if (this.kind === 'postgres') return this.deliverBatchInOneStatement(tx, batch, changes, marker);
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
    await this.queueText(tx, [...blobs.keys()]);

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
    const notice = this.changeNotice();
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
      if (notice) this.announced.add(event);
      changes.push(event);
    }
    const live = out.live.map((n) => candidates[n]!);

    // Full-text words of each new blob (issue 21): queued here, indexed after the commit.
    await this.queueText(tx, [...new Set(live.map(({ item }) => item.hash))]);

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

  async append(mailboxId: number, raw: Buffer, flags: string[], internalDate?: Date): Promise<{ uid: number; uidvalidity: number; modseq: number }> {
    const hash = hashBytes(raw);
    return this.write(async (tx, changes) => {
      const [owner] = await this.query<{ user_id: number | string; quota_bytes: number | string; used_bytes: number | string }>(
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
      await this.insertMessage(tx, mailboxId, firstUid, hash, raw.length, normalizeFlags(flags), (internalDate ?? new Date()).getTime(), modseq);
      await this.query(tx, 'update users set used_bytes = used_bytes + ? where id = ?', [raw.length, userId]);
      await this.recordChange(tx, userId, mailboxId, 'append', changes);
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
    const rows = await this.read(() => this.query<Selectable<MessageTable>>(this.db, text, params));
    return rows.map(toMessage);
  }

  async listUids(mailboxId: number): Promise<number[]> {
    const rows = await this.read(() => this.db.selectFrom('messages').select('uid').where('mailbox_id', '=', mailboxId).orderBy('uid').execute());
    return rows.map((r) => num(r.uid));
  }

  async getMessage(mailboxId: number, uid: number): Promise<MessageMeta | undefined> {
    const row = await this.read(() => this.db.selectFrom('messages').selectAll().where('mailbox_id', '=', mailboxId).where('uid', '=', uid).executeTakeFirst());
    return row && toMessage(row);
  }

  async getBlob(hash: string): Promise<Buffer | undefined> {
    const row = await this.read(() => this.db.selectFrom('blobs').select('data').where('hash', '=', hash).executeTakeFirst());
    return row ? Buffer.from(row.data) : undefined;
  }

  async getBlobMeta(hash: string): Promise<string | null> {
    const row = await this.read(() => this.db.selectFrom('blob_meta').select('meta').where('hash', '=', hash).executeTakeFirst());
    return row?.meta ?? null;
  }

  async setBlobMeta(hash: string, meta: string): Promise<void> {
    await this.setBlobMetas([[hash, meta]]);
  }

  async getBlobs(hashes: string[]): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    const unique = [...new Set(hashes)];
    // Chunked to stay under the bound-parameter limits of both engines.
    for (let i = 0; i < unique.length; i += 500) {
      const rows = await this.read(() => this.db.selectFrom('blobs').select(['hash', 'data']).where('hash', 'in', unique.slice(i, i + 500)).execute());
      for (const row of rows) out.set(row.hash, Buffer.from(row.data));
    }
    return out;
  }

  async getBlobMetas(hashes: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const unique = [...new Set(hashes)];
    for (let i = 0; i < unique.length; i += 500) {
      const rows = await this.read(() => this.db.selectFrom('blob_meta').select(['hash', 'meta']).where('hash', 'in', unique.slice(i, i + 500)).execute());
      for (const row of rows) out.set(row.hash, row.meta);
    }
    return out;
  }

  /**
   * Upserts many parses, 100 to a statement, in one transaction; parses of blobs no longer stored
   * are dropped in it. (Concurrent transactions on PostgreSQL can still leave one behind when an
   * expunge commits in between: harmless, it is the parse of those bytes should they come again.)
   */
  async setBlobMetas(given: [hash: string, meta: string][]): Promise<void> {
    // One row per hash: an upsert may not touch a row twice in one statement (PostgreSQL).
    const entries = [...new Map(given)];
    if (entries.length === 0) return;
    await this.write(async (tx) => {
      for (let i = 0; i < entries.length; i += 100) {
        await tx
          .insertInto('blob_meta')
          .values(entries.slice(i, i + 100).map(([hash, meta]) => ({ hash, meta })))
          .onConflict((oc) => oc.column('hash').doUpdateSet({ meta: (eb) => eb.ref('excluded.meta') }))
          .execute();
      }
      // A parse of bytes expunged meanwhile is not kept (one primary-key probe each).
      for (let i = 0; i < entries.length; i += 500) await deleteOrphanMetas(tx, entries.slice(i, i + 500).map(([hash]) => hash));
    }, entries.length);
  }

  async setFlags(mailboxId: number, uids: number[], op: FlagOp, flags: string[], unchangedSince?: number): Promise<{ updated: FlagUpdate[]; failed: number[] }> {
    const wanted = normalizeFlags(flags);
    return this.lazyWrite(async (tx, changes) => {
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
        await this.query(tx, 'update messages set flags = ?, seen = ?, deleted = ?, modseq = ? where id = ?', [
          next.join(' '),
          hasFlag(next, '\\Seen'),
          hasFlag(next, '\\Deleted'),
          modseq,
          row.id,
        ]);
        updated.push({ uid: num(row.uid), flags: next, modseq });
      }
      if (updated.length > 0) await this.recordChange(tx, userId, mailboxId, 'flags', changes);
      return { updated, failed };
    });
  }

  private async selectByUids(tx: Tx, mailboxId: number, uids: number[]): Promise<Selectable<MessageTable>[]> {
    const out: Selectable<MessageTable>[] = [];
    // Chunked to stay under the bound-parameter limits of both engines.
    for (let i = 0; i < uids.length; i += 500) {
      const chunk = uids.slice(i, i + 500);
      out.push(...(await this.query<Selectable<MessageTable>>(tx, MESSAGES_BY_UIDS, [mailboxId, this.uidList(chunk)])));
    }
    return out;
  }

  async expunge(mailboxId: number, uids?: number[], onlyDeleted = true): Promise<number[]> {
    return this.lazyWrite((tx, changes) => this.expungeIn(tx, mailboxId, uids, onlyDeleted, changes));
  }

  private async expungeIn(tx: Transaction<Database>, mailboxId: number, uids: number[] | undefined, onlyDeleted: boolean, changes: ChangeEvent[]): Promise<number[]> {
    let rows: Selectable<MessageTable>[];
    if (uids) rows = await this.selectByUids(tx, mailboxId, uids);
    else rows = await this.query<Selectable<MessageTable>>(tx, 'select * from messages where mailbox_id = ? and deleted = 1 order by uid', [mailboxId]);
    if (onlyDeleted) rows = rows.filter((r) => num(r.deleted) === 1);
    if (rows.length === 0) return [];
    const { modseq, userId } = await this.allocate(tx, mailboxId, 0);
    await this.query(tx, DELETE_MESSAGES, [this.uidList(rows.map((r) => num(r.id)))]);
    await this.query(tx, INSERT_EXPUNGED, [mailboxId, modseq, this.uidList(rows.map((r) => num(r.uid)))]);
    const freed = rows.reduce((sum, r) => sum + num(r.size), 0);
    await this.query(tx, 'update users set used_bytes = used_bytes - ? where id = ?', [freed, userId]);
    await this.releaseBlobs(tx, rows.map((r) => r.blob_hash));
    await this.recordChange(tx, userId, mailboxId, 'expunge', changes);
    return rows.map((r) => num(r.uid));
  }

  async expungedSince(mailboxId: number, modseq: number): Promise<number[]> {
    const rows = await this.read(() => this.query<{ uid: number | string }>(this.db, 'select uid from expunged where mailbox_id = ? and modseq > ? order by uid', [mailboxId, modseq]));
    return rows.map((r) => num(r.uid));
  }

  async copy(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<{ map: [number, number][]; uidvalidity: number }> {
    return this.write((tx, changes) => this.copyIn(tx, fromMailboxId, uids, toMailboxId, changes));
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
    await this.recordChange(tx, userId, toMailboxId, 'append', changes);
    return { map, uidvalidity };
  }

  async move(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<{ map: [number, number][]; uidvalidity: number }> {
    return this.write(async (tx, changes) => {
      const result = await this.copyIn(tx, fromMailboxId, uids, toMailboxId, changes);
      await this.expungeIn(tx, fromMailboxId, result.map.map(([from]) => from), false, changes);
      return result;
    });
  }

  // ---- outbound queue ------------------------------------------------------

  private outboundQuery() {
    return this.db.selectFrom('outbound').innerJoin('blobs', 'blobs.hash', 'outbound.blob_hash').selectAll('outbound').select('blobs.size as size');
  }

  async listOutbound(): Promise<OutboundEntry[]> {
    const rows = await this.read(() => this.outboundQuery().orderBy('outbound.id').execute());
    return rows.map(toOutbound);
  }

  async getOutbound(id: number): Promise<OutboundEntry | undefined> {
    const row = await this.read(() => this.outboundQuery().where('outbound.id', '=', id).executeTakeFirst());
    return row && toOutbound(row);
  }

  async deleteOutbound(id: number): Promise<boolean> {
    return this.write(async (tx) => {
      const row = await tx.selectFrom('outbound').select('blob_hash').where('id', '=', id).executeTakeFirst();
      if (!row) return false;
      await tx.deleteFrom('outbound').where('id', '=', id).execute();
      await this.releaseBlobs(tx, [row.blob_hash]);
      return true;
    });
  }

  async setOutboundStatus(id: number, status: 'queued' | 'held'): Promise<boolean> {
    return this.write(async (tx) => {
      const values = status === 'queued' ? { status, next_attempt_at: Date.now() } : { status };
      const result = await tx.updateTable('outbound').set(values).where('id', '=', id).executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    });
  }

  async leaseOutbound(owner: string, leaseMs: number, limit: number): Promise<OutboundEntry[]> {
    const now = Date.now();
    const ids = await this.write(async (tx) => {
      const due = await tx
        .selectFrom('outbound')
        .select('id')
        .where('status', '=', 'queued')
        .where('next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
        .orderBy('next_attempt_at')
        .limit(limit)
        .execute();
      const claimed: number[] = [];
      for (const { id } of due) {
        // The lease condition is checked again by the UPDATE itself, so two workers racing
        // for one entry cannot both win it (on PostgreSQL the row lock serialises them).
        const result = await tx
          .updateTable('outbound')
          .set({ lease_owner: owner, lease_until: now + leaseMs })
          .where('id', '=', id)
          .where('status', '=', 'queued')
          .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) === 1) claimed.push(num(id));
      }
      return claimed;
    });
    if (ids.length === 0) return [];
    const rows = await this.read(() => this.outboundQuery().where('outbound.id', 'in', ids).orderBy('outbound.id').execute());
    return rows.map(toOutbound);
  }

  private finishing: { id: number; owner: string; resolve: (done: boolean) => void; reject: (error: unknown) => void }[] = [];

  /** Finishes that arrive together share one commit (as deliveries do): one fsync for many sends. */
  finishOutbound(id: number, owner: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.finishing.push({ id, owner, resolve, reject });
      if (this.finishing.length === 1) setImmediate(() => void this.flushFinishes());
    });
  }

  private async flushFinishes(): Promise<void> {
    const batch = this.finishing;
    this.finishing = [];
    try {
      const results = await this.write(async (tx) => {
        const out: boolean[] = [];
        for (const { id, owner } of batch) {
          const row = await tx.selectFrom('outbound').select('blob_hash').where('id', '=', id).where('lease_owner', '=', owner).executeTakeFirst();
          if (!row) {
            out.push(false);
            continue;
          }
          await tx.deleteFrom('outbound').where('id', '=', id).execute();
          await this.releaseBlobs(tx, [row.blob_hash]);
          out.push(true);
        }
        return out;
      });
      batch.forEach((item, i) => item.resolve(results[i]!));
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
  }

  async deferOutbound(id: number, owner: string, error: string, nextAttemptAt: Date, warned?: boolean): Promise<boolean> {
    return this.write(async (tx) => {
      const values = {
        attempts: sql<number>`attempts + 1`,
        last_error: error.slice(0, 1000),
        next_attempt_at: nextAttemptAt.getTime(),
        lease_owner: null,
        lease_until: null,
        ...(warned ? { warned: 1 } : {}),
      };
      const result = await tx.updateTable('outbound').set(values).where('id', '=', id).where('lease_owner', '=', owner).executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    });
  }

  async postponeOutbound(id: number, owner: string, until: Date): Promise<boolean> {
    return this.write(async (tx) => {
      const values = { next_attempt_at: until.getTime(), lease_owner: null, lease_until: null };
      const result = await tx.updateTable('outbound').set(values).where('id', '=', id).where('lease_owner', '=', owner).executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    });
  }

  // ---- DKIM keys -------------------------------------------------------------

  async setDkimKey(domain: string, selector: string, privateKeyPem: string): Promise<void> {
    const values = { selector, private_key: privateKeyPem, created_at: Date.now() };
    await this.write(async (tx) => {
      await tx
        .insertInto('dkim_keys')
        .values({ domain: domain.toLowerCase(), ...values })
        .onConflict((oc) => oc.column('domain').doUpdateSet(values))
        .execute();
    });
  }

  async getDkimKey(domain: string): Promise<{ selector: string; privateKeyPem: string } | undefined> {
    const row = await this.read(() => this.db.selectFrom('dkim_keys').selectAll().where('domain', '=', domain.toLowerCase()).executeTakeFirst());
    return row && { selector: row.selector, privateKeyPem: row.private_key };
  }

  // ---- membership ----------------------------------------------------------

  async heartbeat(member: Omit<Member, 'requestedState' | 'beatAt'>): Promise<MemberRequest | null> {
    const values = {
      kind: member.kind,
      state: member.state,
      version: member.version,
      addresses: JSON.stringify(member.addresses),
      load: JSON.stringify(member.load),
      started_at: member.startedAt.getTime(),
      beat_at: Date.now(),
    };
    return this.write(async (tx) => {
      const row = await tx
        .insertInto('members')
        .values({ id: member.id, requested_state: null, ...values })
        .onConflict((oc) => oc.column('id').doUpdateSet(values))
        .returning('requested_state')
        .executeTakeFirstOrThrow();
      return row.requested_state as MemberRequest | null;
    });
  }

  async listMembers(): Promise<Member[]> {
    const rows = await this.read(() => this.db.selectFrom('members').selectAll().orderBy('kind').orderBy('id').execute());
    return rows.map((row) => ({
      id: row.id,
      kind: row.kind as Member['kind'],
      state: row.state as MemberState,
      requestedState: row.requested_state as MemberRequest | null,
      version: row.version,
      addresses: JSON.parse(row.addresses) as Record<string, string>,
      load: JSON.parse(row.load) as LoadFigures,
      startedAt: new Date(num(row.started_at)),
      beatAt: new Date(num(row.beat_at)),
    }));
  }

  async requestMemberState(id: string, state: MemberRequest | null): Promise<boolean> {
    return this.write(async (tx) => {
      const result = await tx.updateTable('members').set({ requested_state: state }).where('id', '=', id).executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    });
  }

  async removeMember(id: string): Promise<void> {
    await this.write(async (tx) => {
      await tx.deleteFrom('members').where('id', '=', id).execute();
    });
  }

  // ---- web sessions ----------------------------------------------------------

  async createSession(session: Omit<WebSession, 'createdAt'>): Promise<void> {
    const now = Date.now();
    await this.write(async (tx) => {
      // The user's expired sessions go as a new one comes: the table stays small without a sweeper.
      await tx.deleteFrom('web_sessions').where('user_id', '=', session.userId).where('expires_at', '<=', now).execute();
      await tx
        .insertInto('web_sessions')
        .values({ id_hash: session.idHash, user_id: session.userId, csrf_token: session.csrfToken, created_at: now, expires_at: session.expiresAt.getTime() })
        .execute();
    });
  }

  async getSession(idHash: string): Promise<WebSession | undefined> {
    const row = await this.read(() =>
      this.db.selectFrom('web_sessions').selectAll().where('id_hash', '=', idHash).where('expires_at', '>', Date.now()).executeTakeFirst(),
    );
    return (
      row && {
        idHash: row.id_hash,
        userId: num(row.user_id),
        csrfToken: row.csrf_token,
        createdAt: new Date(num(row.created_at)),
        expiresAt: new Date(num(row.expires_at)),
      }
    );
  }

  async deleteSession(idHash: string): Promise<void> {
    await this.write(async (tx) => {
      await tx.deleteFrom('web_sessions').where('id_hash', '=', idHash).execute();
    });
  }

  async deleteUserSessions(userId: number, keepIdHash?: string): Promise<void> {
    await this.write(async (tx) => {
      let query = tx.deleteFrom('web_sessions').where('user_id', '=', userId);
      if (keepIdHash !== undefined) query = query.where('id_hash', '!=', keepIdHash);
      await query.execute();
    });
  }

  // ---- audit log -------------------------------------------------------------

  async addAudit(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<AuditEntry> {
    const at = Date.now();
    const detail = entry.detail === null ? null : JSON.stringify(entry.detail);
    const id = await this.write(async (tx) => {
      const row = await tx
        .insertInto('audit_log')
        .values({ at, actor: entry.actor, action: entry.action, target: entry.target, detail, node: entry.node })
        .returning('id')
        .executeTakeFirstOrThrow();
      return num(row.id);
    });
    return { ...entry, id, at: new Date(at) };
  }

  async listAudit(query: { limit: number; before?: number }): Promise<AuditEntry[]> {
    const rows = await this.read(() => {
      let q = this.db.selectFrom('audit_log').selectAll().orderBy('id', 'desc').limit(query.limit);
      if (query.before !== undefined) q = q.where('id', '<', query.before);
      return q.execute();
    });
    return rows.map(toAudit);
  }

  abstract status(): Promise<StoreStatus>;

  // ---- drive -----------------------------------------------------------------

  /** The root folder's parent_id; the API and the Store interface say null. */
  private static readonly ROOT = 0;

  private driveNode(row: Selectable<DriveNodeTable>): DriveNode {
    return {
      id: num(row.id),
      userId: num(row.user_id),
      parentId: num(row.parent_id) === KyselyStore.ROOT ? null : num(row.parent_id),
      name: row.name,
      kind: row.kind as DriveNode['kind'],
      size: num(row.size),
      contentType: row.content_type,
      contentId: row.content_id === null ? null : num(row.content_id),
      createdAt: new Date(num(row.created_at)),
      updatedAt: new Date(num(row.updated_at)),
    };
  }

  private driveUpload(row: Selectable<DriveUploadTable>): DriveUpload {
    return {
      id: row.id,
      userId: num(row.user_id),
      parentId: num(row.parent_id) === KyselyStore.ROOT ? null : num(row.parent_id),
      name: row.name,
      contentType: row.content_type,
      size: num(row.size),
      received: num(row.received),
      expiresAt: new Date(num(row.expires_at)),
    };
  }

  private checkDriveName(name: string): void {
    const problem = driveNameProblem(name);
    if (problem) throw new StoreError('invalid', problem);
  }

  /** The parent_id of a folder of the user (the root when null); 'not-found' otherwise. */
  private async driveFolder(tx: Tx, userId: number, folderId: number | null): Promise<number> {
    if (folderId === null || folderId === KyselyStore.ROOT) return KyselyStore.ROOT;
    const row = await tx.selectFrom('drive_nodes').select('kind').where('id', '=', folderId).where('user_id', '=', userId).executeTakeFirst();
    if (!row || row.kind !== 'folder') throw new StoreError('not-found', 'no such folder');
    return folderId;
  }

  private async driveNameFree(tx: Tx, userId: number, parentId: number, name: string, exceptId?: number): Promise<void> {
    let query = tx.selectFrom('drive_nodes').select('id').where('user_id', '=', userId).where('parent_id', '=', parentId).where('name', '=', name);
    if (exceptId !== undefined) query = query.where('id', '!=', exceptId);
    if (await query.executeTakeFirst()) throw new StoreError('conflict', `${name} already exists in that folder`);
  }

  /**
   * The name itself when free, else "name (2).ext", "name (3).ext", ...: for an upload whose
   * name was taken while it was under way (two uploads of one file).
   */
  private async freeDriveName(tx: Tx, userId: number, parentId: number, name: string): Promise<string> {
    const dot = name.lastIndexOf('.');
    const [base, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
    for (let n = 1; n < 100; n++) {
      const candidate = n === 1 ? name : `${base} (${n})${ext}`;
      if (driveNameProblem(candidate)) break;
      const taken = await tx.selectFrom('drive_nodes').select('id').where('user_id', '=', userId).where('parent_id', '=', parentId).where('name', '=', candidate).executeTakeFirst();
      if (!taken) return candidate;
    }
    throw new StoreError('conflict', `${name} already exists in that folder`);
  }

  /** Charges bytes to a user in one conditional UPDATE, so concurrent writers cannot overshoot the quota. */
  private async chargeDrive(tx: Tx, userId: number, bytes: number): Promise<void> {
    if (bytes <= 0) return;
    const result = await tx
      .updateTable('users')
      .set({ used_bytes: sql`used_bytes + ${bytes}` })
      .where('id', '=', userId)
      .where((eb) => eb.or([eb('quota_bytes', '=', 0), eb(sql<number>`used_bytes + ${bytes}`, '<=', eb.ref('quota_bytes'))]))
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) throw new StoreError('quota', 'quota exceeded: the drive and mail together are full');
  }

  private async releaseDrive(tx: Tx, userId: number, bytes: number): Promise<void> {
    if (bytes > 0) await tx.updateTable('users').set({ used_bytes: sql`used_bytes - ${bytes}` }).where('id', '=', userId).execute();
  }

  private async nextContentId(tx: Tx): Promise<number> {
    const row = await tx
      .insertInto('meta')
      .values({ key: 'drive_content', value: '1' })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value: sql`cast(cast(meta.value as bigint) + 1 as text)` }))
      .returning('value')
      .executeTakeFirstOrThrow();
    return Number(row.value);
  }

  private async dropChunks(tx: Tx, contentIds: number[]): Promise<void> {
    for (let i = 0; i < contentIds.length; i += 500) {
      await tx.deleteFrom('drive_chunks').where('content_id', 'in', contentIds.slice(i, i + 500)).execute();
    }
  }

  /** Removes an unfinished upload and its chunks, and gives its bytes back. */
  private async dropUpload(tx: Tx, row: Selectable<DriveUploadTable>): Promise<void> {
    await this.dropChunks(tx, [num(row.content_id)]);
    await tx.deleteFrom('drive_uploads').where('id', '=', row.id).execute();
    await this.releaseDrive(tx, num(row.user_id), num(row.received));
  }

  async listDrive(userId: number, parentId: number | null): Promise<DriveNode[]> {
    const rows = await this.read(async () => {
      const folder = await this.driveFolder(this.db, userId, parentId);
      return this.db.selectFrom('drive_nodes').selectAll().where('user_id', '=', userId).where('parent_id', '=', folder).orderBy('kind', 'desc').orderBy('name').execute();
    });
    return rows.map((row) => this.driveNode(row));
  }

  async getDriveNode(userId: number, id: number): Promise<DriveNode | undefined> {
    const row = await this.read(() => this.db.selectFrom('drive_nodes').selectAll().where('id', '=', id).where('user_id', '=', userId).executeTakeFirst());
    return row && this.driveNode(row);
  }

  async createDriveFolder(userId: number, parentId: number | null, name: string): Promise<DriveNode> {
    this.checkDriveName(name);
    const row = await this.write(async (tx) => {
      const parent = await this.driveFolder(tx, userId, parentId);
      await this.driveNameFree(tx, userId, parent, name);
      const now = Date.now();
      return tx
        .insertInto('drive_nodes')
        .values({ user_id: userId, parent_id: parent, name, kind: 'folder', size: 0, content_type: null, content_id: null, created_at: now, updated_at: now })
        .returningAll()
        .executeTakeFirstOrThrow();
    });
    return this.driveNode(row);
  }

  async updateDriveNode(userId: number, id: number, change: { name?: string; parentId?: number | null }): Promise<DriveNode> {
    if (change.name !== undefined) this.checkDriveName(change.name);
    const row = await this.write(async (tx) => {
      const node = await tx.selectFrom('drive_nodes').selectAll().where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
      if (!node) throw new StoreError('not-found', 'no such file or folder');
      const parent = change.parentId === undefined ? num(node.parent_id) : await this.driveFolder(tx, userId, change.parentId);
      if (node.kind === 'folder') {
        // Walk up from the new parent: meeting the node itself would make a cycle.
        for (let at = parent; at !== KyselyStore.ROOT; ) {
          if (at === id) throw new StoreError('invalid', 'a folder cannot move into itself');
          const up = await tx.selectFrom('drive_nodes').select('parent_id').where('id', '=', at).executeTakeFirstOrThrow();
          at = num(up.parent_id);
        }
      }
      const name = change.name ?? node.name;
      await this.driveNameFree(tx, userId, parent, name, id);
      return tx.updateTable('drive_nodes').set({ name, parent_id: parent, updated_at: Date.now() }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
    });
    return this.driveNode(row);
  }

  async deleteDriveNode(userId: number, id: number): Promise<number> {
    return this.write(async (tx) => {
      const node = await tx.selectFrom('drive_nodes').select(['id', 'kind', 'size', 'content_id']).where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
      if (!node) throw new StoreError('not-found', 'no such file or folder');
      const ids: number[] = [num(node.id)];
      const contentIds: number[] = node.content_id === null ? [] : [num(node.content_id)];
      let freed = num(node.size);
      // Breadth first through the folder's subtree.
      for (let level = node.kind === 'folder' ? [num(node.id)] : []; level.length > 0; ) {
        const next: number[] = [];
        for (let i = 0; i < level.length; i += 500) {
          const children = await tx.selectFrom('drive_nodes').select(['id', 'kind', 'size', 'content_id']).where('user_id', '=', userId).where('parent_id', 'in', level.slice(i, i + 500)).execute();
          for (const child of children) {
            ids.push(num(child.id));
            if (child.kind === 'folder') next.push(num(child.id));
            if (child.content_id !== null) contentIds.push(num(child.content_id));
            freed += num(child.size);
          }
        }
        level = next;
      }
      await this.dropChunks(tx, contentIds);
      for (let i = 0; i < ids.length; i += 500) await tx.deleteFrom('drive_nodes').where('id', 'in', ids.slice(i, i + 500)).execute();
      await this.releaseDrive(tx, userId, freed);
      return freed;
    });
  }

  async createDriveUpload(userId: number, input: { parentId: number | null; name: string; size: number; contentType?: string | null; ttlMs?: number }): Promise<DriveUpload> {
    this.checkDriveName(input.name);
    if (!Number.isSafeInteger(input.size) || input.size < 0) throw new StoreError('invalid', 'size must be a whole number of bytes');
    const ttlMs = input.ttlMs ?? DRIVE_UPLOAD_TTL_MS;
    const row = await this.write(async (tx) => {
      const now = Date.now();
      // Abandoned uploads go as new ones start, the user's own first (their bytes count against
      // the quota), then a few of anyone's, so no sweeper is needed.
      const expired = [
        ...(await tx.selectFrom('drive_uploads').selectAll().where('user_id', '=', userId).where('expires_at', '<=', now).execute()),
        ...(await tx.selectFrom('drive_uploads').selectAll().where('user_id', '!=', userId).where('expires_at', '<=', now).limit(10).execute()),
      ];
      for (const old of expired) await this.dropUpload(tx, old);
      const parent = await this.driveFolder(tx, userId, input.parentId);
      await this.driveNameFree(tx, userId, parent, input.name);
      const user = await tx.selectFrom('users').select(['quota_bytes', 'used_bytes']).where('id', '=', userId).executeTakeFirst();
      if (!user) throw new StoreError('not-found', 'no such user');
      const quota = num(user.quota_bytes);
      const used = num(user.used_bytes);
      if (quota > 0 && used + input.size > quota) {
        throw new StoreError('quota', `quota exceeded: the file needs ${input.size} bytes, ${Math.max(0, quota - used)} of ${quota} are free`);
      }
      return tx
        .insertInto('drive_uploads')
        .values({
          id: randomUUID(),
          user_id: userId,
          parent_id: parent,
          name: input.name,
          content_type: input.contentType ?? null,
          content_id: await this.nextContentId(tx),
          size: input.size,
          received: 0,
          next_seq: 0,
          created_at: now,
          expires_at: now + ttlMs,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    });
    return this.driveUpload(row);
  }

  async getDriveUpload(userId: number, id: string): Promise<DriveUpload | undefined> {
    const row = await this.read(() =>
      this.db.selectFrom('drive_uploads').selectAll().where('id', '=', id).where('user_id', '=', userId).where('expires_at', '>', Date.now()).executeTakeFirst(),
    );
    return row && this.driveUpload(row);
  }

  async appendDriveUpload(userId: number, id: string, offset: number, data: Buffer): Promise<{ upload: DriveUpload; file: DriveNode | null }> {
    return this.write(async (tx) => {
      const now = Date.now();
      const row = await tx.selectFrom('drive_uploads').selectAll().where('id', '=', id).where('user_id', '=', userId).where('expires_at', '>', now).executeTakeFirst();
      if (!row) throw new StoreError('not-found', 'no such upload (finished, cancelled or expired)');
      const received = num(row.received);
      const size = num(row.size);
      if (offset !== received) throw new StoreError('conflict', `the upload continues at byte ${received}, not ${offset}`);
      if (received + data.length > size) throw new StoreError('invalid', `the upload is ${size} bytes; this chunk would end at ${received + data.length}`);
      const contentId = num(row.content_id);
      const seq = num(row.next_seq);
      if (data.length > 0) {
        await this.chargeDrive(tx, userId, data.length);
        await tx.insertInto('drive_chunks').values({ content_id: contentId, seq, user_id: userId, start: received, size: data.length, data }).execute();
      }
      const upload = { ...row, received: received + data.length, next_seq: seq + (data.length > 0 ? 1 : 0), expires_at: now + (num(row.expires_at) - num(row.created_at)) };
      if (upload.received < size) {
        await tx.updateTable('drive_uploads').set({ received: upload.received, next_seq: upload.next_seq, expires_at: upload.expires_at }).where('id', '=', id).execute();
        return { upload: this.driveUpload(upload), file: null };
      }
      // The last chunk: the file appears in the same commit, or not at all.
      const parent = await this.driveFolder(tx, userId, num(row.parent_id));
      const name = await this.freeDriveName(tx, userId, parent, row.name);
      await tx.deleteFrom('drive_uploads').where('id', '=', id).execute();
      const file = await tx
        .insertInto('drive_nodes')
        .values({ user_id: userId, parent_id: parent, name, kind: 'file', size, content_type: row.content_type, content_id: contentId, created_at: now, updated_at: now })
        .returningAll()
        .executeTakeFirstOrThrow();
      return { upload: this.driveUpload(upload), file: this.driveNode(file) };
    });
  }

  async cancelDriveUpload(userId: number, id: string): Promise<void> {
    await this.write(async (tx) => {
      const row = await tx.selectFrom('drive_uploads').selectAll().where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
      if (!row) throw new StoreError('not-found', 'no such upload');
      await this.dropUpload(tx, row);
    });
  }

  async *readDriveFile(userId: number, fileId: number, range?: { start: number; end: number }): AsyncGenerator<Buffer> {
    const node = await this.getDriveNode(userId, fileId);
    if (!node || node.kind !== 'file' || node.contentId === null) throw new StoreError('not-found', 'no such file');
    const contentId = node.contentId;
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? node.size - 1, node.size - 1);
    if (start > end) return;
    // The index first (small: a row per MiB), then each chunk's bytes as the reader wants them.
    const index = await this.read(() => this.db.selectFrom('drive_chunks').select(['seq', 'start', 'size']).where('content_id', '=', contentId).orderBy('seq').execute());
    for (const chunk of index) {
      const from = num(chunk.start);
      const to = from + num(chunk.size) - 1;
      if (to < start) continue;
      if (from > end) break;
      const row = await this.read(() => this.db.selectFrom('drive_chunks').select('data').where('content_id', '=', contentId).where('seq', '=', chunk.seq).executeTakeFirst());
      if (!row) throw new StoreError('not-found', 'the file was deleted while being read');
      const data = Buffer.isBuffer(row.data) ? row.data : Buffer.from(row.data);
      yield data.subarray(Math.max(start, from) - from, Math.min(end, to) - from + 1);
    }
  }
}
