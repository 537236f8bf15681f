// Connections to PostgreSQL for Kysely: a pg Pool per server, chosen among the hosts of a
// multi-host URL (as libpq does with target_session_attrs=read-write, which node-postgres
// does not implement), so a failover moves new transactions to the promoted standby.
import pg from 'pg';
import type { PostgresCursor, PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';

export interface PgHost {
  host: string;
  port: number;
}

export interface PgUrl {
  hosts: PgHost[];
  database: string;
  user?: string;
  password?: string;
  /** libpq's target_session_attrs: 'read-write' skips standbys. */
  targetSessionAttrs: 'any' | 'read-write';
  ssl?: pg.ConnectionConfig['ssl'];
  applicationName?: string;
}

function parseHost(text: string): PgHost {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) return { host: bracket[1]!, port: Number(bracket[2] ?? 5432) };
  const colon = text.lastIndexOf(':');
  if (colon === -1) return { host: decodeURIComponent(text) || 'localhost', port: 5432 };
  return { host: decodeURIComponent(text.slice(0, colon)) || 'localhost', port: Number(text.slice(colon + 1)) };
}

/**
 * Parses postgres://user:pw@host1:5432,host2:5433/db?target_session_attrs=read-write&sslmode=prefer
 * (libpq connection URI, PostgreSQL docs 34.1.1), including the multi-host form pg_autoctl prints.
 */
export function parsePgUrl(url: string): PgUrl {
  const match = /^postgres(?:ql)?:\/\/(?:([^@/?]*)@)?([^/?]*)(?:\/([^?]*))?(?:\?(.*))?$/.exec(url);
  if (!match) throw new Error('not a postgres:// URL');
  const [, userinfo, hostList, database, query] = match;
  const params = new URLSearchParams(query ?? '');
  let user: string | undefined;
  let password: string | undefined;
  if (userinfo) {
    const colon = userinfo.indexOf(':');
    user = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon));
    if (colon !== -1) password = decodeURIComponent(userinfo.slice(colon + 1));
  }
  const hosts = (hostList ?? '').split(',').map(parseHost);
  // ?host=/run/postgresql names a Unix socket directory.
  const hostParam = params.get('host');
  if (hostParam) for (const [i, h] of hostParam.split(',').entries()) hosts[i] = { host: h, port: hosts[i]?.port ?? 5432 };
  for (const h of hosts) if (!Number.isInteger(h.port) || h.port < 1 || h.port > 65535) throw new Error(`bad port in ${h.host}:${h.port}`);
  const attrs = params.get('target_session_attrs') ?? (hosts.length > 1 ? 'read-write' : 'any');
  if (attrs !== 'any' && attrs !== 'read-write') throw new Error(`target_session_attrs=${attrs} is not supported (use read-write or any)`);
  const sslmode = params.get('sslmode') ?? 'disable';
  let ssl: PgUrl['ssl'];
  if (sslmode === 'require') ssl = { rejectUnauthorized: false };
  else if (sslmode === 'verify-ca' || sslmode === 'verify-full') ssl = true;
  else if (sslmode !== 'disable' && sslmode !== 'prefer' && sslmode !== 'allow') throw new Error(`sslmode=${sslmode} is not supported`);
  return {
    hosts,
    database: decodeURIComponent(database || user || 'postgres'),
    user: user || params.get('user') || undefined,
    password: password ?? params.get('password') ?? undefined,
    targetSessionAttrs: attrs,
    ssl,
    applicationName: params.get('application_name') ?? undefined,
  };
}

/** The URL with the password hidden, for messages and logs. */
export function redactPgUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:@/]*):[^@/]*@/, '$1:***@');
}

// int8 (bigint, count(*), bigserial ids) as a JS number: every Quillmail counter stays far
// below 2^53. pg returns strings by default to be safe for all values.
const INT8_OID = 20;
const parseInt8 = (text: string): number => {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`int8 value ${text} is beyond 2^53`);
  return value;
};
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

/** SQLSTATEs and messages after which the chosen server is not (or no longer) the writable primary. */
function meansServerLost(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  if (code === '25006' || code === '57P01' || code === '57P02' || code === '57P03' || code === '08006' || code === '08001') return true;
  return /Connection terminated|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|timeout expired|not queryable/i.test((error as Error)?.message ?? '');
}

/**
 * A pg client seen through Kysely. COMMIT is watched for PostgreSQL's warning that a wait for
 * synchronous replication was cancelled: the transaction then committed locally but maybe not
 * on the standby, so it must not be acknowledged as durable.
 */
class WatchedClient implements PostgresPoolClient {
  /** Set when the connection died while checked out; the client is then destroyed on release. */
  private broken: Error | undefined;

