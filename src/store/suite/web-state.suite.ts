// The store suite, WebState role (web sessions and the audit log): every backend runs it (store.suite.ts).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { StoreError, type Store } from '../types.js';
import { openWorld, type SharedStore } from './kit.js';

export function webStateSuite(shared: SharedStore): void {
  describe('WebState', () => {
    let store: Store;
    let domain: string;
    let alice: number;
    let bob: number;
    before(async () => ({ store, alice, bob, domain } = await openWorld(shared, 'web-state')));

    it('keeps web sessions until they expire, are deleted, or the user changes password', async () => {
      const later = new Date(Date.now() + 60_000);
      await store.createSession({ idHash: 'a1', userId: bob, csrfToken: 't1', expiresAt: later });
      await store.createSession({ idHash: 'a2', userId: bob, csrfToken: 't2', expiresAt: later });
      await store.createSession({ idHash: 'old', userId: bob, csrfToken: 't3', expiresAt: new Date(Date.now() - 1) });
      const got = await store.getSession('a1');
      assert.equal(got?.userId, bob);
      assert.equal(got?.csrfToken, 't1');
      assert.equal(got?.expiresAt.getTime(), later.getTime());
      assert.equal(await store.getSession('old'), undefined, 'expired');
      assert.equal(await store.getSession('nope'), undefined);
      await assert.rejects(store.createSession({ idHash: 'a1', userId: alice, csrfToken: 'x', expiresAt: later }), (e: StoreError) => e.code === 'conflict');
      await store.deleteUserSessions(bob, 'a1');
      assert.equal(await store.getSession('a2'), undefined);
      assert.ok(await store.getSession('a1'));
      await store.deleteSession('a1');
      assert.equal(await store.getSession('a1'), undefined);
      await store.createSession({ idHash: 'gone-with-bob', userId: bob, csrfToken: 't', expiresAt: later });
    });

    it('keeps an audit log, newest first, paged by id', async () => {
      const first = await store.addAudit({ actor: 'cli:root', action: 'user.disable', target: `bob@${domain}`, detail: null, node: null });
      const second = await store.addAudit({ actor: `alice@${domain}`, action: 'view', target: 'raw', detail: { uid: 3, mailbox: 'INBOX' }, node: 'node-1' });
      assert.ok(second.id > first.id);
      const [newest, older] = await store.listAudit({ limit: 2 });
      assert.deepEqual(newest, second);
      assert.equal(older?.id, first.id);
      assert.deepEqual(older?.detail, null);
      assert.equal(older?.actor, 'cli:root');
      assert.ok(older!.at instanceof Date && Math.abs(older!.at.getTime() - Date.now()) < 60_000);
      assert.deepEqual((await store.listAudit({ limit: 10, before: second.id })).map((e) => e.id)[0], first.id);
      assert.equal((await store.listAudit({ limit: 1 })).length, 1);
    });
  });
}
