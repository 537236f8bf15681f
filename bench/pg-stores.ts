// Stores for the benchmarks' --stores option: the embedded SQLite store, one PostgreSQL server,
// or two groups on two PostgreSQL servers (the directory in the first group's database), each
// started from Debian's binaries in a temp dir (test/pg-server.ts) and removed afterwards.
import { addGroup } from '../src/store/grouped-store.js';
import { postgresAvailable, startPostgres, type PgServer } from '../test/pg-server.js';

export type StoreKind = 'sqlite' | 'postgres' | 'groups2';

export interface BenchStore {
  kind: StoreKind;
  /** store.url for Quillmail; undefined for the embedded store. */
  url?: string;
  stop(): Promise<void>;
}

/** --stores sqlite,postgres,groups2 (default: sqlite alone). */
export function storeKinds(argv: string[]): StoreKind[] {
  const index = argv.indexOf('--stores');
  const kinds = (index >= 0 ? argv[index + 1]! : 'sqlite').split(',') as StoreKind[];
  for (const kind of kinds) if (!['sqlite', 'postgres', 'groups2'].includes(kind)) throw new Error(`--stores: unknown store ${kind}`);
  if (kinds.some((k) => k !== 'sqlite') && !postgresAvailable()) throw new Error('--stores postgres needs PostgreSQL 15 (postgresql-15)');
  return kinds;
}

/** Server settings for a benchmark: more memory than the tests' default, durability unchanged. */
const SETTINGS = { shared_buffers: '256MB', max_wal_size: '2GB' };

export async function startBenchStore(kind: StoreKind): Promise<BenchStore> {
  if (kind === 'sqlite') return { kind, stop: async () => undefined };
  const servers: PgServer[] = [await startPostgres(SETTINGS)];
  const stop = async () => servers.forEach((s) => s.destroy());
  try {
    const first = await servers[0]!.createDatabase('quill_bench');
    if (kind === 'postgres') return { kind, url: first, stop };
    servers.push(await startPostgres(SETTINGS));
    await addGroup(first, 'g0', first);
    await addGroup(first, 'g1', await servers[1]!.createDatabase('quill_bench'));
    return { kind, url: first, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
