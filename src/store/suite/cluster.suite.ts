// The store suite, Cluster role (membership heartbeats): every backend runs it (store.suite.ts).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { type Store } from '../types.js';
import { openWorld, type SharedStore } from './kit.js';

export function clusterSuite(shared: SharedStore): void {
  describe('Cluster', () => {
    let store: Store;
    before(async () => ({ store } = await openWorld(shared, 'cluster')));

    it('keeps membership heartbeats and passes requested states to the member', async () => {
      const load = { connections: { imap: 3 }, eventLoopDelayMs: 1.5, cpuPercent: 10, rssBytes: 1 << 20 };
      const member = { id: 'node-a', kind: 'node' as const, state: 'active' as const, version: '0.1.0', addresses: { imap: '127.0.0.1:1143' }, load, startedAt: new Date() };
      assert.equal(await store.heartbeat(member), null);
      assert.equal(await store.requestMemberState('node-a', 'draining'), true);
      assert.equal(await store.requestMemberState('nobody', 'draining'), false);
      assert.equal(await store.heartbeat({ ...member, state: 'draining' }), 'draining');
      const [listed] = (await store.listMembers()).filter((m) => m.id === 'node-a');
      assert.equal(listed?.state, 'draining');
      assert.deepEqual(listed?.load, load);
      assert.deepEqual(listed?.addresses, { imap: '127.0.0.1:1143' });
      await store.removeMember('node-a');
      assert.equal((await store.listMembers()).some((m) => m.id === 'node-a'), false);
    });
  });
}
