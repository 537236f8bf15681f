// `quill admin restart` and `quill admin stop` against `quill start --nodes 1`: a restarted
// node exits 75 and the local cluster starts it again; a stopped node exits 0 and stays down.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Member } from '../src/store/types.js';
import { runQuill as quill } from './helpers.js';
import { QuillStart } from './start-kit.js';

describe('quill admin stop and restart on a local cluster', () => {
  const quillStart = new QuillStart('quill-local-admin-', ['--nodes', '1']);
  const data = quillStart.data;
  const member = (predicate: (m: Member | undefined) => boolean, what: string) => quillStart.member((members) => members.find((m) => m.id === 'node-1'), predicate, what);

  before(() => quillStart.start());
  after(() => quillStart.stop());

  it('restarts a node through its supervisor, and a stopped node stays down', async () => {
    const first = await member((m) => m?.state === 'active', 'node-1');
    const restart = await quill(['admin', 'restart', 'node-1', '--data', data]);
    assert.equal(restart.code, 0, restart.stderr);
    const again = await member((m) => m !== undefined && m.startedAt.getTime() > first!.startedAt.getTime(), 'node-1 to come back');
    assert.equal(again?.requestedState, null, 'the request was consumed');
    assert.match(quillStart.output, /"code":75.*node exited; starting it again/);

    const stop = await quill(['admin', 'stop', 'node-1', '--data', data]);
    assert.equal(stop.code, 0, stop.stderr);
    await member((m) => m === undefined, 'node-1 to leave');
    await sleep(2_500); // longer than the local cluster's restart delay
    assert.equal((await quillStart.store.listMembers()).some((m) => m.id === 'node-1'), false, 'still down');
    assert.match(quillStart.output, /node stopped; not starting it again/);
    assert.equal([...quillStart.output.matchAll(/local cluster: node started/g)].length, 2, 'started once, restarted once');

    const actions = (await quillStart.store.listAudit({ limit: 2 })).map((e) => [e.action, e.target]);
    assert.deepEqual(actions, [
      ['node.stop', 'node-1'],
      ['node.restart', 'node-1'],
    ]);
  });
});
