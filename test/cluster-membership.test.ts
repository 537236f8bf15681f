// Nodes sharing one store see each other through heartbeats; operators drain them from the CLI.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { startServer, type RunningServer } from '../src/server.js';
import { silentLogger } from '../src/util/logger.js';
import { tempDir, testConfig } from './helpers.js';

const run = promisify(execFile);

interface StatusRow {
  id: string;
  status: string;
  alive: boolean;
  addresses: Record<string, string>;
  load: { connections: Record<string, number> };
}

async function status(data: string): Promise<StatusRow[]> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'status', '--json', '--data', data]);
  return JSON.parse(stdout) as StatusRow[];
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

describe('membership', () => {
  let data: string;
  let a: RunningServer;
  let b: RunningServer;

  before(async () => {
    data = tempDir('quill-cluster-');
    a = await startServer(testConfig(data), { logger: silentLogger(), nodeId: 'node-a' });
    b = await startServer(testConfig(data), { logger: silentLogger(), nodeId: 'node-b' });
  });
  after(async () => {
    await a.close();
    await b.close();
    rmSync(data, { recursive: true, force: true });
  });

  it('shows every node with its listening addresses', async () => {
    const rows = await status(data);
    const a1 = rows.find((r) => r.id === 'node-a');
    const b1 = rows.find((r) => r.id === 'node-b');
    assert.equal(a1?.status, 'active');
    assert.equal(b1?.alive, true);
    assert.equal(a1?.addresses.http, `127.0.0.1:${a.port('http')}`);
    assert.equal(typeof a1?.load.connections.http, 'number');
  });

  it('drains and undrains a node from the command line', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'drain', 'node-a', '--data', data]);
    assert.match(stdout, /node-a: draining requested/);
    await until('node-a to drain', async () => (a.membership.state === 'draining' ? true : undefined));
    await until('status to show draining', async () => ((await status(data)).find((r) => r.id === 'node-a')?.status === 'draining' ? true : undefined));
    await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'undrain', 'node-a', '--data', data]);
    await until('node-a to be active', async () => (a.membership.state === 'active' ? true : undefined));
    await assert.rejects(run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'drain', 'nope', '--data', data]), (e: { code: number }) => e.code === 2);
  });

  it('marks a killed node dead and forgets a stopped one', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'node', '--id', 'node-k', '--data', data, '--smtp', '127.0.0.1:0', '--submission', '127.0.0.1:0', '--pop3', '127.0.0.1:0', '--imap', '127.0.0.1:0', '--http', '127.0.0.1:0', '--log-level', 'silent'],
      { stdio: 'ignore' },
    );
    await until('node-k to join', async () => ((await status(data)).find((r) => r.id === 'node-k')?.alive ? true : undefined), 20_000);
    child.kill('SIGKILL');
    await until('node-k to be dead', async () => ((await status(data)).find((r) => r.id === 'node-k')?.status === 'dead' ? true : undefined));
    await b.close();
    assert.equal((await status(data)).some((r) => r.id === 'node-b'), false);
  });
});