  constructor(
    private readonly client: pg.PoolClient,
    private readonly onLost: (error: unknown) => void,
  ) {
    // The pool listens for errors only on idle clients; a checked-out client whose connection
    // drops (server stopped, backend terminated) emits 'error', which must not go unhandled.
    client.on('error', (error) => {
      this.broken = error;
      onLost(error);
    });
  }

  query<R>(sqlText: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>;
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
  query<R>(sqlOrCursor: string | PostgresCursor<R>, parameters?: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    if (typeof sqlOrCursor !== 'string') throw new Error('cursors are not supported by the Quillmail store');
    return this.run<R>(sqlOrCursor, parameters ?? []);
  }

  private async run<R>(sqlText: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>> {
    const isCommit = sqlText === 'commit';
    let warning: string | undefined;
    const onNotice = (notice: { message?: string; detail?: string }) => {
      if (/synchronous replication/i.test(notice.message ?? '')) warning = `${notice.message}. ${notice.detail ?? ''}`.trim();
    };
    if (isCommit) this.client.on('notice', onNotice);
    try {
      const result = await this.client.query(sqlText, parameters as unknown[]);
      if (warning) throw new Error(`commit not confirmed by the standby: ${warning}`);
      return result as unknown as PostgresQueryResult<R>;
    } catch (error) {
      if (meansServerLost(error)) this.onLost(error);
      throw error;
    } finally {
      if (isCommit) this.client.off('notice', onNotice);
    }
  }

  release(destroy?: boolean): void {
    this.client.release(this.broken ?? destroy);
  }
}

export interface PoolSettings {
  max: number;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  /** Per-session synchronous_commit; undefined keeps the server's setting. */
  synchronousCommit?: string;
  applicationName: string;
}

/** The base node-postgres settings for one host: also used by the LISTEN connection. */
export function clientConfig(url: PgUrl, host: PgHost, settings: PoolSettings): pg.ClientConfig {
  const options = settings.synchronousCommit ? `-c synchronous_commit=${settings.synchronousCommit}` : undefined;
  return {
    host: host.host,
    port: host.port,
    database: url.database,
    user: url.user,
    password: url.password,
    ssl: url.ssl,
    application_name: url.applicationName ?? settings.applicationName,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    statement_timeout: settings.statementTimeoutMs > 0 ? settings.statementTimeoutMs : undefined,
    // A transaction abandoned by a hung client must not hold row locks for ever.
    idle_in_transaction_session_timeout: settings.statementTimeoutMs > 0 ? settings.statementTimeoutMs * 2 : undefined,
    // Notice a dead server (or a cut network) on idle connections.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    options,
    types,
  };
}

/** A server that is a standby (or read-only) where writes are wanted: SQLSTATE 25006, read_only_sql_transaction. */
export class NotPrimaryError extends Error {
  readonly code = '25006';
}

/**
 * Whether a connected server takes writes: not in recovery (a standby, or a primary being
 * demoted and restarted as one) and not read-only by default (libpq's read-write test reads
 * transaction_read_only the same way).
 */
export async function checkWritable(client: pg.ClientBase): Promise<void> {
  const { rows } = await client.query<{ recovery: boolean; read_only: string }>(
    "select pg_is_in_recovery() as recovery, current_setting('transaction_read_only') as read_only",
  );
  const row = rows[0];
  if (!row || row.recovery) throw new NotPrimaryError('in recovery (a standby)');
  if (row.read_only === 'on') throw new NotPrimaryError('read-only (transaction_read_only = on)');
}

/** Finds the first host that accepts writes (or just answers, for target_session_attrs=any). */
export async function findServer(url: PgUrl, settings: PoolSettings): Promise<PgHost> {
  const failures: string[] = [];
  const probes = url.hosts.map(async (host) => {
    const client = new pg.Client(clientConfig(url, host, settings));
    client.on('error', () => undefined);
    try {
      await client.connect();
      if (url.targetSessionAttrs === 'read-write') await checkWritable(client);
      return true;
    } catch (error) {
      failures.push(`${host.host}:${host.port}: ${(error as Error).message}`);
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  });
  // Probe in parallel, choose in the order given (as libpq does).
  const results = await Promise.all(probes);
  const index = results.indexOf(true);
  if (index === -1) {
    const wanted = url.targetSessionAttrs === 'read-write' ? 'read-write ' : '';
    throw new Error(`no ${wanted}PostgreSQL server reachable (${failures.join('; ')})`);
  }
  return url.hosts[index]!;
}

export function hostKey(host: PgHost): string {
  return `${host.host}:${host.port}`;
}

interface PoolEntry {
  host: PgHost;
  pool: pg.Pool;
  /** Resolves when this server is given up: connections still waiting for it try the next one. */
  gone: Promise<void>;
  leave: () => void;
}

/**
 * The pool Kysely draws connections from. With one host it is a plain pg Pool; with several it
 * keeps a pool on the current primary and, when that server is lost or turns read-only, finds
 * the new primary for the next connection. Every new connection is checked to be on a writable
 * server (a demoted primary comes back as a standby on the same address), and any read-only
 * error or lost connection sends the next one looking again. Transactions in flight fail (the
 * caller answers with a temporary error); new ones go to the new primary.
 */
export class FailoverPool implements PostgresPool {
  private current: PoolEntry | undefined;
  private choosing: Promise<PoolEntry> | undefined;
  private readonly clients = new WeakMap<pg.PoolClient, WatchedClient>();
  private readonly watchers = new Set<(host: PgHost) => void>();
  private lastHost: string | undefined;
  private ended = false;

  constructor(
    private readonly url: PgUrl,
    private readonly settings: PoolSettings,
  ) {}

  /** The server currently written to, for status output. */
  get host(): PgHost | undefined {
    return this.current?.host;
  }

  /** The primary, found now if not known (the change feed LISTENs there). */
  async primaryHost(): Promise<PgHost> {
    return (await this.primary()).host;
  }

  /** Calls `watch` whenever writes move to another server; returns its removal. */
  onPrimaryChange(watch: (host: PgHost) => void): () => void {
    this.watchers.add(watch);
    return () => void this.watchers.delete(watch);
  }

  private get multiHost(): boolean {
    return this.url.hosts.length > 1;
  }

  private async primary(): Promise<PoolEntry> {
    if (this.current) return this.current;
    this.choosing ??= (async () => {
      try {
        const host = this.multiHost ? await findServer(this.url, this.settings) : this.url.hosts[0]!;
        const check = this.multiHost && this.url.targetSessionAttrs === 'read-write';
        const pool = new pg.Pool({
          ...clientConfig(this.url, host, this.settings),
          max: this.settings.max,
          idleTimeoutMillis: 30_000,
          // Each new connection proves the server still takes writes.
          onConnect: check ? (checkWritable as (client: pg.ClientBase) => void) : undefined,
        });
        let leave!: () => void;
        const gone = new Promise<void>((resolve) => (leave = resolve));
        const entry: PoolEntry = { host, pool, gone, leave };
        // An idle client's error (server restart, backend terminated) is reported here; the pool
        // drops that client, and the next connection looks for the primary again.
        pool.on('error', (error) => {
          if (meansServerLost(error)) this.lost(entry);
        });
        if (this.ended) await pool.end();
        this.current = entry;
        const key = hostKey(host);
        if (this.lastHost !== undefined && this.lastHost !== key) for (const watch of this.watchers) watch(host);
        this.lastHost = key;
        return entry;
      } finally {
        this.choosing = undefined;
      }
    })();
    return this.choosing;
  }

  /** Forgets the current server, so the next connection looks for the primary again. */
  private lost(entry: PoolEntry): void {
    if (!this.multiHost || this.current !== entry) return;
    this.current = undefined;
    entry.leave();
    entry.pool.end().catch(() => undefined);
  }

  async connect(): Promise<PostgresPoolClient> {
    for (let attempt = 1; ; attempt++) {
      if (this.ended) throw new Error('the store is closed');
      const entry = await this.primary();
      const pending = entry.pool.connect();
      let client: pg.PoolClient | undefined;
      try {
        // A pool given up while this waited in its queue would hand out nothing (pg-pool leaves
        // waiters of an ending pool to their timeout): go to the next primary instead.
        client = await Promise.race([pending, entry.gone.then(() => undefined)]);
      } catch (error) {
        if (meansServerLost(error)) this.lost(entry);
        // A demoted primary (now a standby) or a server that went away: ask the others.
        if (attempt < 3 && (error instanceof NotPrimaryError || /ECONNREFUSED|ECONNRESET|Connection terminated/.test((error as Error).message))) continue;
        throw error;
      }
      if (!client) {
        pending.then((late) => late.release(true), () => undefined);
        if (attempt < 3) continue;
        throw new Error('the PostgreSQL primary changed while waiting for a connection');
      }
      let watched = this.clients.get(client);
      if (!watched) {
        watched = new WatchedClient(client, (error) => {
          if (meansServerLost(error)) this.lost(entry);
        });
        this.clients.set(client, watched);
      }
      return watched;
    }
  }

  async end(): Promise<void> {
    this.ended = true;
    await this.choosing?.catch(() => undefined);
    await this.current?.pool.end();
  }
}
