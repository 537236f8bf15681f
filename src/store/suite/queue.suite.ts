// The store suite, Queue role (the outbound queue and DKIM keys): every backend runs it (store.suite.ts).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { type Store } from '../types.js';
import { msg, openWorld, type SharedStore } from './kit.js';

export function queueSuite(shared: SharedStore): void {
  describe('Queue', () => {
    let store: Store;
    let domain: string;
    let alice: number;
    before(async () => ({ store, alice, domain } = await openWorld(shared, 'queue')));

    it('queues foreign recipients in the same commit and lists them', async () => {
      const result = await store.deliver(msg('out'), [], { outbound: { sender: `alice@${domain}`, recipients: ['x@remote.test', 'y@other.test'] } });
      assert.equal(result.outboundIds.length, 2);
      // Only this part queues mail, but the store is shared: look at this delivery's entries.
      const mine = (e: { id: number }) => result.outboundIds.includes(e.id);
      const queue = (await store.listOutbound()).filter(mine);
      assert.deepEqual(queue.map((q) => q.domain), ['remote.test', 'other.test']);
      assert.equal(queue[0]!.status, 'queued');
      assert.equal(await store.setOutboundStatus(result.outboundIds[0]!, 'held'), true);
      assert.equal((await store.getOutbound(result.outboundIds[0]!))?.status, 'held');
      assert.equal(await store.deleteOutbound(result.outboundIds[1]!), true);
      assert.equal((await store.listOutbound()).filter(mine).length, 1);
    });

    it('leases outbound entries to one worker at a time and lets dead leases expire', async () => {
      const { outboundIds } = await store.deliver(msg('lease'), [], { outbound: { sender: `alice@${domain}`, recipients: ['l1@lease.test', 'l2@lease.test'] } });
      const mine = (e: { id: number }) => outboundIds.includes(e.id);
      const first = (await store.leaseOutbound('worker-1', 60_000, 100)).filter(mine);
      assert.deepEqual(first.map((e) => e.id), outboundIds);
      assert.deepEqual((await store.leaseOutbound('worker-2', 60_000, 100)).filter(mine), [], 'leased entries are not handed out twice');
      assert.equal(await store.finishOutbound(outboundIds[0]!, 'worker-2'), false, 'only the lease owner may finish');
      assert.equal(await store.finishOutbound(outboundIds[0]!, 'worker-1'), true);
      const later = new Date(Date.now() + 3_600_000);
      assert.equal(await store.deferOutbound(outboundIds[1]!, 'worker-1', '451 try later', later, true), true);
      const deferred = (await store.getOutbound(outboundIds[1]!))!;
      assert.equal(deferred.attempts, 1);
      assert.equal(deferred.lastError, '451 try later');
      assert.equal(deferred.warned, true);
      assert.deepEqual((await store.leaseOutbound('worker-2', 60_000, 100)).filter(mine), [], 'not due yet');
      await store.setOutboundStatus(outboundIds[1]!, 'queued');
      const expiring = (await store.leaseOutbound('worker-2', 1, 100)).filter(mine);
      assert.deepEqual(expiring.map((e) => e.id), [outboundIds[1]]);
      await new Promise((resolve) => setTimeout(resolve, 10));
      assert.deepEqual((await store.leaseOutbound('worker-3', 60_000, 100)).filter(mine).map((e) => e.id), [outboundIds[1]], 'an expired lease is taken over');
      assert.equal(await store.finishOutbound(outboundIds[1]!, 'worker-3'), true);
    });

    it('postpones a leased entry without counting an attempt', async () => {
      const { outboundIds } = await store.deliver(msg('postpone'), [], { outbound: { sender: `alice@${domain}`, recipients: ['p1@postpone.test'] } });
      const mine = (e: { id: number }) => outboundIds.includes(e.id);
      assert.equal((await store.leaseOutbound('worker-1', 60_000, 100)).filter(mine).length, 1);
      assert.equal(await store.postponeOutbound(outboundIds[0]!, 'worker-2', new Date()), false, 'only the lease owner may postpone');
      const soon = new Date(Date.now() + 150);
      assert.equal(await store.postponeOutbound(outboundIds[0]!, 'worker-1', soon), true);
      const postponed = (await store.getOutbound(outboundIds[0]!))!;
      assert.equal(postponed.attempts, 0);
      assert.equal(postponed.nextAttemptAt.getTime(), soon.getTime());
      assert.deepEqual((await store.leaseOutbound('worker-2', 60_000, 100)).filter(mine), [], 'not due before the time given');
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal((await store.leaseOutbound('worker-2', 60_000, 100)).filter(mine).length, 1, 'due again, and free to lease');
      assert.equal(await store.finishOutbound(outboundIds[0]!, 'worker-2'), true);
    });

    it('keeps one DKIM key per domain', async () => {
      assert.equal(await store.getDkimKey(domain), undefined);
      await store.setDkimKey(domain.toUpperCase(), 's1', 'KEY1');
      await store.setDkimKey(domain, 's2', 'KEY2');
      assert.deepEqual(await store.getDkimKey(domain.toUpperCase()), { selector: 's2', privateKeyPem: 'KEY2' });
    });
  });
}
