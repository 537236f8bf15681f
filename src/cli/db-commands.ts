// `quill db init|migrate|status`: create and upgrade the PostgreSQL schema. Migrations take an
// advisory lock, so running them from several nodes at once is safe. The embedded SQLite
// store needs none of this: it migrates itself when opened.
import type { Command } from 'commander';
import type { Config } from '../config/config.js';
import type { Kysely } from 'kysely';
import type { DirectoryDatabase } from '../store/directory.js';
import { openStore } from '../store/open.js';
import type { PostgresOptions, PostgresStore } from '../store/postgres.js';
import { addStoreOptions, configFrom, table, type StoreOptions } from './common.js';

function postgresOptions(config: Readonly<Config>): PostgresOptions {
  const { poolSize, statementTimeoutSeconds, connectTimeoutSeconds } = config.store;
  // One command at a time: a connection or two is all it uses.
  return { poolSize: Math.min(poolSize, 2), statementTimeoutMs: statementTimeoutSeconds * 1000, connectTimeoutMs: connectTimeoutSeconds * 1000 };
}

/** Opens the PostgreSQL store without migrating or listening, whatever state its schema is in. */
async function withPostgres<T>(url: string, config: Readonly<Config>, fn: (store: PostgresStore) => Promise<T>): Promise<T> {
  const { PostgresStore } = await import('../store/postgres.js');
  const store = await PostgresStore.open(url, { ...postgresOptions(config), migrate: false, anySchema: true, listen: false });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function migrate(options: StoreOptions, create: boolean): Promise<void> {
  const config = configFrom(options);
  const url = config.store.url;
  if (!url) {
    // The embedded store applies its migrations on open.
    await (await openStore(config)).close();
    process.stdout.write(`embedded store in ${config.data} is up to date\n`);
    return;
  }
  // PostgreSQL's driver is loaded only by the commands that use it (CLI start time).
  const [{ PostgresStore }, { Directory }] = await Promise.all([import('../store/postgres.js'), import('../store/directory.js')]);
  if (create && (await PostgresStore.createDatabase(url, postgresOptions(config)))) process.stdout.write('database created\n');
  const [applied, groups] = await withPostgres(url, config, async (store) => [await store.migrate(), await new Directory(store.kysely as unknown as Kysely<DirectoryDatabase>).listGroups()] as const);
  process.stdout.write(applied.length > 0 ? applied.map((name) => `applied ${name}\n`).join('') : 'schema is up to date\n');
  // Every group of the directory has the same schema (docs/postgresql.md "Several groups").
  for (const group of groups.filter((g) => g.url !== url)) {
    const done = await withPostgres(group.url, config, (store) => store.migrate());
    process.stdout.write(done.length > 0 ? done.map((name) => `group ${group.name}: applied ${name}\n`).join('') : `group ${group.name}: schema is up to date\n`);
  }
}

export function addDbCommands(program: Command): void {
  const db = program.command('db').description('create, upgrade and inspect the PostgreSQL schema');
  addStoreOptions(db.command('init'))
    .description('create the database if it is missing and apply every migration')
    .action((options: StoreOptions) => migrate(options, true));
  addStoreOptions(db.command('migrate'))
    .description('apply pending migrations (safe from several nodes at once)')
    .action((options: StoreOptions) => migrate(options, false));
  addStoreOptions(db.command('status'))
    .description('show the server written to, its durability settings and pending migrations')
    .action(async (options: StoreOptions) => {
      const config = configFrom(options);
      if (!config.store.url) {
        process.stdout.write(`embedded store in ${config.data} (SQLite)\n`);
        return;
      }
      const [status, pending, location] = await withPostgres(config.store.url, config, async (store) => [await store.serverStatus(), await store.pendingMigrations(), store.location] as const);
      process.stdout.write(
        table([
          ['store', location],
          ['server', status.host ? `${status.host.host}:${status.host.port}` : '?'],
          ['version', status.version],
          ['role', status.inRecovery ? 'standby (read-only)' : 'primary'],
          ['synchronous_commit', status.synchronousCommit],
          ['synchronous_standby_names', status.synchronousStandbys || '(none)'],
          ['fsync', status.fsync],
          ['pending migrations', pending.length > 0 ? pending.join(', ') : 'none'],
        ]),
      );
    });
}
