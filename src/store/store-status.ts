// What the admin console shows of the store (issue 9): the SQLite file and its size, or each
// PostgreSQL host's role and how far its replay lags behind the primary's WAL. Best effort:
// a figure that cannot be read is null, a host that does not answer has the role 'unknown'.
import { stat } from 'node:fs/promises';
import type { PgHost, PgUrl, PoolSettings } from './pg-pool.js';
import type { StoreStatus } from './types.js';

async function sizeOf(file: string): Promise<number | null> {
  try {
    return (await stat(file)).size;
  } catch {
    return null;
  }
}

export async function sqliteStatus(file: string): Promise<StoreStatus> {
  return { kind: 'sqlite', path: file, sizeBytes: (await sizeOf(file)) ?? 0, walBytes: await sizeOf(`${file}-wal`) };
}

/** A WAL position 'X/Y' (two hex halves) as one number of bytes. */
function lsnBytes(lsn: string | null | undefined): bigint | null {
  const match = /^([0-9A-F]+)\/([0-9A-F]+)$/i.exec(lsn ?? '');
  return match ? (BigInt(`0x${match[1]}`) << 32n) + BigInt(`0x${match[2]}`) : null;
}

type HostStatus = { host: string; role: 'primary' | 'standby' | 'unknown'; lsn: bigint | null };

async function probe(url: PgUrl, host: PgHost, settings: PoolSettings): Promise<HostStatus> {
  const name = `${host.host}:${host.port}`;
  // Loaded here: the SQLite store (and so every CLI command) imports this file, and pg costs ~50 ms to load.
  const [{ default: pg }, { clientConfig }] = await Promise.all([import('pg'), import('./pg-pool.js')]);
  const client = new pg.Client(clientConfig(url, host, { ...settings, connectTimeoutMs: Math.min(settings.connectTimeoutMs, 2_000) }));
  client.on('error', () => undefined);
  try {
    await client.connect();
    // On a standby the position replayed so far; on the primary the position written (PostgreSQL docs 9.27.4).
    const { rows } = await client.query<{ standby: boolean; lsn: string | null }>(
      'select pg_is_in_recovery() as standby, case when pg_is_in_recovery() then pg_last_wal_replay_lsn()::text else pg_current_wal_lsn()::text end as lsn',
    );
    const row = rows[0];
    if (!row) return { host: name, role: 'unknown', lsn: null };
    return { host: name, role: row.standby ? 'standby' : 'primary', lsn: lsnBytes(row.lsn) };
  } catch {
    return { host: name, role: 'unknown', lsn: null };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Every host of a connection URL with its role, and each standby's replay lag behind the primary in bytes. */
export async function postgresHostsStatus(url: PgUrl, settings: PoolSettings): Promise<{ host: string; role: HostStatus['role']; lagBytes: number | null }[]> {
  const hosts = await Promise.all(url.hosts.map((host) => probe(url, host, settings)));
  const primary = hosts.find((h) => h.role === 'primary');
  return hosts.map((h) => {
    let lagBytes: number | null = null;
    if (h.role === 'primary') lagBytes = 0;
    else if (h.role === 'standby' && primary?.lsn != null && h.lsn !== null) lagBytes = Number(primary.lsn > h.lsn ? primary.lsn - h.lsn : 0n);
    return { host: h.host, role: h.role, lagBytes };
  });
}
