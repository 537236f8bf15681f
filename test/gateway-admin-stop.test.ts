// `quill admin restart` and `quill admin stop` of a gateway (issue 5, issue 9): `quill gateway`
// closes and exits 75 on a restart request (for its supervisor to start it again) and 0 on a
// stop; in `quill start --nodes 1` the gateway starts again in-process on a restart.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SqliteStore } from '../src/store/sqlite.js';
import type { Member } from '../src/store/types.js';
import { tempDir, runQuill as quill } from './helpers.js';


function spawnQuill(args: string[]): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
  let output = '';
  // Its own process group: a failed test takes the node processes of `quill start` down with it.
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

async function waitFor(store: SqliteStore, id: string, predicate: (m: Member | undefined) => boolean, what: string): Promise<Member | undefined> {
  const end = Date.now() + 60_000;
  for (;;) {
    const found = (await store.listMembers()).find((m) => m.id === id);
    if (predicate(found)) return found;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** SMTP's greeting on this address, once the gateway has a node to hand the session to. */
async function greeting(address: string): Promise<string> {
  const end = Date.now() + 30_000;
  for (;;) {
    const line = await firstLine(address);
    // 421: the gateway has not seen a live node yet (its directory catches up within a probe interval).
    if (!line.startsWith('421') || Date.now() > end) return line;
    await sleep(200);
  }
}

function firstLine(address: string): Promise<string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.once('data', (chunk: Buffer) => {
      resolve(chunk.toString().split('\r\n')[0]!);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

describe('an operator stops and restarts a gateway', () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  after(() => {
    for (const child of children) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('quill gateway exits 75 on restart and 0 on stop, the request consumed', async () => {
    const data = tempDir('quill-gw-stop-');
    dirs.push(data);
    const ports = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
    const store = await SqliteStore.open(data);
    try {
      const first = spawnQuill(['gateway', '--id', 'gw-a', '--data', data, ...ports]);
      children.push(first.child);
      await waitFor(store, 'gw-a', (m) => m?.state === 'active', 'the gateway to beat');
      const restart = await quill(['admin', 'restart', 'gw-a', '--data', data]);
      assert.equal(restart.code, 0, restart.stderr);
      assert.equal(await first.exit, 75, first.output());
      assert.match(first.output(), /gateway: stopping as an operator asked/);

      const second = spawnQuill(['gateway', '--id', 'gw-a', '--data', data, ...ports]);
      children.push(second.child);
      const again = await waitFor(store, 'gw-a', (m) => m?.state === 'active' && m.requestedState === null, 'the gateway to beat again');
      assert.ok(again);
      const drain = await quill(['drain', 'gw-a', '--data', data]);
      assert.notEqual(drain.code, 0, 'only nodes drain');
      assert.match(drain.stderr, /only nodes drain/);
      await sleep(1_500); // beats with no request pending: it must not stop again
      assert.equal(second.child.exitCode, null, 'started again under the same id, it keeps running');
      const stop = await quill(['admin', 'stop', 'gw-a', '--data', data]);
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal(await second.exit, 0, second.output());
      const actions = (await store.listAudit({ limit: 2 })).map((e) => [e.action, e.target]);
      assert.deepEqual(actions, [
        ['node.stop', 'gw-a'],
        ['node.restart', 'gw-a'],
      ]);
      const gone = await quill(['admin', 'stop', 'gw-a', '--data', data]);
      assert.notEqual(gone.code, 0, 'a gateway that is not running cannot be stopped');
    } finally {
      await store.close();
    }
  });

  it('quill start --nodes 1 starts its gateway again on restart', async () => {
    const data = tempDir('quill-local-gw-');
    dirs.push(data);
    const ports = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
    const store = await SqliteStore.open(data);
    try {
      const cluster = spawnQuill(['start', '--nodes', '1', '--data', data, ...ports]);
      children.push(cluster.child);
      const before = await waitFor(store, 'node-1', (m) => m?.state === 'active', 'the node');
      const gateway = (await store.listMembers()).find((m) => m.kind === 'gateway')!;
      assert.match(await greeting(gateway.addresses.smtp!), /^220 /);
      const restart = await quill(['admin', 'restart', gateway.id, '--data', data]);
      assert.equal(restart.code, 0, restart.stderr);
      const again = await waitFor(store, gateway.id, (m) => m !== undefined && m.startedAt.getTime() > gateway.startedAt.getTime() && m.state === 'active', 'the gateway to start again');
      assert.match(await greeting(again!.addresses.smtp!), /^220 /);
      const node = (await store.listMembers()).find((m) => m.id === 'node-1');
      assert.equal(node?.startedAt.getTime(), before!.startedAt.getTime(), 'the node was left alone');
      assert.equal(cluster.child.exitCode, null);
      cluster.child.kill('SIGTERM');
      assert.equal(await cluster.exit, 0, cluster.output());
    } finally {
      await store.close();
    }
  });
});
