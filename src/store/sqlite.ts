// Embedded default store: one SQLite file in WAL mode. A commit is on disk before anything is
// answered (SMTP's 250, IMAP's OK): SQLite's synchronous=FULL is that and an fsync of the WAL
// after every COMMIT, which would block the event loop ~10 ms per commit. So the connection runs
// synchronous=NORMAL (WAL fsynced at checkpoints, as FULL does) and the per-commit fsync of the
// WAL is done here, on libuv's thread pool, one fsync for all commits made while the previous
// one ran; writes are settled only after it (KyselyStore.durable). Flag changes, expunges and
// \Recent claims are answered right after COMMIT unless store.fsyncFlagChanges (KyselyStore.lazyWrite),
// and are on disk within LAZY_FSYNC_MS. Several processes (server, CLI, other nodes) may share the file.
import { close as closeFd, fsync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { CompiledQuery, Kysely, Migrator, SqliteDialect, SqliteDriver, type DatabaseConnection, type SqliteDialectConfig } from 'kysely';
import { KyselyStore, type SqlText } from './kysely-store.js';
import { migrations } from './migrations.js';
import type { Database } from './schema.js';
import { sqliteStatus } from './store-status.js';
import { StoreError, type ChangeEvent, type ChangeKind, type ChangeListener, type StoreStatus } from './types.js';

/** Retries of a BEGIN refused while another process writes that yield to I/O only, before waiting a timer's tick. */
const BEGIN_YIELDS = 20;

/**
 * BEGIN IMMEDIATE takes the write lock up front, so a busy database waits instead of failing
 * mid-transaction. The wait is not SQLite's busy handler: it sleeps in the calling thread (1, 2,
 * 5, 10 ms...) with the event loop stopped, every session of the process stalled behind another
 * process's transaction of a fraction of a millisecond (IMAP child processes, the CLI). Here the
 * BEGIN is tried without waiting, and retried after the event loop has run, up to busyTimeoutMs.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  private readonly noWait: BetterSqlite3.Statement;
  private readonly wait: BetterSqlite3.Statement;

  constructor(
    settings: SqliteDialectConfig,
    raw: BetterSqlite3.Database,
    private readonly busyTimeoutMs: number,
  ) {
    super(settings);
    this.noWait = raw.prepare('pragma busy_timeout = 0');
    this.wait = raw.prepare(`pragma busy_timeout = ${busyTimeoutMs}`);
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    const deadline = Date.now() + this.busyTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      this.noWait.run();
      try {
        await connection.executeQuery(BEGIN_IMMEDIATE);
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw error;
      } finally {
        this.wait.run();
      }
      await new Promise<void>((resolve) => (attempt < BEGIN_YIELDS ? setImmediate(resolve) : setTimeout(resolve, 1)));
    }
  }
}

const BEGIN_IMMEDIATE = CompiledQuery.raw('begin immediate');

class QuillSqliteDialect extends SqliteDialect {
  constructor(
    private readonly settings: SqliteDialectConfig,
    private readonly raw: BetterSqlite3.Database,
    private readonly busyTimeoutMs: number,
  ) {
    super(settings);
  }
  override createDriver() {
    return new ImmediateSqliteDriver(this.settings, this.raw, this.busyTimeoutMs);
  }
}

/** The longest a commit answered before its fsync (store.fsyncFlagChanges: false) waits for one. */
export const LAZY_FSYNC_MS = 1000;

/** Prepared statements kept for reuse: most queries repeat with other parameters. */
const STATEMENT_CACHE = 256;

/**
 * The connection as Kysely sees it, preparing each distinct SQL text once (kept least recently
 * used): preparing costs as much as running a small query. Kysely runs one query at a time on the
 * connection, so a cached statement is never in use twice.
 */
function cachingDatabase(raw: BetterSqlite3.Database): SqliteDialectConfig['database'] {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => raw.close(),
    prepare(sql: string) {
      let statement = cache.get(sql);
      if (statement) cache.delete(sql);
      else statement = raw.prepare(sql);
      cache.set(sql, statement);
      if (cache.size > STATEMENT_CACHE) cache.delete(cache.keys().next().value!);
      return statement;
    },
  } as SqliteDialectConfig['database'];
}

export interface SqliteOptions {
  /** Refuse writes past this size (SQLITE_FULL): an operator's cap, also how tests simulate a full disk. */
  maxDatabaseBytes?: number;
  /** How often other processes' changes are picked up for IDLE (ms). */
  pollIntervalMs?: number;
  busyTimeoutMs?: number;
  /** store.fsyncFlagChanges: flag changes, expunges and \Recent claims wait for the WAL fsync too (default false). */
  fsyncFlagChanges?: boolean;
  /** How long the process must have stored nothing before the full-text indexer runs (ms; text-indexer.ts). */
  textIndexIdleMs?: number;
  /** Whether this process runs the full-text indexer (default true; an IMAP child process leaves it to the server process). */
  textIndexer?: boolean;
}

