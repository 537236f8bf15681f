// A throwaway PostgreSQL server for tests: initdb into a temp dir, started on a free port on
// 127.0.0.1 with trust auth, stopped (and its files removed) at the end. PostgreSQL refuses
// to run as root, so as root it runs as the `postgres` user.
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const PG_BIN = process.env.QUILL_PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** True when the PostgreSQL binaries are installed, so tests can skip cleanly elsewhere. */
export function postgresAvailable(): boolean {
  return existsSync(path.join(PG_BIN, 'initdb'));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** As root, the `postgres` account PostgreSQL runs as (it refuses root); undefined otherwise. */
export function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root but there is no postgres user to run PostgreSQL as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Runs a PostgreSQL binary as the user that owns the cluster. */
function run(bin: string, args: string[], options: { allowFail?: boolean; timeoutMs?: number } = {}): string {
  const user = postgresUser();
  const file = path.join(PG_BIN, bin);
  const [cmd, argv] = user ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  const result = spawnSync(cmd, argv, { encoding: 'utf8', timeout: options.timeoutMs ?? 60_000, cwd: tmpdir() });
  if (result.status !== 0 && !options.allowFail) {
    throw new Error(`${bin} ${args.join(' ')} failed (${result.status ?? result.signal}): ${result.stderr || result.stdout}`);
  }
  return result.stdout;
}

export interface PgServer {
  port: number;
  dir: string;
  /** postgres://postgres@127.0.0.1:PORT/<database> */
  url(database?: string): string;
  /** A fresh, empty database; returns its URL. */
  createDatabase(prefix?: string): Promise<string>;
  /** Runs one SQL statement with psql as the superuser; returns its unaligned output. */
  psql(sqlText: string, database?: string): string;
  start(): void;
  /** Fast shutdown: open sessions are disconnected. */
  stopServer(): void;
  /** Kills the postmaster with SIGKILL, like a crash. */
  kill(): void;
  /** Stops the server for good and removes its files. */
  destroy(): void;
}

let databases = 0;

/** Starts a server; extra settings go on the postgres command line (`-c name=value`). */
export async function startPostgres(settings: Record<string, string | number> = {}): Promise<PgServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'quill-pg-'));
  const data = path.join(dir, 'data');
  const user = postgresUser();
  if (user) chownSync(dir, user.uid, user.gid);
  // --no-sync only skips initdb's own final flush; the server runs with fsync on.
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const options = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: dir,
    fsync: 'on',
    synchronous_commit: 'on',
    max_connections: 200,
    shared_buffers: '32MB',
    ...settings,
  };
  const conf = Object.entries(options)
    .map(([k, v]) => `${k} = '${v}'`)
    .join('\n');
  writeFileSync(path.join(data, 'postgresql.auto.conf'), conf + '\n');
  if (user) chownSync(path.join(data, 'postgresql.auto.conf'), user.uid, user.gid);
  const log = path.join(dir, 'postgres.log');

  const server: PgServer = {
    port,
    dir,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async createDatabase(prefix = 'quill') {
      const name = `${prefix}_${process.pid}_${++databases}`;
      server.psql(`create database ${name}`);
      return server.url(name);
    },
    psql(sqlText, database = 'postgres') {
      const user = postgresUser();
      const args = ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', database, '-v', 'ON_ERROR_STOP=1', '-XAtq', '-c', sqlText];
      return execFileSync(user ? 'runuser' : path.join(PG_BIN, 'psql'), user ? ['-u', 'postgres', '--', path.join(PG_BIN, 'psql'), ...args] : args, {
        encoding: 'utf8',
        cwd: tmpdir(),
        timeout: 30_000,
      }).trim();
    },
    start() {
      run('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '30', '-o', `-p ${port}`, 'start']);
    },
    stopServer() {
      run('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop'], { allowFail: true });
    },
    kill() {
      const pidFile = path.join(data, 'postmaster.pid');
      if (!existsSync(pidFile)) return;
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    },
    destroy() {
      process.off('exit', onExit);
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop'], { allowFail: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // A test process that dies early must not leave a server behind.
  const onExit = () => {
    run('pg_ctl', ['-D', data, '-m', 'immediate', 'stop'], { allowFail: true, timeoutMs: 10_000 });
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', onExit);
  try {
    server.start();
  } catch (error) {
    server.destroy();
    throw new Error(`${(error as Error).message}\n${existsSync(log) ? readFileSync(log, 'utf8') : ''}`);
  }
  return server;
}

let shared: Promise<PgServer> | undefined;
const testDatabases = new Map<string, Promise<string>>();

/**
 * With QUILL_TEST_STORE=postgres, the store URL for a test server: a fresh database per data
 * directory (a server restarted on the same directory finds its data again), all on one
 * PostgreSQL started once per test process. Undefined otherwise: the test uses SQLite, as it
 * does when it prepared an embedded store in the directory itself (with `quill --data`).
 */
export function testStoreUrl(dataDir: string): Promise<string> | undefined {
  if (process.env.QUILL_TEST_STORE !== 'postgres') return undefined;
  if (!postgresAvailable()) throw new Error(`QUILL_TEST_STORE=postgres needs PostgreSQL 15 in ${PG_BIN}`);
  let url = testDatabases.get(dataDir);
  if (!url) {
    if (existsSync(path.join(dataDir, 'quill.db'))) return undefined;
    url = (shared ??= startPostgres()).then((server) => server.createDatabase('quill_test'));
    testDatabases.set(dataDir, url);
  }
  return url;
}
