// `quill admin restart` and `quill admin stop` against `quill start --nodes 1`: a restarted
// node exits 75 and the local cluster starts it again; a stopped node exits 0 and stays down.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SqliteStore } from '../src/store/sqlite.js';
import type { Member } from '../src/store/types.js';
import { tempDir, runQuill as quill } from './helpers.js';


describe('quill admin stop and restart on a local cluster', () => {
  const data = tempDir('quill-local-admin-');
  let child: ChildProcess;
  let store: SqliteStore;
  let output = '';

  async function member(predicate: (m: Member | undefined) => boolean, what: string): Promise<Member | undefined> {
    const end = Date.now() + 60_000;
    for (;;) {
      const found = (await store.listMembers()).find((m) => m.id === 'node-1');
      if (predicate(found)) return found;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${output}`);
      await sleep(100);
    }
  }

  before(async () => {
    const ports = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
    child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start', '--nodes', '1', '--data', data, ...ports], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    store = await SqliteStore.open(data);
  });

  after(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await store.close();
    rmSync(data, { recursive: true, force: true });
  });

  it('restarts a node through its supervisor, and a stopped node stays down', async () => {
    const first = await member((m) => m?.state === 'active', 'node-1');
    const restart = await quill(['admin', 'restart', 'node-1', '--data', data]);
    assert.equal(restart.code, 0, restart.stderr);
    const again = await member((m) => m !== undefined && m.startedAt.getTime() > first!.startedAt.getTime(), 'node-1 to come back');
    assert.equal(again?.requestedState, null, 'the request was consumed');
    assert.match(output, /"code":75.*node exited; starting it again/);

    const stop = await quill(['admin', 'stop', 'node-1', '--data', data]);
    assert.equal(stop.code, 0, stop.stderr);
    await member((m) => m === undefined, 'node-1 to leave');
    await sleep(2_500); // longer than the local cluster's restart delay
    assert.equal((await store.listMembers()).some((m) => m.id === 'node-1'), false, 'still down');
    assert.match(output, /node stopped; not starting it again/);
    assert.equal([...output.matchAll(/local cluster: node started/g)].length, 2, 'started once, restarted once');

    const actions = (await store.listAudit({ limit: 2 })).map((e) => [e.action, e.target]);
    assert.deepEqual(actions, [
      ['node.stop', 'node-1'],
      ['node.restart', 'node-1'],
    ]);
  });
});
