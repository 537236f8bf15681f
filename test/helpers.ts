// Shared by tests: a fresh server on port 0 with its own data directory, and users in it.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { configSchema, type Config } from '../src/config/config.js';
import type { Resolver } from '../src/dns/resolver.js';
import { startServer, type RunningServer } from '../src/server.js';
import { hashPassword } from '../src/util/password.js';
import { silentLogger } from '../src/util/logger.js';
import { testStoreUrl } from './pg-server.js';

/** `quill ARGS` from the source tree (through tsx), with `input` on its standard input: its exit code and output. */
export function runQuill(args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', path.resolve('src/cli/main.ts'), ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
    child.stdin!.end(input);
  });
}

/** A DNS with no records at all: tests never reach the network. */
export const emptyResolver: Resolver = {
  resolveMx: async (name) => notFound(name),
  resolve4: async (name) => notFound(name),
  resolve6: async (name) => notFound(name),
  resolveTxt: async (name) => notFound(name),
};

function notFound(name: string): never {
  throw Object.assign(new Error(`queryA ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
}

export function tempDir(prefix = 'quill-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

/** A validated config for tests: every listener on 127.0.0.1:0, short auth delays. */
export function testConfig(dataDir: string, overrides: DeepPartial<Config> = {}): Config {
  const raw = {
    hostname: 'mx.test.example',
    ...overrides,
    data: dataDir,
    listen: { smtp: '127.0.0.1:0', submission: '127.0.0.1:0', pop3: '127.0.0.1:0', imap: '127.0.0.1:0', http: '127.0.0.1:0', ...overrides.listen },
    limits: { authFailureDelayMs: 10, ...overrides.limits },
    log: { level: process.env.QUILL_TEST_LOG ?? 'silent' },
  };
  return configSchema.parse(raw);
}

export interface TestServer extends RunningServer {
  dataDir: string;
  config: Config;
  addUser(address: string, password: string, options?: { quotaBytes?: number }): Promise<number>;
  stop(): Promise<void>;
}

export async function startTestServer(
  options: { overrides?: DeepPartial<Config>; domains?: string[]; dataDir?: string; resolver?: Resolver; nodeId?: string } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? tempDir();
  const storeUrl = await testStoreUrl(dataDir);
  const config = testConfig(dataDir, storeUrl ? { ...options.overrides, store: { poolSize: 4, url: storeUrl, ...options.overrides?.store } } : options.overrides);
  const server = await startServer(config, { logger: silentLogger(), resolver: options.resolver ?? emptyResolver, nodeId: options.nodeId });
  for (const domain of options.domains ?? ['example.com']) {
    if (!(await server.store.getDomain(domain))) await server.store.addDomain(domain);
  }
  return {
    ...server,
    dataDir,
    config,
    async addUser(address, password, userOptions = {}) {
      const user = await server.store.addUser({ address, passwordHash: await hashPassword(password), quotaBytes: userOptions.quotaBytes });
      return user.id;
    },
    async stop() {
      await server.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
