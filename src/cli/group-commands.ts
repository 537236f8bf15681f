// `quill group add|list` and `quill user move`: users spread over several PostgreSQL groups
// (docs/postgresql.md "Several groups"). --store names the directory database. The grouped store
// is imported by the commands that run, not when the CLI starts.
import type { Command } from 'commander';
import { formatSize } from '../util/size.js';
import { addStoreOptions, configFrom, table, UsageError, withStore, type StoreOptions } from './common.js';

function directoryUrl(options: StoreOptions): { url: string; config: ReturnType<typeof configFrom> } {
  const config = configFrom(options);
  if (!config.store.url) throw new UsageError('groups need PostgreSQL: give the directory database with --store postgres://… (or store.url)');
  return { url: config.store.url, config };
}

export function addGroupCommands(program: Command, user: Command): void {
  const group = program.command('group').description('PostgreSQL groups: several databases, users spread over them');
  addStoreOptions(group.command('add <name> <url>'))
    .description('add a group (creating its database and schema); the first may be the directory database itself, with its users')
    .action(async (name: string, url: string, options: StoreOptions) => {
      const { url: directory, config } = directoryUrl(options);
      if (!/^postgres(ql)?:\/\//.test(url)) throw new UsageError(`not a postgres:// URL: ${url}`);
      const { connectTimeoutSeconds, statementTimeoutSeconds } = config.store;
      const { addGroup } = await import('../store/grouped-store.js');
      const added = await addGroup(directory, name, url, { poolSize: 2, connectTimeoutMs: connectTimeoutSeconds * 1000, statementTimeoutMs: statementTimeoutSeconds * 1000 });
      process.stdout.write(`group ${added.name} added (number ${added.index}); restart nodes to use it at once\n`);
    });
  addStoreOptions(group.command('list'))
    .description('list groups with their users and sizes')
    .action(async (options: StoreOptions) => {
      directoryUrl(options);
      const { isGroupedStore } = await import('../store/grouped-store.js');
      const loads = await withStore(options, async (store) => (isGroupedStore(store) ? store.loads() : undefined));
      if (!loads) {
        process.stdout.write('one group: the store URL (add groups with quill group add)\n');
        return;
      }
      const rows = [['group', 'number', 'users', 'mail', 'database', 'url'], ...loads.map((g) => [g.name, String(g.index), String(g.users), g.down ? 'down' : formatSize(g.usedBytes), g.down ? 'down' : formatSize(g.databaseBytes), g.url])];
      process.stdout.write(table(rows));
    });
  addStoreOptions(user.command('move <address> <group>'))
    .description('move a user and all their mail to another group, online (UIDs kept)')
    .action(async (address: string, target: string, options: StoreOptions) => {
      directoryUrl(options);
      const { moveUser } = await import('../store/user-move.js');
      const result = await withStore(options, (store) => moveUser(store, address, target));
      process.stdout.write(`user ${result.address} moved from ${result.from} to ${result.to}: ${result.messages} messages, deliveries held for ${result.fenceMs} ms\n`);
    });
}
