// The store suite, Directory role (domains, users and their settings): every backend runs it (store.suite.ts).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { StoreError, type Store } from '../types.js';
import { msg, openWorld, type SharedStore } from './kit.js';

export function directorySuite(shared: SharedStore): void {
  describe('Directory', () => {
    let store: Store;
    let domain: string;
    let alice: number;
    let bob: number;
    before(async () => ({ store, alice, bob, domain } = await openWorld(shared, 'directory')));

    it('keeps domains and users case-insensitively and refuses duplicates', async () => {
      assert.equal((await store.getDomain(domain.toUpperCase()))?.name, domain);
      assert.equal((await store.getUser(`ALICE@${domain}`))?.id, alice);
      await assert.rejects(store.addDomain(domain), (e: StoreError) => e.code === 'conflict');
      await assert.rejects(store.addUser({ address: `alice@${domain}`, passwordHash: 'y' }), (e: StoreError) => e.code === 'conflict');
      await assert.rejects(store.addUser({ address: 'x@nowhere.test', passwordHash: 'y' }), (e: StoreError) => e.code === 'not-found');
      await assert.rejects(store.removeDomain(domain), (e: StoreError) => e.code === 'conflict');
    });

    it('creates the default mailboxes with special-use flags', async () => {
      const boxes = await store.listMailboxes(alice);
      assert.deepEqual(boxes.map((b) => b.name).sort(), ['Archive', 'Drafts', 'INBOX', 'Junk', 'Sent', 'Trash']);
      assert.equal(boxes.find((b) => b.name === 'Sent')?.specialUse, '\\Sent');
      const validities = new Set(boxes.map((b) => b.uidvalidity));
      assert.equal(validities.size, boxes.length, 'UIDVALIDITY is unique per mailbox');
    });

    it('keeps a display name per user (migration 011)', async () => {
      assert.equal((await store.getUser(`bob@${domain}`))?.displayName, '', 'none until set');
      await store.setDisplayName(`BOB@${domain}`, 'Bob “the” Builder');
      assert.equal((await store.getUser(`bob@${domain}`))?.displayName, 'Bob “the” Builder');
      assert.equal((await store.getUser(`alice@${domain}`))?.displayName, '', 'only that user');
      await store.setDisplayName(`bob@${domain}`, '');
      assert.equal((await store.getUser(`bob@${domain}`))?.displayName, '');
      await assert.rejects(store.setDisplayName(`ghost@${domain}`, 'Ghost'), (e: StoreError) => e.code === 'not-found');
    });

    it('disables users, makes admins and finds users page by page', async () => {
      await store.setUserDisabled(`BOB@${domain}`, true);
      assert.equal((await store.getUser(`bob@${domain}`))?.disabled, true);
      await store.setUserDisabled(`bob@${domain}`, false);
      assert.equal((await store.getUser(`bob@${domain}`))?.disabled, false);
      await store.setUserAdmin(`alice@${domain}`, true);
      assert.equal((await store.getUser(`alice@${domain}`))?.isAdmin, true);
      await store.setUserAdmin(`alice@${domain}`, false);
      await assert.rejects(store.setUserDisabled(`ghost@${domain}`, true), (e: StoreError) => e.code === 'not-found');
      for (const name of ['find_1', 'find%2', 'find-3']) await store.addUser({ address: `${name}@${domain}`, passwordHash: 'x' });
      const all = await store.searchUsers({ q: 'FIND' });
      assert.equal(all.total, 3);
      assert.deepEqual(all.users.map((u) => u.address), [`find%2@${domain}`, `find-3@${domain}`, `find_1@${domain}`]);
      const page = await store.searchUsers({ q: 'find', offset: 1, limit: 1 });
      assert.equal(page.total, 3);
      assert.deepEqual(page.users.map((u) => u.address), [`find-3@${domain}`]);
      // LIKE wildcards in the query are literal characters.
      assert.deepEqual((await store.searchUsers({ q: 'find_' })).users.map((u) => u.address), [`find_1@${domain}`]);
      assert.deepEqual((await store.searchUsers({ q: '%' })).users.map((u) => u.address), [`find%2@${domain}`]);
      assert.ok((await store.searchUsers({})).total >= 5);
      for (const name of ['find_1', 'find%2', 'find-3']) await store.removeUser(`${name}@${domain}`);
    });

    it('removes a user with all mail', async () => {
      const { copies } = await store.deliver(msg('farewell', 'only bob has these bytes'), [{ userId: bob }]);
      const hash = (await store.getMessage(copies[0]!.mailboxId, copies[0]!.uid))!.blobHash;
      await store.createSession({ idHash: `gone-with-bob@${domain}`, userId: bob, csrfToken: 't', expiresAt: new Date(Date.now() + 60_000) });
      await store.removeUser(`bob@${domain}`);
      assert.equal(await store.getBlob(hash), undefined, 'bytes no one refers to go');
      assert.equal(await store.getUser(`bob@${domain}`), undefined);
      await assert.rejects(store.removeUser(`bob@${domain}`), (e: StoreError) => e.code === 'not-found');
      assert.equal(await store.getSession(`gone-with-bob@${domain}`), undefined, 'sessions go with the user');
    });
  });
}
