// The store suite, Mailstore role (mailboxes, messages, flags, delivery and the change feed): every backend runs it (store.suite.ts).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { StoreError, type ChangeEvent, type Store } from '../types.js';
import { msg, openWorld, type SharedStore } from './kit.js';

export function mailstoreSuite(shared: SharedStore): void {
  describe('Mailstore', () => {
    let store: Store;
    let domain: string;
    let alice: number;
    let bob: number;
    before(async () => ({ store, alice, bob, domain } = await openWorld(shared, 'mailstore')));

    it('delivers one copy of the bytes to many recipients, exact bytes, with UIDs in order', async () => {
      const raw = Buffer.concat([msg('multi'), Buffer.from([0xc3, 0xa9, 0x00, 0x0d, 0x0a])]);
      const result = await store.deliver(raw, [{ userId: alice }, { userId: bob }]);
      assert.equal(result.stored, true);
      assert.equal(result.copies.length, 2);
      const inbox = (await store.getMailbox(alice, 'inbox'))!;
      const [meta] = await store.listMessages(inbox.id);
      assert.ok(meta);
      assert.equal(meta.uid, 1);
      assert.equal(meta.size, raw.length);
      assert.deepEqual(await store.getBlob(meta.blobHash), raw);
      const bobInbox = (await store.getMailbox(bob, 'INBOX'))!;
      const [bobMeta] = await store.listMessages(bobInbox.id);
      assert.equal(bobMeta?.blobHash, meta.blobHash, 'same content hash, stored once');
      assert.equal((await store.getUserById(alice))?.usedBytes, raw.length);
    });

    it('keeps concurrent writes apart: one failing leaves the others committed (SQLite shares their commit)', async () => {
      const box = await store.createMailbox(alice, 'Concurrent');
      const events: ChangeEvent[] = [];
      const unsubscribe = store.onChange((event) => events.push(event));
      try {
        const results = await Promise.allSettled([
          store.append(box.id, msg('c1'), []),
          store.createMailbox(alice, 'Concurrent'), // exists: fails alone
          store.append(box.id, msg('c2'), ['\\Seen']),
          store.createMailbox(alice, 'Concurrent/Child'),
          store.append(box.id, msg('c3'), []),
        ]);
        assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
        assert.equal(((results[1] as PromiseRejectedResult).reason as StoreError).code, 'conflict');
        const uids = results.filter((r, i) => i % 2 === 0 && r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<{ uid: number }>).value.uid);
        // UIDs in call order on SQLite's one writer; PostgreSQL's pool may commit them in any order.
        assert.deepEqual([...uids].sort((a, b) => a - b), [1, 2, 3]);
        const seen = uids[1]!;
        const listed = await store.listMessages(box.id);
        assert.deepEqual(listed.map((m) => [m.uid, m.flags]), [1, 2, 3].map((uid) => [uid, uid === seen ? ['\\Seen'] : []]));
        assert.ok(await store.getMailbox(alice, 'Concurrent/Child'));
        assert.equal(events.filter((e) => e.mailboxId === box.id && e.kind === 'append').length, 3);
      } finally {
        unsubscribe();
      }
    });

    it('stores a replayed transaction id only once', async () => {
      const inbox = (await store.getMailbox(alice, 'INBOX'))!;
      const before = (await store.mailboxStatus(inbox.id)).messages;
      const first = await store.deliver(msg('txn'), [{ userId: alice }], { txnId: 'txn-1' });
      const second = await store.deliver(msg('txn'), [{ userId: alice }], { txnId: 'txn-1' });
      assert.equal(first.stored, true);
      assert.equal(second.stored, false);
      assert.equal((await store.mailboxStatus(inbox.id)).messages, before + 1);
    });

    it('group-commits concurrent deliveries without losing or reordering any', async () => {
      const inbox = (await store.getMailbox(alice, 'INBOX'))!;
      const before = (await store.mailboxStatus(inbox.id)).messages;
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => store.deliver(msg(`bulk ${i}`), [{ userId: alice }])));
      const uids = results.map((r) => r.copies[0]!.uid);
      assert.equal(new Set(uids).size, 50);
      assert.equal((await store.mailboxStatus(inbox.id)).messages, before + 50);
    });

    it('writes a batch as single deliveries would: repeated ids, missing mailboxes, flags, byte counts, one modseq per mailbox', async () => {
      const dora = (await store.addUser({ address: `dora@${domain}`, passwordHash: 'x' })).id;
      await store.deliver(msg('replayed'), [{ userId: dora }], { txnId: 'batch-old' });
      const inbox = (await store.getMailbox(dora, 'INBOX'))!;
      const archive = (await store.getMailbox(dora, 'Archive'))!;
      const shared = msg('shared body');
      // Delivered in one turn of the event loop, so they share a batch where the backend groups them.
      const first = [{ userId: dora }, { userId: dora, mailbox: 'Archive', flags: ['\\seen', 'x'] }];
      const results = await Promise.all([
        store.deliver(msg('replayed'), [{ userId: dora }], { txnId: 'batch-old' }),
        store.deliver(msg('first'), first, { txnId: 'batch-new' }),
        store.deliver(msg('first'), first, { txnId: 'batch-new' }),
        store.deliver(shared, [{ userId: dora, mailbox: 'No Such Box' }]),
        store.deliver(shared, [{ userId: dora, flags: ['\\Deleted'] }]),
      ]);
      // Of the two with one id, one stores (the first in the batch; either where they race).
      assert.equal(results[0]!.stored, false);
      assert.deepEqual(results[0]!.copies, []);
      assert.equal(results[1]!.stored !== results[2]!.stored, true);
      const stored = [results[1]!.stored ? results[1]! : results[2]!, results[3]!, results[4]!];
      assert.ok(stored.every((r) => r.stored));
      assert.deepEqual(
        stored[0]!.copies.map((c) => c.mailboxId),
        [inbox.id, archive.id],
      );
      assert.equal(results[3]!.copies[0]!.mailboxId, inbox.id, 'a missing mailbox falls back to INBOX');
      const inInbox = await store.listMessages(inbox.id);
      assert.deepEqual(
        inInbox.map((m) => m.uid),
        [1, 2, 3, 4],
      );
      assert.deepEqual(stored.map((r) => r.copies[0]!.uid).sort(), [2, 3, 4]);
      assert.deepEqual(inInbox.find((m) => m.uid === results[4]!.copies[0]!.uid)!.flags, ['\\Deleted']);
      const inArchive = await store.listMessages(archive.id);
      assert.deepEqual(inArchive.map((m) => [m.uid, m.flags]), [[1, ['\\Seen', 'x']]]);
      const status = await store.mailboxStatus(inbox.id);
      assert.equal(status.messages, 4);
      assert.equal(status.unseen, 4);
      assert.equal(status.uidnext, 5);
      // Newer than the first delivery's modseq; the last one's is the mailbox's highest.
      const box = (await store.getMailboxById(inbox.id))!;
      assert.ok(inInbox.slice(1).every((m) => m.modseq <= box.highestModseq && m.modseq > inInbox[0]!.modseq));
      assert.equal(inInbox[3]!.modseq, box.highestModseq);
      const sharedCopies = inInbox.filter((m) => m.uid === results[3]!.copies[0]!.uid || m.uid === results[4]!.copies[0]!.uid);
      assert.equal(sharedCopies[0]!.blobHash, sharedCopies[1]!.blobHash, 'one blob for the same bytes');
      assert.deepEqual(await store.getBlob(sharedCopies[0]!.blobHash), shared);
      const bytes = [msg('replayed'), msg('first'), msg('first'), shared, shared].reduce((n, b) => n + b.length, 0);
      assert.equal((await store.getUser(`dora@${domain}`))!.usedBytes, bytes);
      await store.removeUser(`dora@${domain}`);
    });

    it('enforces quota on append and reports status', async () => {
      const inbox = (await store.getMailbox(bob, 'INBOX'))!;
      await assert.rejects(store.append(inbox.id, Buffer.alloc(2000, 'a'), []), (e: StoreError) => e.code === 'quota');
      const appended = await store.append(inbox.id, msg('small'), ['\\seen', 'custom']);
      const status = await store.mailboxStatus(inbox.id);
      assert.equal(status.messages, 2);
      assert.equal(status.unseen, 1);
      assert.equal(status.uidnext, appended.uid + 1);
      const meta = await store.getMessage(inbox.id, appended.uid);
      assert.deepEqual(meta?.flags, ['\\Seen', 'custom']);
    });

    it('updates flags with modseq and honours UNCHANGEDSINCE', async () => {
      const inbox = (await store.getMailbox(alice, 'INBOX'))!;
      const { highestModseq } = await store.mailboxStatus(inbox.id);
      const { updated } = await store.setFlags(inbox.id, [1, 2], 'add', ['\\Flagged']);
      assert.equal(updated.length, 2);
      assert.ok(updated[0]!.modseq > highestModseq);
      const { updated: none, failed } = await store.setFlags(inbox.id, [1], 'add', ['\\Seen'], highestModseq);
      assert.deepEqual(none, []);
      assert.deepEqual(failed, [1]);
      const { updated: removed } = await store.setFlags(inbox.id, [1], 'remove', ['\\flagged']);
      assert.deepEqual(removed[0]?.flags, []);
      const changed = await store.listMessages(inbox.id, { changedSince: highestModseq });
      assert.deepEqual(changed.map((m) => m.uid), [1, 2]);
    });

    it('expunges only \\Deleted messages, keeps tombstones and frees unreferenced bytes and their parse', async () => {
      const inbox = (await store.getMailbox(alice, 'INBOX'))!;
      const only = await store.deliver(msg('to be expunged', 'unique body 42'), [{ userId: alice }]);
      const uid = only.copies[0]!.uid;
      const meta = (await store.getMessage(inbox.id, uid))!;
      await store.setBlobMeta(meta.blobHash, 'parse of 42');
      const kept = (await store.listMessages(inbox.id)).find((m) => m.uid !== uid)!;
      await store.setBlobMeta(kept.blobHash, 'parse of another');
      const modseq = (await store.mailboxStatus(inbox.id)).highestModseq;
      assert.deepEqual(await store.expunge(inbox.id, [uid]), [], 'not \\Deleted yet');
      await store.setFlags(inbox.id, [uid], 'add', ['\\Deleted']);
      assert.deepEqual(await store.expunge(inbox.id), [uid]);
      assert.equal(await store.getMessage(inbox.id, uid), undefined);
      assert.deepEqual(await store.expungedSince(inbox.id, modseq), [uid]);
      assert.equal(await store.getBlob(meta.blobHash), undefined);
      assert.equal(await store.getBlobMeta(meta.blobHash), null);
      assert.equal(await store.getBlobMeta(kept.blobHash), 'parse of another');
    });

    it('copies and moves with new UIDs in the target', async () => {
      const inbox = (await store.getMailbox(alice, 'INBOX'))!;
      const archive = (await store.getMailbox(alice, 'Archive'))!;
      const copied = await store.copy(inbox.id, [1, 2], archive.id);
      assert.deepEqual(copied.map, [[1, 1], [2, 2]]);
      assert.equal(copied.uidvalidity, archive.uidvalidity);
      const moved = await store.move(inbox.id, [1], archive.id);
      assert.deepEqual(moved.map, [[1, 3]]);
      assert.equal(await store.getMessage(inbox.id, 1), undefined);
      assert.equal((await store.mailboxStatus(archive.id)).messages, 3);
    });

    it('creates, renames with children, renames INBOX and deletes mailboxes', async () => {
      await store.createMailbox(alice, 'Work');
      await store.createMailbox(alice, 'Work/Projects');
      await assert.rejects(store.createMailbox(alice, 'Work'), (e: StoreError) => e.code === 'conflict');
      await store.renameMailbox(alice, 'Work', 'Job');
      const names = (await store.listMailboxes(alice)).map((b) => b.name);
      assert.ok(names.includes('Job') && names.includes('Job/Projects') && !names.includes('Work'));
      const inbox = (await store.getMailbox(alice, 'INBOX'))!;
      const count = (await store.mailboxStatus(inbox.id)).messages;
      await store.renameMailbox(alice, 'INBOX', 'Old');
      assert.equal((await store.mailboxStatus(inbox.id)).messages, 0);
      assert.equal((await store.mailboxStatus((await store.getMailbox(alice, 'Old'))!.id)).messages, count);
      await store.deleteMailbox((await store.getMailbox(alice, 'Job/Projects'))!.id);
      await assert.rejects(store.deleteMailbox(inbox.id), (e: StoreError) => e.code === 'invalid');
      const recreated = await store.createMailbox(alice, 'Job/Projects');
      assert.ok(!(await store.listMailboxes(alice)).some((b) => b.id !== recreated.id && b.uidvalidity === recreated.uidvalidity));
    });

    it('tells other store handles of changes through the change feed', async () => {
      const peer = await shared.openPeer(store);
      try {
        const seen: ChangeEvent[] = [];
        const woke = new Promise<void>((resolve) => {
          peer.onChange((event) => {
            seen.push(event);
            if (event.kind === 'append') resolve();
          });
        });
        await store.deliver(msg('feed'), [{ userId: bob }]);
        await woke;
        const inbox = (await store.getMailbox(bob, 'INBOX'))!;
        assert.ok(seen.some((e) => e.userId === bob && e.mailboxId === inbox.id && e.kind === 'append'));
      } finally {
        await peer.close();
      }
    });

    it('claims \\Recent once', async () => {
      const inbox = (await store.getMailbox(bob, 'INBOX'))!;
      const status = await store.mailboxStatus(inbox.id);
      assert.ok(status.recent > 0);
      await store.claimRecent(inbox.id);
      assert.equal((await store.mailboxStatus(inbox.id)).recent, 0);
    });

    it('claims \\Recent up to a UID, never lowering the watermark', async () => {
      const box = await store.createMailbox(bob, `recent-${Date.now()}`);
      const first = await store.append(box.id, Buffer.from('Subject: r1\r\n\r\nx\r\n'), []);
      const second = await store.append(box.id, Buffer.from('Subject: r2\r\n\r\nx\r\n'), []);
      assert.equal(await store.claimRecent(box.id, first.uid), 0);
      assert.equal((await store.mailboxStatus(box.id)).recent, 1);
      // A claim below the watermark changes nothing and reports the watermark.
      assert.equal(await store.claimRecent(box.id, 0), first.uid);
      assert.equal(await store.claimRecent(box.id, second.uid + 10), first.uid);
      assert.equal(await store.claimRecent(box.id), second.uid);
      assert.equal((await store.mailboxStatus(box.id)).recent, 0);
    });
  });
}
