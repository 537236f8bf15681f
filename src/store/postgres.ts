// The cluster store: PostgreSQL through Kysely over node-postgres. The same KyselyStore code
// as SQLite; what differs is the connection (a pool that follows the primary of a replicated
// group), NOTIFY/LISTEN for the change feed, migrations under an advisory lock so several
// nodes may start at once, and COMMITs whose outcome can be unknown.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect, sql, type Transaction } from 'kysely';
import { COMMIT_MARKER_PREFIX, KyselyStore, type CommitOutcome } from './kysely-store.js';
import { migrations } from './migrations.js';
import { CHANGE_CHANNEL, encodeChanges, PgChangeFeed } from './pg-change-feed.js';
import { clientConfig, FailoverPool, findServer, hostKey, parsePgUrl, redactPgUrl, type PgHost, type PgUrl, type PoolSettings } from './pg-pool.js';
import type { Database } from './schema.js';
import { postgresHostsStatus } from './store-status.js';
import { StoreError, type ChangeEvent, type ChangeKind, type StoreStatus } from './types.js';

export interface PostgresOptions {
  /** Connections in this process's pool. */
  poolSize?: number;
  /** Longest a statement may run before PostgreSQL cancels it (0 = no limit). */
  statementTimeoutMs?: number;
  /** How long to wait for a connection before failing with 'unavailable'. */
  connectTimeoutMs?: number;
  /** synchronous_commit for Quillmail's sessions; the server's setting when omitted. Never 'off'. */
  synchronousCommit?: 'on' | 'remote_apply' | 'remote_write' | 'local';
  /** Apply pending migrations when opening (default true); when false, refuse a schema that is behind. */
  migrate?: boolean;
  /** Open whatever the schema's state (`quill db` commands, which report or change it). */
  anySchema?: boolean;
  /** Start the LISTEN connection for the change feed (default true). */
  listen?: boolean;
  /**
   * How long to keep asking whether a COMMIT cut off mid-way happened (a failover takes
   * seconds) before answering with a temporary error.
   */
  commitCheckMs?: number;
  /** Told of every lookup of a COMMIT whose outcome was unknown, with its result (logs, metrics). */
  onCommitCheck?: (check: CommitCheck) => void;
  /** How long the process must have stored nothing before the full-text indexer runs (ms; text-indexer.ts). */
  textIndexIdleMs?: number;
}

/** One lookup of a COMMIT cut off mid-way: what it found and how long it took. */
export interface CommitCheck {
  outcome: CommitOutcome;
  ms: number;
  /** The batch's marker row in txns, to find it in the database. */
  marker: string;
}

/** Session-level advisory lock key that serialises migrations across nodes. */
const MIGRATION_LOCK = 0x7175696c6c; // "quill"

function isRetryable(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  return code === '40P01' || code === '40001'; // deadlock_detected, serialization_failure
}

function poolSettings(options: PostgresOptions): PoolSettings {
  if ((options.synchronousCommit as string | undefined) === 'off') {
    throw new StoreError('invalid', 'synchronous_commit=off would acknowledge mail before it is durable');
  }
  return {
    max: options.poolSize ?? 10,
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    statementTimeoutMs: options.statementTimeoutMs ?? 30_000,
    synchronousCommit: options.synchronousCommit,
    applicationName: 'quillmail',
  };
}

function parseUrl(url: string): PgUrl {
  try {
    return parsePgUrl(url);
  } catch (error) {
    throw new StoreError('invalid', `store URL ${redactPgUrl(url)}: ${(error as Error).message}`);
  }
}

function storeError(prefix: string, error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  return new StoreError('unavailable', `${prefix}: ${(error as Error)?.message ?? error}`, { cause: error });
}

export class PostgresStore extends KyselyStore {
  readonly kind = 'postgres' as const;
  protected override readonly ambiguousCommit = true;
  /** Tags this process's NOTIFYs so its own feed skips them. */
  private readonly origin = randomUUID();
  private readonly feed: PgChangeFeed;
  private pruneTimer: NodeJS.Timeout | undefined;
  /** The server the change feed LISTENs on. */
  private feedHost: string | undefined;

  private constructor(
    db: Kysely<Database>,
    private readonly pool: FailoverPool,
    private readonly url: PgUrl,
    private readonly settings: PoolSettings,
    /** The URL with its password hidden. */
    readonly location: string,
    private readonly commitCheckMs: number,
    private readonly onCommitCheck: ((check: CommitCheck) => void) | undefined,
  ) {
    super(db);
    this.feed = new PgChangeFeed({
      origin: this.origin,
      connect: async () => {
        const host = await this.pool.primaryHost();
        this.feedHost = hostKey(host);
        return clientConfig(this.url, host, this.settings);
      },
      emit: (event) => this.emit(event),
      since: (ms) => this.changesSince(ms),
    });
    // LISTEN where the NOTIFYs are sent: on the primary, wherever it moves.
    pool.onPrimaryChange((host) => {
      if (this.feedHost !== hostKey(host)) this.feed.reconnect();
    });
  }

