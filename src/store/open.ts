// Opening the configured store, loading only the backend it needs: a CLI command on the
// embedded SQLite file never loads the PostgreSQL driver, nor the servers.
import type { Config } from '../config/config.js';
import type { PostgresOptions } from './postgres.js';
import type { Store } from './types.js';

export async function openStore(config: Readonly<Config>, onCommitCheck?: PostgresOptions['onCommitCheck']): Promise<Store> {
  const { url, poolSize, statementTimeoutSeconds, connectTimeoutSeconds, migrate } = config.store;
  // A directory listing several groups opens the grouped store (src/store/grouped-store.ts).
  if (url) {
    const { openPostgres } = await import('./grouped-store.js');
    return openPostgres(url, { poolSize, statementTimeoutMs: statementTimeoutSeconds * 1000, connectTimeoutMs: connectTimeoutSeconds * 1000, migrate, onCommitCheck });
  }
  const { SqliteStore } = await import('./sqlite.js');
  return SqliteStore.open(config.data, { maxDatabaseBytes: config.store.maxDatabaseBytes, fsyncFlagChanges: config.store.fsyncFlagChanges });
}
