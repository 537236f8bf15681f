// The one suite every Store backend must pass (SQLite now, PostgreSQL later).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { StoreError, type ChangeEvent, type Store } from './types.js';

export interface StoreFactory {
  /** A fresh, empty store. */
  open(): Promise<Store>;
  /** A second handle on the same data, as another process would have (for the change feed). */
  openPeer(store: Store): Promise<Store>;
}

const msg = (subject: string, body = 'hello') => Buffer.from(`From: a@example.org\r\nTo: b@example.com\r\nSubject: ${subject}\r\n\r\n${body}\r\n`);

export function runStoreSuite(name: string, factory: StoreFactory): void {
  describe(`store suite: ${name}`, () => {
    let store: Store;
    let alice: number;
    let bob: number;

    before(async () => {
      store = await factory.open();
      await store.addDomain('Example.com');
      alice = (await store.addUser({ address: 'Alice@Example.com', passwordHash: 'x' })).id;
      bob = (await store.addUser({ address: 'bob@example.com', passwordHash: 'x', quotaBytes: 1000 })).id;
    });
    after(async () => store.close());

    it('keeps domains and users case-insensitively and refuses duplicates', async () => {
      assert.equal((await store.getDomain('EXAMPLE.COM'))?.name, 'example.com');
      assert.equal((await store.getUser('ALICE@example.com'))?.id, alice);
      await assert.rejects(store.addDomain('example.com'), (e: StoreError) => e.code === 'conflict');
      await assert.rejects(store.addUser({ address: 'alice@example.com', passwordHash: 'y' }), (e: StoreError) => e.code === 'conflict');
      await assert.rejects(store.addUser({ address: 'x@nowhere.test', passwordHash: 'y' }), (e: StoreError) => e.code === 'not-found');
      await assert.rejects(store.removeDomain('example.com'), (e: StoreError) => e.code === 'conflict');
    });

    it('creates the default mailboxes with special-use flags', async () => {
      const boxes = await store.listMailboxes(alice);
      assert.deepEqual(boxes.map((b) => b.name).sort(), ['Archive', 'Drafts', 'INBOX', 'Junk', 'Sent', 'Trash']);
      assert.equal(boxes.find((b) => b.name === 'Sent')?.specialUse, '\\Sent');
      const validities = new Set(boxes.map((b) => b.uidvalidity));
      assert.equal(validities.size, boxes.length, 'UIDVALIDITY is unique per mailbox');
    });

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

    it('reads blobs and their meta in batches and writes many metas at once', async () => {
      const inbox = (await store.getMailbox(alice, 'INBOX'))!;
      await store.deliver(msg('batch one'), [{ userId: alice }]);
      await store.deliver(msg('batch two'), [{ userId: alice }]);
      const hashes = (await store.listMessages(inbox.id)).map((m) => m.blobHash);
      const blobs = await store.getBlobs([...hashes, hashes[0]!, 'no-such-hash']);
      assert.equal(blobs.size, new Set(hashes).size);
      for (const hash of hashes) assert.deepEqual(blobs.get(hash), await store.getBlob(hash));
      assert.equal((await store.getBlobMetas(hashes)).size, 0);
      // A hash given twice (the last one counts) and one not stored (skipped).
      await store.setBlobMetas([[hashes[0]!, 'stale'], ...hashes.map((hash, i): [string, string] => [hash, `meta ${i}`]), ['no-such-hash', 'a parse of nothing stored']]);
      const metas = await store.getBlobMetas([...hashes, 'no-such-hash']);
      assert.equal(metas.size, new Set(hashes).size);
      assert.equal(metas.get(hashes[hashes.length - 1]!), `meta ${hashes.length - 1}`);
      assert.equal(await store.getBlobMeta(hashes[hashes.length - 1]!), `meta ${hashes.length - 1}`);
      assert.equal(await store.getBlobMeta(hashes[0]!), 'meta 0');
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
      const dora = (await store.addUser({ address: 'dora@example.com', passwordHash: 'x' })).id;
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
      assert.equal((await store.getUser('dora@example.com'))!.usedBytes, bytes);
      await store.removeUser('dora@example.com');
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

    it('queues foreign recipients in the same commit and lists them', async () => {
      const result = await store.deliver(msg('out'), [], { outbound: { sender: 'alice@example.com', recipients: ['x@remote.test', 'y@other.test'] } });
      assert.equal(result.outboundIds.length, 2);
      const queue = await store.listOutbound();
      assert.deepEqual(queue.map((q) => q.domain), ['remote.test', 'other.test']);
      assert.equal(queue[0]!.status, 'queued');
      assert.equal(await store.setOutboundStatus(result.outboundIds[0]!, 'held'), true);
      assert.equal((await store.getOutbound(result.outboundIds[0]!))?.status, 'held');
      assert.equal(await store.deleteOutbound(result.outboundIds[1]!), true);
      assert.equal((await store.listOutbound()).length, 1);
    });

    it('leases outbound entries to one worker at a time and lets dead leases expire', async () => {
      const { outboundIds } = await store.deliver(msg('lease'), [], { outbound: { sender: 'alice@example.com', recipients: ['l1@lease.test', 'l2@lease.test'] } });
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
      const { outboundIds } = await store.deliver(msg('postpone'), [], { outbound: { sender: 'alice@example.com', recipients: ['p1@postpone.test'] } });
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
      assert.equal(await store.getDkimKey('example.com'), undefined);
      await store.setDkimKey('Example.com', 's1', 'KEY1');
      await store.setDkimKey('example.com', 's2', 'KEY2');
      assert.deepEqual(await store.getDkimKey('EXAMPLE.com'), { selector: 's2', privateKeyPem: 'KEY2' });
    });

    it('tells other store handles of changes through the change feed', async () => {
      const peer = await factory.openPeer(store);
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

    it('keeps a display name per user (migration 011)', async () => {
      assert.equal((await store.getUser('bob@example.com'))?.displayName, '', 'none until set');
      await store.setDisplayName('BOB@example.com', 'Bob “the” Builder');
      assert.equal((await store.getUser('bob@example.com'))?.displayName, 'Bob “the” Builder');
      assert.equal((await store.getUser('alice@example.com'))?.displayName, '', 'only that user');
      await store.setDisplayName('bob@example.com', '');
      assert.equal((await store.getUser('bob@example.com'))?.displayName, '');
      await assert.rejects(store.setDisplayName('ghost@example.com', 'Ghost'), (e: StoreError) => e.code === 'not-found');
    });

    it('disables users, makes admins and finds users page by page', async () => {
      await store.setUserDisabled('BOB@example.com', true);
      assert.equal((await store.getUser('bob@example.com'))?.disabled, true);
      await store.setUserDisabled('bob@example.com', false);
      assert.equal((await store.getUser('bob@example.com'))?.disabled, false);
      await store.setUserAdmin('alice@example.com', true);
      assert.equal((await store.getUser('alice@example.com'))?.isAdmin, true);
      await store.setUserAdmin('alice@example.com', false);
      await assert.rejects(store.setUserDisabled('ghost@example.com', true), (e: StoreError) => e.code === 'not-found');
      for (const name of ['find_1', 'find%2', 'find-3']) await store.addUser({ address: `${name}@example.com`, passwordHash: 'x' });
      const all = await store.searchUsers({ q: 'FIND' });
      assert.equal(all.total, 3);
      assert.deepEqual(all.users.map((u) => u.address), ['find%2@example.com', 'find-3@example.com', 'find_1@example.com']);
      const page = await store.searchUsers({ q: 'find', offset: 1, limit: 1 });
      assert.equal(page.total, 3);
      assert.deepEqual(page.users.map((u) => u.address), ['find-3@example.com']);
      // LIKE wildcards in the query are literal characters.
      assert.deepEqual((await store.searchUsers({ q: 'find_' })).users.map((u) => u.address), ['find_1@example.com']);
      assert.deepEqual((await store.searchUsers({ q: '%' })).users.map((u) => u.address), ['find%2@example.com']);
      assert.ok((await store.searchUsers({})).total >= 5);
      for (const name of ['find_1', 'find%2', 'find-3']) await store.removeUser(`${name}@example.com`);
    });

    it('keeps an audit log, newest first, paged by id', async () => {
      const first = await store.addAudit({ actor: 'cli:root', action: 'user.disable', target: 'bob@example.com', detail: null, node: null });
      const second = await store.addAudit({ actor: 'alice@example.com', action: 'view', target: 'raw', detail: { uid: 3, mailbox: 'INBOX' }, node: 'node-1' });
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

    it('says where its data is', async () => {
      const status = await store.status();
      assert.equal(status.kind, store.kind);
      if (status.kind === 'sqlite') {
        assert.match(status.path, /quill\.db$/);
        assert.ok(status.sizeBytes > 0);
      } else {
        assert.ok(status.groups.length >= 1);
        assert.ok(status.groups[0]!.hosts.some((h) => h.role === 'primary' && h.lagBytes === 0));
      }
    });

    it('keeps a drive per user: folders, chunked files, resumable uploads, quota shared with mail', async () => {
      const carol = (await store.addUser({ address: 'carol@example.com', passwordHash: 'x', quotaBytes: 10_000 })).id;
      await store.deliver(msg('mail counts too'), [{ userId: carol }]);
      const mailBytes = (await store.getUserById(carol))!.usedBytes;
      const docs = await store.createDriveFolder(carol, null, 'Docs');
      assert.equal(docs.parentId, null);
      await assert.rejects(store.createDriveFolder(carol, null, 'Docs'), (e: StoreError) => e.code === 'conflict', 'one name per folder, the root too');
      for (const bad of ['', 'a/b', '..', 'x'.repeat(256), 'tab\there']) {
        await assert.rejects(store.createDriveFolder(carol, null, bad), (e: StoreError) => e.code === 'invalid', JSON.stringify(bad));
      }
      const inner = await store.createDriveFolder(carol, docs.id, 'Inner');
      await assert.rejects(store.createDriveFolder(alice, docs.id, 'Mine'), (e: StoreError) => e.code === 'not-found', "not into another user's folder");

      const bytes = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
      const upload = await store.createDriveUpload(carol, { parentId: inner.id, name: 'data.bin', size: bytes.length, contentType: 'application/x-test' });
      assert.equal(upload.received, 0);
      const first = await store.appendDriveUpload(carol, upload.id, 0, bytes.subarray(0, 1000));
      assert.equal(first.upload.received, 1000);
      assert.equal(first.file, null);
      assert.deepEqual(await store.listDrive(carol, inner.id), [], 'no file before the last chunk');
      await assert.rejects(store.appendDriveUpload(carol, upload.id, 500, bytes.subarray(500, 1000)), (e: StoreError) => e.code === 'conflict', 'continues where it stopped');
      await assert.rejects(store.appendDriveUpload(alice, upload.id, 1000, bytes.subarray(1000)), (e: StoreError) => e.code === 'not-found');
      assert.equal((await store.getDriveUpload(carol, upload.id))?.received, 1000);
      await store.appendDriveUpload(carol, upload.id, 1000, bytes.subarray(1000, 2200));
      const last = await store.appendDriveUpload(carol, upload.id, 2200, bytes.subarray(2200));
      assert.ok(last.file);
      assert.equal(last.file.size, bytes.length);
      assert.equal(last.file.contentType, 'application/x-test');
      assert.equal(await store.getDriveUpload(carol, upload.id), undefined, 'done');
      const read = async (range?: { start: number; end: number }) => {
        const parts: Buffer[] = [];
        for await (const part of store.readDriveFile(carol, last.file!.id, range)) parts.push(part);
        return Buffer.concat(parts);
      };
      assert.deepEqual(await read(), bytes);
      assert.deepEqual(await read({ start: 990, end: 1010 }), bytes.subarray(990, 1011), 'a range across chunks');
      assert.deepEqual(await read({ start: 2999, end: 5000 }), bytes.subarray(2999));
      await assert.rejects(store.readDriveFile(alice, last.file.id).next(), (e: StoreError) => e.code === 'not-found', "not another user's file");
      assert.equal((await store.getUserById(carol))!.usedBytes, mailBytes + bytes.length);

      await assert.rejects(store.createDriveUpload(carol, { parentId: null, name: 'big.bin', size: 10_000 }), (e: StoreError) => e.code === 'quota');
      const empty = await store.createDriveUpload(carol, { parentId: null, name: 'empty.txt', size: 0 });
      assert.equal((await store.appendDriveUpload(carol, empty.id, 0, Buffer.alloc(0))).file?.size, 0);
      const dropped = await store.createDriveUpload(carol, { parentId: null, name: 'dropped.bin', size: 500 });
      await store.appendDriveUpload(carol, dropped.id, 0, Buffer.alloc(200));
      assert.equal((await store.getUserById(carol))!.usedBytes, mailBytes + bytes.length + 200, 'stored chunks count');
      await store.cancelDriveUpload(carol, dropped.id);
      assert.equal((await store.getUserById(carol))!.usedBytes, mailBytes + bytes.length);

      // Two uploads of one name at once: the one that ends second gets a name of its own.
      const one = await store.createDriveUpload(carol, { parentId: inner.id, name: 'same.txt', size: 2 });
      const two = await store.createDriveUpload(carol, { parentId: inner.id, name: 'same.txt', size: 2 });
      assert.equal((await store.appendDriveUpload(carol, one.id, 0, Buffer.from('1!'))).file?.name, 'same.txt');
      assert.equal((await store.appendDriveUpload(carol, two.id, 0, Buffer.from('2!'))).file?.name, 'same (2).txt');

      const renamed = await store.updateDriveNode(carol, last.file.id, { name: 'renamed.bin', parentId: null });
      assert.equal(renamed.parentId, null);
      assert.deepEqual((await store.listDrive(carol, null)).map((n) => `${n.kind}:${n.name}`), ['folder:Docs', 'file:empty.txt', 'file:renamed.bin']);
      await assert.rejects(store.updateDriveNode(carol, docs.id, { parentId: inner.id }), (e: StoreError) => e.code === 'invalid', 'no cycles');
      await assert.rejects(store.updateDriveNode(carol, docs.id, { parentId: docs.id }), (e: StoreError) => e.code === 'invalid');
      await assert.rejects(store.updateDriveNode(carol, renamed.id, { name: 'Docs' }), (e: StoreError) => e.code === 'conflict');
      await store.updateDriveNode(carol, renamed.id, { parentId: inner.id });
      assert.equal(await store.deleteDriveNode(carol, docs.id), bytes.length + 4, 'a folder goes with everything in it');
      assert.deepEqual((await store.listDrive(carol, null)).map((n) => n.name), ['empty.txt']);
      assert.equal(await store.getDriveNode(carol, renamed.id), undefined);
      await assert.rejects(store.listDrive(carol, inner.id), (e: StoreError) => e.code === 'not-found');
      assert.equal((await store.getUserById(carol))!.usedBytes, mailBytes, 'quota freed');

      const expiring = await store.createDriveUpload(carol, { parentId: null, name: 'late.bin', size: 100, ttlMs: -1 });
      assert.equal(await store.getDriveUpload(carol, expiring.id), undefined, 'expired');
      await store.removeUser('carol@example.com');
    });

    it('finds messages by the words of their bodies, HTML, encoded parts and text attachments (issue 21)', async () => {
      const box = await store.createMailbox(alice, 'Searchable');
      const plain = Buffer.from('From: a@example.org\r\nSubject: one\r\n\r\nThe zeppelin lands at dawn.\r\n');
      const html = Buffer.from(
        'From: a@example.org\r\nSubject: two\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<style>.zeppelin{}</style><p>Crème <b>brûlée</b> for&nbsp;dessert</p>\r\n',
      );
      const mixed = Buffer.from(
        [
          'From: a@example.org',
          'Subject: three',
          'Content-Type: multipart/mixed; boundary=b',
          '',
          '--b',
          'Content-Type: text/plain; charset=iso-8859-1',
          'Content-Transfer-Encoding: quoted-printable',
          '',
          'Gr=FC=DFe aus K=F6ln',
          '--b',
          'Content-Type: text/plain; name=notes.txt',
          'Content-Disposition: attachment; filename=notes.txt',
          'Content-Transfer-Encoding: base64',
          '',
          Buffer.from('the quarterly walrus report').toString('base64'),
          '--b--',
          '',
        ].join('\r\n'),
      );
      const one = await store.append(box.id, plain, []);
      const two = await store.append(box.id, html, []);
      const three = (await store.deliver(mixed, [{ userId: alice, mailbox: 'Searchable' }])).copies[0]!.uid;
      const search = (q: string) => store.searchText(box.id, q);
      assert.deepEqual(await search('zeppelin'), [one.uid], 'a plain body word; not the HTML part’s style sheet');
      assert.deepEqual(await search('ZEPP'), [one.uid], 'word prefixes, any case');
      assert.deepEqual(await search('brûlée dessert'), [two.uid], 'HTML text, every word');
      assert.deepEqual(await search('köln'), [three], 'quoted-printable Latin-1');
      assert.deepEqual(await search('walrus'), [three], 'a text attachment');
      assert.deepEqual(await search('zeppelin walrus'), [], 'all words must match');
      assert.deepEqual(await search('"; drop table blobs; --'), [], 'query syntax is not passed through');
      // Another user's mail with the same words is not found here; deleting drops the words.
      const other = await store.createMailbox(bob, 'Elsewhere');
      await store.append(other.id, Buffer.from('From: x@example.org\r\n\r\nzeppelin\r\n'), []);
      assert.deepEqual(await search('zeppelin'), [one.uid]);
      await store.setFlags(box.id, [one.uid], 'add', ['\\Deleted']);
      await store.expunge(box.id);
      assert.deepEqual(await search('zeppelin'), []);
      assert.equal((await store.searchText(other.id, 'zeppelin')).length, 1);
      // A message too long to index whole is offered to searches that must not miss it (IMAP).
      const long = await store.append(box.id, Buffer.from(`From: a@example.org\r\n\r\n${'filler '.repeat(30_000)}albatross\r\n`), []);
      assert.deepEqual(await search('albatross'), []);
      assert.deepEqual(await store.searchText(box.id, 'albatross', { orPartial: true }), [long.uid]);
      await store.deleteMailbox(box.id);
      await store.deleteMailbox(other.id);
    });

    it('removes a user with all mail', async () => {
      await store.removeUser('bob@example.com');
      assert.equal(await store.getUser('bob@example.com'), undefined);
      await assert.rejects(store.removeUser('bob@example.com'), (e: StoreError) => e.code === 'not-found');
      assert.equal(await store.getSession('gone-with-bob'), undefined, 'sessions go with the user');
    });
  });
}
