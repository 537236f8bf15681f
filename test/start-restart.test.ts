// `quill admin restart` against a plain `quill start` (no supervisor): the process starts its
// server again by itself instead of exiting 75 and staying down (issue 21).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SqliteStore } from '../src/store/sqlite.js';
import type { Member } from '../src/store/types.js';
import { tempDir, runQuill as quill } from './helpers.js';


describe('quill start restarts itself', () => {
  const data = tempDir('quill-start-restart-');
  let child: ChildProcess;
  let store: SqliteStore;
  let output = '';

  async function member(predicate: (m: Member | undefined) => boolean, what: string): Promise<Member | undefined> {
    const end = Date.now() + 60_000;
    for (;;) {
      const [found] = await store.listMembers();
      if (predicate(found)) return found;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${output}`);
      await sleep(100);
    }
  }

  before(async () => {
    const ports = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
    child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start', '--data', data, ...ports], { stdio: ['ignore', 'pipe', 'pipe'] });
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

  it('comes back in the same process after a restart request', async () => {
    const first = await member((m) => m?.state === 'active', 'the server');
    const restart = await quill(['admin', 'restart', first!.id, '--data', data]);
    assert.equal(restart.code, 0, restart.stderr);
    const again = await member((m) => m !== undefined && m.state === 'active' && m.startedAt.getTime() > first!.startedAt.getTime(), 'the server to come back');
    assert.equal(again?.requestedState, null, 'the request was consumed');
    assert.equal(child.exitCode, null, 'the same process, still running');
    assert.match(output, /restarting in this process/);
  });
});