  /** Connects, checks that commits are durable, applies migrations and starts the change feed. */
  static async open(url: string, options: PostgresOptions = {}): Promise<PostgresStore> {
    const parsed = parseUrl(url);
    const settings = poolSettings(options);
    const pool = new FailoverPool(parsed, settings);
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const store = new PostgresStore(db, pool, parsed, settings, redactPgUrl(url), options.commitCheckMs ?? 15_000, options.onCommitCheck);
    try {
      await store.checkDurability();
      if (options.migrate !== false) await store.migrate();
      else if (!options.anySchema) await store.checkSchema();
      if (options.listen !== false) await store.feed.start();
      // Change rows only serve feed replays after a reconnect, markers only a COMMIT in doubt.
      store.pruneTimer = setInterval(() => store.pruneChanges().catch(() => undefined), 60_000);
      store.pruneTimer.unref();
      // Not on a schema of unknown age (`quill db` commands).
      if (!options.anySchema) store.startTextIndexer({ idleMs: options.textIndexIdleMs });
    } catch (error) {
      await store.close().catch(() => undefined);
      throw storeError(`cannot open store ${store.location}`, error);
    }
    return store;
  }

  /** Refuses a session that would acknowledge commits before they reach the disk (DESIGN.md "Durability"). */
  private async checkDurability(): Promise<void> {
    const { rows } = await sql<{ value: string }>`select current_setting('synchronous_commit') as value`.execute(this.db);
    if (rows[0]?.value === 'off') {
      throw new StoreError('invalid', 'the server runs with synchronous_commit=off, which acknowledges mail before it is durable; set it to on (postgresql.conf, or ALTER ROLE for Quillmail\'s user)');
    }
  }