export class SqliteStore extends KyselyStore {
  readonly kind = 'sqlite' as const;
  /** Writes waiting on the one connection share a commit (and its fsync). */
  protected override readonly coalesceWrites = true;
  private pollTimer: NodeJS.Timeout | undefined;
  private lastChangeId = 0;
  private readonly ownChanges = new Set<number>();
  private readonly pollIntervalMs: number;
  private subscribers = 0;
  /** Prepared statements of query(), by SQL text (a fixed set of texts). */
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  private dataVersionStatement: BetterSqlite3.Statement | undefined;
  /** The poll's query, kept: IMAP child processes poll at every word of another's change. */
  private pollStatement: BetterSqlite3.Statement | undefined;
  /** PRAGMA data_version when the change rows were last read: it moves when another connection commits. */
  private dataVersion = -1;
  /** The WAL file, opened for fsync; committed frames are written to it by COMMIT. */
  private walFd: number | undefined;
  private syncing: Promise<void> | undefined;
  private nextSync: Promise<void> | undefined;
  /** An fsync due for commits answered before theirs (laterDurable). */
  private lazySync: NodeJS.Timeout | undefined;

  private constructor(
    db: Kysely<Database>,
    readonly file: string,
    private readonly raw: BetterSqlite3.Database,
    options: SqliteOptions,
  ) {
    super(db);
    this.pollIntervalMs = options.pollIntervalMs ?? 100;
    this.fsyncFlagChanges = options.fsyncFlagChanges ?? false;
  }

