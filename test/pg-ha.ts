// A replicated PostgreSQL group for tests and local trials, run by pg_auto_failover (Debian:
// postgresql-15-auto-failover, pg-auto-failover-cli): a monitor and two nodes (a primary and
// its synchronous standby) in a temp dir, as the `postgres` user when started as root. The
// monitor's health checks are tightened so a failover takes seconds, not the default half-minute.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort, PG_BIN, postgresAvailable, postgresUser } from './pg-server.js';

export const PG_AUTOCTL = process.env.QUILL_PG_AUTOCTL ?? '/usr/bin/pg_autoctl';

export function autoFailoverAvailable(): boolean {
  return postgresAvailable() && existsSync(PG_AUTOCTL);
}

/** Monitor settings (pgautofailover.*, in ms) for a quick failover on a test machine. */
export const FAST_FAILOVER = {
  health_check_period: 1000,
  health_check_timeout: 1000,
  health_check_max_retries: 1,
  health_check_retry_delay: 500,
  node_considered_unhealthy_timeout: 2000,
  // The old primary here is dead, not cut off; production keeps the default (30 s), which
  // gives a partitioned primary time to demote itself before the standby takes over.
  primary_demote_timeout: 2000,
};

/**
 * What docs/postgresql.md recommends for production: a write gap under 10 s with the old
 * primary fenced. Each keeper demotes its postgres after `network_partition_timeout` seconds
 * without the monitor and without a standby; the monitor promotes only after a primary has
 * been unhealthy for node_considered_unhealthy_timeout and then primary_demote_timeout more,
 * which is longer, so a primary cut off from the monitor has stopped taking writes by then.
 */
export const PRODUCTION_FAILOVER = {
  monitor: {
    health_check_period: 1000,
    health_check_timeout: 1000,
    health_check_max_retries: 2,
    health_check_retry_delay: 500,
    node_considered_unhealthy_timeout: 3000,
    primary_demote_timeout: 3000,
  },
  keeper: { 'timeout.network_partition_timeout': 2 },
};

interface Keeper {
  name: string;
  port: number;
  pgdata: string;
  child: ChildProcess;
  exited: Promise<void>;
  /** A supervised keeper does not start again before this time (ms). */
  downUntil?: number;
}

export interface NodeState {
  name: string;
  port: number;
  reported: string;
  goal: string;
}

export interface AutoFailoverGroup {
  dir: string;
  /** Multi-host URL of the group's `quill` database, as `pg_autoctl show uri` prints it. */
  url: string;
  monitorUrl: string;
  /** The nodes as the monitor sees them. */
  states(): Promise<NodeState[]>;
  /** Waits until the named nodes report these states, e.g. { node1: 'primary', node2: 'secondary' }. */
  waitFor(expected: Record<string, string>, timeoutMs?: number): Promise<void>;
  /** The node the monitor holds as primary (or one on its way there). */
  primary(): Promise<string>;
  /**
   * SIGKILL of a node's keeper and its postgres, as a machine dying would do. With `supervise`,
   * the keeper starts again after `downMs` (a machine's reboot; default: systemd's 1 s).
   */
  crash(name: string, downMs?: number): void;
  /** Runs pg_autoctl as the group's user with its environment; resolves with its output. */
  autoctl(args: string[]): Promise<string>;
  destroy(): Promise<void>;
}

