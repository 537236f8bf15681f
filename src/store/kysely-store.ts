// The Store implemented once over Kysely; the SQLite and PostgreSQL backends differ only
// in how they connect, how they are told of changes made by other processes, and pragmas.
// This file is the engine the roles share (transactions, group commit, durability, the change
// feed); each role's statements are in kysely/<role>.ts, composed into the store below.
import { CompiledQuery, sql, type Kysely, type Transaction } from 'kysely';
import { BLOBS_METHODS } from './roles/blobs.js';
import { CLUSTER_METHODS } from './roles/cluster.js';
import { DIRECTORY_METHODS } from './roles/directory.js';
import { DRIVE_METHODS } from './roles/drive.js';
import { MAILSTORE_METHODS } from './roles/mailstore.js';
import { QUEUE_METHODS } from './roles/queue.js';
import { WEB_STATE_METHODS } from './roles/web-state.js';
import type { Database } from './schema.js';
import { TextIndexer, type TextIndexerOptions } from './text-indexer.js';
import { StoreError, type Blobs, type ChangeEvent, type ChangeKind, type ChangeListener, type Cluster, type Directory, type Drive, type MailboxDelta, type Mailstore, type Queue, type Store, type StoreStatus, type WebState } from './types.js';
import { KyselyBlobs } from './kysely/blobs.js';
import { KyselyCluster } from './kysely/cluster.js';
import { AmbiguousCommitError, chunks, expose, num, type CommitOutcome, type KyselyContext, type SqlText, type Tx, type WriteFn } from './kysely/context.js';
import type { Deliveries } from './kysely/deliver.js';
import { KyselyDirectory } from './kysely/directory.js';
import { KyselyDrive } from './kysely/drive.js';
import { KyselyMailstore } from './kysely/mailstore.js';
import { KyselyQueue } from './kysely/queue.js';
import { KyselyWebState } from './kysely/web-state.js';

export { COMMIT_MARKER_PREFIX, canonicalMailboxName, deleteOrphanMetas, hashBytes, normalizeFlags, type CommitOutcome, type SqlText } from './kysely/context.js';

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

/** Wraps driver errors so protocol code can answer with a temporary failure. */
function unavailable(error: unknown): never {
  if (error instanceof StoreError) throw error;
  const message = error instanceof Error ? error.message : String(error);
  if (/UNIQUE|duplicate key/i.test(message)) throw new StoreError('conflict', message, { cause: error });
  throw new StoreError('unavailable', `store error: ${message}`, { cause: error });
}

/** The role methods a KyselyStore has from its role objects (see the constructor). */
export interface KyselyStore extends Directory, Omit<Mailstore, 'onChange' | 'syncChanges'>, Blobs, Queue, Cluster, WebState, Drive {}

export abstract class KyselyStore implements Store {
  abstract readonly kind: 'sqlite' | 'postgres';
  private listeners = new Set<ChangeListener>();
  /** Adds the words of stored blobs after their commit (text-indexer.ts). */
  private readonly textIndexer: TextIndexer;
  private readonly deliveries: Deliveries;

  constructor(protected readonly db: Kysely<Database>) {
    // kind is a field of the subclass, not set yet here.
    this.textIndexer = new TextIndexer({ db, dialect: () => this.kind, write: (fn) => this.write(fn) });
    const ctx = this.context();
    const mailstore = new KyselyMailstore(ctx);
    this.deliveries = mailstore.deliveries;
    expose(this, new KyselyDirectory(ctx), DIRECTORY_METHODS);
    expose(this, mailstore, MAILSTORE_METHODS);
    expose(this, new KyselyBlobs(ctx), BLOBS_METHODS);
    expose(this, new KyselyQueue(ctx), QUEUE_METHODS);
    expose(this, new KyselyCluster(ctx), CLUSTER_METHODS);
    expose(this, new KyselyWebState(ctx), WEB_STATE_METHODS);
    expose(this, new KyselyDrive(ctx), DRIVE_METHODS);
  }

  /** The engine as the role objects see it: calls go through this store, so subclasses' overrides apply. */
  private context(): KyselyContext {
    const store = this;
    return {
      db: this.db,
      get kind() {
        return store.kind;
      },
      get ambiguousCommit() {
        return store.ambiguousCommit;
      },
      read: (fn) => this.read(fn),
      write: (fn, rows, durable) => this.write(fn, rows, durable),
      lazyWrite: (fn, rows) => this.lazyWrite(fn, rows),
      query: (db, text, params) => this.query(db, text, params),
      uidList: (values) => this.uidList(values),
      recordChange: (tx, userId, mailboxId, kind, out, delta) => this.recordChange(tx, userId, mailboxId, kind, out, delta),
      queueText: (tx, hashes) => this.queueText(tx, hashes),
      catchUpText: (mailboxId) => this.textIndexer.catchUp(mailboxId),
      transact: (fn) => this.transact(fn),
      whenDurable: (changes, ok, failed) => this.whenDurable(changes, ok, failed),
      commitOutcome: (marker) => this.commitOutcome(marker),
      changeNotice: () => this.changeNotice(),
      announced: (event) => void this.announced.add(event),
    };
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
  private async transact<T>(fn: WriteFn<T>): Promise<{ result: T; changes: ChangeEvent[] }> {
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

  private async recordChange(tx: Tx, userId: number, mailboxId: number | null, kind: ChangeKind, out: ChangeEvent[], delta?: MailboxDelta): Promise<void> {
    const [row] = await this.query<{ id: number | string }>(tx, 'insert into changes (user_id, mailbox_id, kind, created_at) values (?, ?, ?, ?) returning id', [
      userId,
      mailboxId,
      kind,
      Date.now(),
    ]);
    out.push(delta ? { id: num(row!.id), userId, mailboxId, kind, delta } : { id: num(row!.id), userId, mailboxId, kind });
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
  protected async write<T>(fn: WriteFn<T>, rows = 1, durable = true): Promise<T> {
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
  protected lazyWrite<T>(fn: WriteFn<T>, rows = 1): Promise<T> {
    return this.write(fn, rows, this.fsyncFlagChanges);
  }

  private async writeAlone<T>(fn: WriteFn<T>, durable: boolean): Promise<T> {
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
    await this.deliveries.flushing;
    await this.db.destroy();
  }

  abstract status(): Promise<StoreStatus>;
}