  /** Opens (creating if needed) the store in a data directory and applies migrations. */
  static async open(dataDir: string, options: SqliteOptions = {}): Promise<SqliteStore> {
    mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, 'quill.db');
    const busyTimeoutMs = options.busyTimeoutMs ?? 10_000;
    let raw: BetterSqlite3.Database;
    try {
      raw = new BetterSqlite3(file, { timeout: busyTimeoutMs });
      raw.pragma('journal_mode = WAL');
      raw.pragma('synchronous = FULL');
      raw.pragma('foreign_keys = ON');
      // A checkpoint runs inside a COMMIT, on the event loop, with two fsyncs: at SQLite's default of
      // 1000 WAL pages, IMAP flag changes made one every ~0.3 s of ~13 ms (the same few pages written
      // over and over). At 10000 pages (a WAL of up to ~40 MB) there are a tenth as many, each not
      // much longer: ~4x less time blocked in them under imaptest.
      raw.pragma('wal_autocheckpoint = 10000');
      if (options.maxDatabaseBytes) {
        const pageSize = Number(raw.pragma('page_size', { simple: true }));
        raw.pragma(`max_page_count = ${Math.max(1, Math.floor(options.maxDatabaseBytes / pageSize))}`);
      }
    } catch (error) {
      throw new StoreError('unavailable', `cannot open store ${file}: ${(error as Error).message}`, { cause: error });
    }
    const db = new Kysely<Database>({ dialect: new QuillSqliteDialect({ database: cachingDatabase(raw) }, raw, busyTimeoutMs) });
    const store = new SqliteStore(db, file, raw, options);
    await store.migrate();
    store.lastChangeId = await store.maxChangeId();
    try {
      // From here every write goes through KyselyStore.write, which waits for durable().
      store.walFd = openSync(`${file}-wal`, 'r');
      raw.pragma('synchronous = NORMAL');
    } catch {
      // No WAL file to sync (a read-only or odd file system): COMMIT stays synchronous=FULL.
    }
    if (options.textIndexer !== false) store.startTextIndexer({ idleMs: options.textIndexIdleMs });
    return store;
  }

  private async migrate(): Promise<void> {
    const migrator = new Migrator({ db: this.db, provider: migrations('sqlite') });
    const { error } = await migrator.migrateToLatest();
    if (error) throw new StoreError('unavailable', `migration failed: ${(error as Error).message ?? error}`, { cause: error });
  }

  private async maxChangeId(): Promise<number> {
    const row = await this.db.selectFrom('changes').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst();
    return Number(row?.id ?? 0);
  }

  override onChange(listener: ChangeListener): () => void {
    const unsubscribe = super.onChange(listener);
    this.subscribers++;
    if (!this.pollTimer) {
      // One cheap query per process, not per idle client.
      this.pollTimer = setInterval(() => void this.poll(), this.pollIntervalMs);
    }
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      unsubscribe();
      if (--this.subscribers === 0 && this.pollTimer) {
        clearInterval(this.pollTimer);
        this.pollTimer = undefined;
      }
    };
  }

  /**
   * A kept prepared statement run on the connection at once, skipping Kysely. Safe inside a write
   * (its transaction holds the one connection) and outside any transaction (better-sqlite3 runs a
   * statement whole before anything else runs). A read while a transaction is open goes through
   * Kysely instead, which waits for the transaction to end: it must not see uncommitted rows.
   */
  protected override query<R>(db: Parameters<KyselyStore['query']>[0], text: SqlText, params: readonly unknown[]): Promise<R[]> {
    if (db === this.db && this.raw.inTransaction) return super.query(db, text, params);
    const sql = typeof text === 'string' ? text : text.sqlite;
    try {
      let statement = this.statements.get(sql);
      if (!statement) {
        statement = this.raw.prepare(sql);
        if (this.statements.size < STATEMENT_CACHE) this.statements.set(sql, statement);
      }
      if (statement.reader) return Promise.resolve(statement.all(...params) as R[]);
      statement.run(...params);
      return Promise.resolve([]);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private readonly ownChangeListeners = new Set<() => void>();

  /**
   * Called after this process announced change rows it wrote itself (not ones its poll found):
   * IMAP child processes pass the word to the others, which then poll at once (src/imap/processes.ts).
   */
  onOwnChanges(listener: () => void): () => void {
    this.ownChangeListeners.add(listener);
    return () => this.ownChangeListeners.delete(listener);
  }

  protected override afterCommit(events: ChangeEvent[]): void {
    super.afterCommit(events);
    if (events.length === 0) return;
    for (const listener of this.ownChangeListeners) {
      try {
        listener();
      } catch {
        // A listener's failure must not break the writer.
      }
    }
  }

  /** Own change rows are announced after the fsync: the poll must not announce them first. */
  protected override noteCommitted(events: ChangeEvent[]): void {
    for (const event of events) this.ownChanges.add(event.id);
  }

  /** An fsync of the WAL started after every COMMIT so far (one in flight at a time, the next shared). */
  protected override durable(): Promise<void> | undefined {
    const fd = this.walFd;
    if (fd === undefined) return undefined;
    if (!this.syncing) {
      this.syncing = new Promise<void>((resolve, reject) => fsync(fd, (error) => (error ? reject(error) : resolve()))).finally(() => {
        this.syncing = undefined;
      });
      return this.syncing;
    }
    // The running fsync may have started before this COMMIT: wait for the one after it.
    this.nextSync ??= this.syncing.then(
      () => this.startNext(),
      () => this.startNext(),
    );
    return this.nextSync;
  }

  /** A commit was answered before its fsync: one follows within LAZY_FSYNC_MS (sooner if a durable write comes). */
  protected override laterDurable(): void {
    if (this.walFd === undefined || this.lazySync) return;
    this.lazySync = setTimeout(() => {
      this.lazySync = undefined;
      void this.durable()?.catch(() => undefined);
    }, LAZY_FSYNC_MS);
    this.lazySync.unref();
  }

  private startNext(): Promise<void> {
    this.nextSync = undefined;
    return this.durable()!;
  }

  syncChanges(): boolean {
    if (this.subscribers === 0) return false;
    try {
      // A kept statement: pragma() prepares one per call, and this runs before every STATUS, LIST and EXPUNGE.
      this.dataVersionStatement ??= this.raw.prepare('pragma data_version').pluck();
      const version = Number(this.dataVersionStatement.get());
      if (version === this.dataVersion) return true;
      this.dataVersion = version;
    } catch {
      return false;
    }
    // poll() has no await: it reads and announces before this returns.
    void this.poll();
    return true;
  }

  private polling = false;
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      this.pollStatement ??= this.raw.prepare('select id, user_id, mailbox_id, kind from changes where id > ? order by id limit 1000');
      const rows = this.pollStatement.all(this.lastChangeId) as { id: number; user_id: number; mailbox_id: number | null; kind: string }[];
      for (const row of rows) {
        this.lastChangeId = row.id;
        if (this.ownChanges.delete(row.id)) continue;
        this.emit({ id: row.id, userId: row.user_id, mailboxId: row.mailbox_id, kind: row.kind as ChangeKind });
      }
      // Own ids below the watermark were seen already; forget them so the set stays small.
      for (const id of this.ownChanges) if (id <= this.lastChangeId) this.ownChanges.delete(id);
    } catch {
      // A busy or failing database is retried at the next tick.
    } finally {
      this.polling = false;
    }
  }

  async status(): Promise<StoreStatus> {
    return sqliteStatus(this.file);
  }

  /** Deletes change rows older than maxAgeMs; called from the server's housekeeping timer. */
  async pruneChanges(maxAgeMs = 10 * 60_000): Promise<void> {
    await this.db.deleteFrom('changes').where('created_at', '<', Date.now() - maxAgeMs).execute();
  }

  override async close(): Promise<void> {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    await super.close();
    if (this.lazySync) {
      clearTimeout(this.lazySync);
      this.lazySync = undefined;
      await this.durable()?.catch(() => undefined);
    }
    await this.nextSync?.catch(() => undefined);
    await this.syncing?.catch(() => undefined);
    if (this.walFd !== undefined) closeFd(this.walFd, () => undefined);
    this.walFd = undefined;
  }
}