/** Runs statements one by one on a fresh connection; returns the rows of the last. */
async function query<R extends pg.QueryResultRow>(config: pg.ClientConfig, ...statements: string[]): Promise<R[]> {
  const client = new pg.Client({ ...config, connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    let rows: R[] = [];
    for (const text of statements) rows = (await client.query<R>(text)).rows;
    return rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, log?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = (error as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${lastError ? ` (${lastError})` : ''}${log ? `\n${log()}` : ''}`);
}

/** Starts a monitor and `nodes` keepers; resolves when one is primary and the others secondaries. */
export async function startAutoFailover(
  options: {
    nodes?: number;
    timeoutMs?: number;
    /** 'test' (default): FAST_FAILOVER; 'production': PRODUCTION_FAILOVER. */
    settings?: 'test' | 'production';
    /** Start a keeper again a second after it exits, as systemd's Restart=always does (deploy/pg-autoctl-node.service). */
    supervise?: boolean;
  } = {},
): Promise<AutoFailoverGroup> {
  const count = options.nodes ?? 2;
  const production = options.settings === 'production';
  let stopping = false;
  const timeoutMs = options.timeoutMs ?? 90_000;
  const dir = mkdtempSync(path.join(tmpdir(), 'quill-ha-'));
  const user = postgresUser();
  if (user) chownSync(dir, user.uid, user.gid);
  const keepers: Keeper[] = [];

  // pg_autoctl keeps its config and state under XDG dirs; keep them in the temp dir too.
  const env = [`PATH=${PG_BIN}:/usr/bin:/bin`, `XDG_CONFIG_HOME=${dir}/config`, `XDG_DATA_HOME=${dir}/share`, `HOME=${dir}`];
  const command = (argv: string[]): [string, string[]] => (user ? ['runuser', ['-u', 'postgres', '--', 'env', ...env, ...argv]] : ['env', [...env, ...argv]]);
  const launch = (name: string, port: number, args: string[]): Keeper => {
    const pgdata = path.join(dir, name);
    const log = openSync(path.join(dir, `${name}.log`), 'a');
    const argv = [PG_AUTOCTL, ...args, '--pgdata', pgdata, '--pgport', String(port), '--hostname', '127.0.0.1', '--auth', 'trust', '--no-ssl', '--run'];
    const [cmd, cmdArgs] = command(argv);
    // Its own process group, so a crash or shutdown reaches the keeper and everything under it.
    const child = spawn(cmd, cmdArgs, { cwd: dir, detached: true, stdio: ['ignore', log, log] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const keeper: Keeper = { name, port, pgdata, child, exited };
    keepers.push(keeper);
    if (options.supervise) child.once('exit', () => void restart(keeper, log));
    return keeper;
  };
  // RestartSec=1: `pg_autoctl run` takes the node's saved state, asks the monitor what it
  // is now and gets there (a dead primary comes back as a standby, rewound if need be).
  const restart = async (keeper: Keeper, log: number) => {
    await sleep(Math.max(1000, (keeper.downUntil ?? 0) - Date.now()));
    if (stopping) return;
    const [cmd, cmdArgs] = command([PG_AUTOCTL, 'run', '--pgdata', keeper.pgdata]);
    const child = spawn(cmd, cmdArgs, { cwd: dir, detached: true, stdio: ['ignore', log, log] });
    keeper.child = child;
    keeper.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('exit', () => void restart(keeper, log));
  };
  const run = (args: string[]): Promise<string> => {
    const [cmd, cmdArgs] = command([PG_AUTOCTL, ...args]);
    return new Promise((resolve, reject) =>
      execFile(cmd, cmdArgs, { cwd: dir, timeout: 120_000 }, (error, stdout, stderr) => (error ? reject(new Error(`pg_autoctl ${args.join(' ')}: ${error.message}\n${stderr}`)) : resolve(stdout + stderr))),
    );
  };
  const logs = () => keepers.map((k) => `--- ${k.name}.log (tail)\n${readFileSync(path.join(dir, `${k.name}.log`), 'utf8').split('\n').slice(-15).join('\n')}`).join('\n');

  const signalKeeper = (keeper: Keeper, signal: NodeJS.Signals) => {
    try {
      if (keeper.child.exitCode === null && keeper.child.signalCode === null) process.kill(-keeper.child.pid!, signal);
    } catch {
      // Already gone.
    }
    if (signal !== 'SIGKILL') return;
    const pidFile = path.join(keeper.pgdata, 'postmaster.pid');
    if (!existsSync(pidFile)) return;
    try {
      process.kill(Number(readFileSync(pidFile, 'utf8').split('\n')[0]), 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  const killAll = () => {
    stopping = true;
    for (const keeper of keepers) signalKeeper(keeper, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', killAll);

  const destroy = async () => {
    stopping = true;
    process.off('exit', killAll);
    for (const keeper of keepers) signalKeeper(keeper, 'SIGTERM');
    await Promise.race([Promise.all(keepers.map((k) => k.exited)), sleep(15_000)]);
    killAll();
  };

  try {
    const monitorPort = await freePort();
    launch('monitor', monitorPort, ['create', 'monitor']);
    const monitorUrl = `postgres://autoctl_node@127.0.0.1:${monitorPort}/pg_auto_failover?sslmode=disable`;
    const monitor: pg.ClientConfig = { host: '127.0.0.1', port: monitorPort, user: 'postgres', database: 'pg_auto_failover' };
    await until('the monitor', timeoutMs, async () => (await query(monitor, 'select 1 from pgautofailover.node limit 0')) && true, logs);
    const settings = Object.entries(production ? PRODUCTION_FAILOVER.monitor : FAST_FAILOVER).map(([key, value]) => `alter system set pgautofailover.${key} = ${value}`);
    await query(monitor, ...settings, 'select pg_reload_conf()');

    const states = async (): Promise<NodeState[]> => {
      const rows = await query<{ nodename: string; nodeport: number; reportedstate: string; goalstate: string }>(
        monitor,
        'select nodename, nodeport, reportedstate, goalstate from pgautofailover.node order by nodeid',
      );
      return rows.map((r) => ({ name: r.nodename, port: Number(r.nodeport), reported: r.reportedstate, goal: r.goalstate }));
    };
    const waitFor = async (expected: Record<string, string>, wait = timeoutMs, whileWaiting?: () => Promise<void>) => {
      await until(`nodes in ${JSON.stringify(expected)}`, wait, async () => {
        await whileWaiting?.();
        const now = await states();
        return Object.entries(expected).every(([name, state]) => now.some((n) => n.name === name && n.reported === state)) || undefined;
      }, logs);
    };

    const nodes: Keeper[] = [];
    for (let i = 1; i <= count; i++) {
      const node = launch(`node${i}`, await freePort(), ['create', 'postgres', '--name', `node${i}`, '--pghost', '127.0.0.1', '--monitor', monitorUrl, '--dbname', 'quill']);
      nodes.push(node);
      if (i === 1) {
        await waitFor({ node1: 'single' });
        continue;
      }
      // pg_basebackup waits for a spread checkpoint on the primary (minutes); ask for it now.
      const first = nodes[0]!;
      await waitFor({ [`node${i}`]: 'secondary' }, timeoutMs, async () => {
        await query({ host: '127.0.0.1', port: first.port, user: 'postgres', database: 'postgres' }, 'checkpoint').catch(() => undefined);
      });
    }
    await waitFor({ node1: 'primary' });
    if (production) {
      for (const node of nodes) {
        for (const [key, value] of Object.entries(PRODUCTION_FAILOVER.keeper)) await run(['config', 'set', '--pgdata', node.pgdata, key, String(value)]);
      }
    }

    return {
      dir,
      url: `postgres://postgres@${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}/quill?target_session_attrs=read-write`,
      monitorUrl,
      states,
      waitFor: (expected, wait) => waitFor(expected, wait),
      async primary() {
        const now = await states();
        const primary = now.find((n) => ['primary', 'wait_primary', 'single'].includes(n.goal));
        if (!primary) throw new Error(`no primary: ${JSON.stringify(now)}`);
        return primary.name;
      },
      autoctl: run,
      crash(name, downMs) {
        const keeper = keepers.find((k) => k.name === name);
        if (!keeper) throw new Error(`no node ${name}`);
        keeper.downUntil = Date.now() + (downMs ?? 0);
        signalKeeper(keeper, 'SIGKILL');
      },
      destroy,
    };
  } catch (error) {
    await destroy();
    throw error;
  }
}
