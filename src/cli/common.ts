// Pieces every `quill` subcommand shares: store options, opening the store, usage errors.
import type { Command } from 'commander';
import { loadConfig, type Config, type ConfigOverrides } from '../config/config.js';
import { openStore } from '../store/open.js';
import type { Directory, Store, User } from '../store/types.js';

/** A mistake in how the command was called: exit code 2. */
export class UsageError extends Error {}

export interface StoreOptions {
  config?: string;
  data?: string;
  /** store.url: a postgres:// URL instead of the embedded store. */
  store?: string;
}

export function configFrom(options: StoreOptions & ConfigOverrides): Readonly<Config> {
  return loadConfig(options.config, { clusterSecret: process.env.QUILL_CLUSTER_SECRET || undefined, ...options });
}

export async function withStore<T>(options: StoreOptions, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(configFrom(options));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

export async function requireUser(store: Directory, address: string): Promise<User> {
  const user = await store.getUser(address);
  if (!user) throw new UsageError(`no user ${address.toLowerCase()}`);
  return user;
}

export function addStoreOptions(command: Command): Command {
  return command
    .option('-c, --config <file>', 'YAML config file')
    .option('-d, --data <dir>', 'data directory of the embedded store (default ./quill-data)')
    .option('--store <url>', 'PostgreSQL instead of the embedded store: postgres://user@host:5432/db');
}

/** Columns padded to their widest cell; the last column is not padded. */
export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** On the first SIGTERM or SIGINT: says what happens, runs `stop`, exits 0 (or 1 if stopping failed). */
export function stopOnSignals(what: string, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`quill: ${signal} received, ${what}\n`);
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}