  /** Applies pending migrations under an advisory lock (several nodes may start at once); returns their names. */
  async migrate(): Promise<string[]> {
    return this.db.connection().execute(async (conn) => {
      await sql`select pg_advisory_lock(${MIGRATION_LOCK})`.execute(conn);
      try {
        const { error, results } = await new Migrator({ db: conn, provider: migrations('postgres') }).migrateToLatest();
        if (error) throw storeError('migration failed', error);
        return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
      } finally {
        await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`.execute(conn);
      }
    });
  }

  private async checkSchema(): Promise<void> {
    const pending = await this.pendingMigrations();
    if (pending.length > 0) {
      throw new StoreError('invalid', `the database schema is behind (pending: ${pending.join(', ')}); run quill db migrate`);
    }
  }

  /**
   * Creates the URL's database if it does not exist yet (`quill db init`), connecting to the
   * server's `postgres` database to do so. Returns whether it was created.
   */
  static async createDatabase(url: string, options: PostgresOptions = {}): Promise<boolean> {
    const parsed = parseUrl(url);
    const settings = poolSettings(options);
    const maintenance = { ...parsed, database: 'postgres' };
    let client: pg.Client | undefined;
    try {
      const host = parsed.hosts.length === 1 ? parsed.hosts[0]! : await findServer(maintenance, settings);
      client = new pg.Client(clientConfig(maintenance, host, settings));
      client.on('error', () => undefined);
      await client.connect();
      const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [parsed.database]);
      if (rowCount) return false;
      await client.query(`create database ${client.escapeIdentifier(parsed.database)}`);
      return true;
    } catch (error) {
      // Another node created it at the same moment.
      if ((error as { code?: string }).code === '42P04') return false;
      throw storeError(`cannot create database ${parsed.database} at ${redactPgUrl(url)}`, error);
    } finally {
      await client?.end().catch(() => undefined);
    }
  }

  /** Names of migrations not yet applied. */
  async pendingMigrations(): Promise<string[]> {
    const all = await new Migrator({ db: this.db, provider: migrations('postgres') }).getMigrations();
    return all.filter((m) => m.executedAt === undefined).map((m) => m.name);
  }

  /** What `quill db status` shows: the server written to and its durability settings. */
  async serverStatus(): Promise<{ host: PgHost | undefined; version: string; synchronousCommit: string; synchronousStandbys: string; fsync: string; inRecovery: boolean }> {
    const { rows } = await sql<{ version: string; sc: string; ssn: string; fsync: string; rec: boolean }>`
      select current_setting('server_version') as version, current_setting('synchronous_commit') as sc,
             current_setting('synchronous_standby_names') as ssn, current_setting('fsync') as fsync, pg_is_in_recovery() as rec`.execute(this.db);
    const row = rows[0]!;
    return { host: this.pool.host, version: row.version, synchronousCommit: row.sc, synchronousStandbys: row.ssn, fsync: row.fsync, inRecovery: row.rec };
  }

  /** The URL's hosts as one group: role and replay lag of each (admin console). */
  async status(): Promise<StoreStatus> {
    return { kind: 'postgres', groups: [{ name: 'default', hosts: await postgresHostsStatus(this.url, this.settings) }] };
  }

  protected override isRetryable(error: unknown): boolean {
    return isRetryable(error);
  }

  /**
   * Inserting the marker again settles the question: it conflicts if the transaction in doubt
   * committed, waits for it if it is still running, and otherwise takes the marker, so that
   * transaction can never commit later. A row of its own makes this COMMIT wait for the
   * synchronous standby (one without WAL would not): once it returns, the one in doubt,
   * earlier in the WAL, is there too.
   */
  protected override async commitOutcome(marker: string): Promise<CommitOutcome> {
    const started = Date.now();
    const outcome = await this.lookUpCommit(marker);
    this.onCommitCheck?.({ outcome, ms: Date.now() - started, marker });
    return outcome;
  }

  private async lookUpCommit(marker: string): Promise<CommitOutcome> {
    const deadline = Date.now() + this.commitCheckMs;
    while (Date.now() < deadline) {
      const check = this.db
        .transaction()
        .execute(async (tx) => {
          await tx.insertInto('txns').values({ id: `${COMMIT_MARKER_PREFIX}check:${randomUUID()}`, created_at: Date.now() }).execute();
          const taken = await tx.insertInto('txns').values({ id: marker, created_at: Date.now() }).onConflict((oc) => oc.column('id').doNothing()).returning('id').executeTakeFirst();
          return taken ? ('absent' as const) : ('committed' as const);
        })
        .catch(() => undefined);
      // A COMMIT waiting for a standby that is gone is not bound by statement_timeout.
      const timeout = new AbortController();
      const outcome = await Promise.race([check, sleep(Math.max(deadline - Date.now(), 0), undefined, { signal: timeout.signal }).catch(() => undefined)]);
      timeout.abort();
      if (outcome) return outcome;
      await sleep(200);
    }
    return 'unknown';
  }

  protected override changeNotice(): { channel: string; origin: string } {
    return { channel: CHANGE_CHANNEL, origin: this.origin };
  }

  /** NOTIFY in the writing transaction: listeners hear of it only if it commits. */
  protected override async beforeCommit(tx: Transaction<Database>, events: ChangeEvent[]): Promise<void> {
    if (events.length === 0) return;
    const payloads = encodeChanges(this.origin, events);
    await sql`select ${sql.join(payloads.map((p) => sql`pg_notify(${CHANGE_CHANNEL}, ${p})`))}`.execute(tx);
  }

  private async changesSince(ms: number): Promise<ChangeEvent[]> {
    const rows = await this.db.selectFrom('changes').selectAll().where('created_at', '>=', ms).orderBy('id').limit(10_000).execute();
    return rows.map((row) => ({ id: Number(row.id), userId: Number(row.user_id), mailboxId: row.mailbox_id === null ? null : Number(row.mailbox_id), kind: row.kind as ChangeKind }));
  }

  /** The query builder on this database: the grouped store's directory and user moves use it. */
  get kysely(): Kysely<Database> {
    return this.db;
  }

  /** True while the change-feed connection is up. */
  get listening(): boolean {
    return this.feed.listening;
  }

  /** Resolves when the change feed is listening again after a lost connection. */
  feedReady(): Promise<void> {
    return this.feed.connected;
  }

  /** Deletes change rows and commit markers older than maxAgeMs; the store does it every minute. */
  async pruneChanges(maxAgeMs = 10 * 60_000): Promise<void> {
    await this.db.deleteFrom('changes').where('created_at', '<', Date.now() - maxAgeMs).execute();
    // Commit markers matter only for the seconds after a failed COMMIT.
    await this.db.deleteFrom('txns').where('id', 'like', `${COMMIT_MARKER_PREFIX}%`).where('created_at', '<', Date.now() - maxAgeMs).execute();
  }

  override async close(): Promise<void> {
    clearInterval(this.pruneTimer);
    await this.feed.stop();
    await super.close();
  }
}
