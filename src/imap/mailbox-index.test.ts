// The shared mailbox index against a real store: loaded once, caught up from the change feed
// (this process's writes and another process's, seen by SQLite's change polling), and evicted
// only when no session uses it.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../../test/helpers.js';
import { SqliteStore } from '../store/sqlite.js';
import { loadSummaries, MailboxIndex, MailboxIndexes } from './mailbox-index.js';
import { MessageCache, parseMessage, summaryOf } from './message/parsed.js';

const msg = (subject: string): Buffer => Buffer.from(`Subject: ${subject}\r\n\r\nbody\r\n`);

describe('shared mailbox index', () => {
  const dir = tempDir('quill-index-');
  let store: SqliteStore;
  let other: SqliteStore;
  let userId: number;

  before(async () => {
    store = await SqliteStore.open(dir, { pollIntervalMs: 20 });
    other = await SqliteStore.open(dir, { pollIntervalMs: 20 });
    await store.addDomain('example.com');
    userId = (await store.addUser({ address: 'ix@example.com', passwordHash: 'x' })).id;
  });
  after(async () => {
    await other.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads once and catches up with appends, flag changes and expunges from the change feed', async () => {
    const box = await store.createMailbox(userId, 'Index1');
    for (const s of ['a', 'b', 'c']) await store.append(box.id, msg(s), []);
    const indexes = new MailboxIndexes(store);
    const unsubscribe = store.onChange((event) => indexes.changed(event));
    try {
      const index = await indexes.acquire(box.id);
      assert.deepEqual(index.uids, [1, 2, 3]);
      const before = index.uids;
      const start = index.modseq;

      await store.append(box.id, msg('d'), ['\\Seen']);
      await store.setFlags(box.id, [2], 'add', ['\\Flagged']);
      await index.fresh();
      assert.deepEqual(index.uids, [1, 2, 3, 4]);
      assert.deepEqual(before, [1, 2, 3], 'the array a session holds is never changed in place');
      assert.deepEqual(index.get(2)?.flags, ['\\Flagged']);
      assert.deepEqual(index.get(4)?.flags, ['\\Seen']);
      assert.deepEqual(
        index.changedSince(start, index.loadGen)?.map((e) => e.uid),
        [2, 4],
      );

      const gen = index.expungeGen;
      await store.setFlags(box.id, [1, 3], 'add', ['\\Deleted']);
      await store.expunge(box.id);
      await index.fresh();
      assert.deepEqual(index.uids, [2, 4]);
      assert.ok(index.expungeGen > gen);
      assert.deepEqual(index.pick([1, 2, 3, 4, 5]).map((e) => e.uid), [2, 4]);
      indexes.release(index);
    } finally {
      unsubscribe();
    }
  });

  it("follows this process's flag changes and expunges without reading them back, and reads back anything else", async () => {
    const box = await store.createMailbox(userId, 'Index5');
    for (const s of ['a', 'b', 'c', 'd']) await store.append(box.id, msg(s), []);
    const indexes = new MailboxIndexes(store);
    const unsubscribe = store.onChange((event) => indexes.changed(event));
    // Counts the index's reads of changed rows (MailboxIndex.catchUp) through a counting view of the store.
    let reads = 0;
    const counted = new Proxy(store, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property);
        if (typeof value !== 'function') return value;
        if (property === 'listMessages') return (...args: unknown[]) => (reads++, (value as (...a: unknown[]) => unknown).apply(target, args));
        return (value as (...a: unknown[]) => unknown).bind(target);
      },
    });
    const own = new MailboxIndexes(counted);
    const unsubscribeOwn = store.onChange((event) => own.changed(event));
    try {
      const index = await own.acquire(box.id);
      const loaded = reads;
      const start = index.modseq;
      const flagged = await store.setFlags(box.id, [2, 3], 'add', ['\\Flagged', '$Seen2']);
      await index.fresh();
      assert.equal(reads, loaded, 'a flag change of this process is not read back');
      assert.deepEqual(index.get(2)?.flags, ['\\Flagged', '$Seen2']);
      assert.equal(index.get(3)?.modseq, flagged.updated[0]!.modseq);
      assert.equal(index.modseq, start + 1);
      assert.deepEqual(index.changedSince(start, index.loadGen)?.map((e) => e.uid), [2, 3]);
      const gen = index.expungeGen;
      await store.setFlags(box.id, [1], 'add', ['\\Deleted']);
      await store.expunge(box.id);
      await index.fresh();
      assert.equal(reads, loaded, 'nor is an expunge');
      assert.deepEqual(index.uids, [2, 3, 4]);
      assert.ok(index.expungeGen > gen);
      // Nor is an APPEND of this process: the new message with its row id, size, date and hash.
      const uidNext = index.uidNext;
      const appended = await store.append(box.id, msg('e'), ['\\Draft'], new Date('2026-01-02T03:04:05Z'));
      await index.fresh();
      assert.equal(reads, loaded, 'nor an append');
      assert.deepEqual(index.uids, [2, 3, 4, 5]);
      assert.equal(appended.uid, 5);
      assert.equal(index.uidNext, uidNext + 1);
      // Another process's change is seen only by polling: read back, and this process's next change with it.
      await other.setFlags(box.id, [4], 'add', ['\\Answered']);
      await store.setFlags(box.id, [5], 'add', ['\\Seen']);
      await index.fresh();
      // This process's change is one modseq past a change the index has not read: it reads both.
      assert.ok(reads > loaded);
      assert.deepEqual(index.get(4)?.flags, ['\\Answered']);
      assert.deepEqual(index.get(5)?.flags, ['\\Draft', '\\Seen']);
      // The same index state as a fresh load from the store.
      const check = await indexes.acquire(box.id);
      assert.deepEqual(check.uids, index.uids);
      const row = (ix: MailboxIndex, uid: number) => {
        const e = ix.get(uid)!;
        return [e.id, e.uid, e.flags, e.modseq, e.size, e.internalDate.getTime(), e.blobHash];
      };
      assert.deepEqual(check.uids.map((uid) => row(check, uid)), index.uids.map((uid) => row(index, uid)));
      assert.equal(check.modseq, index.modseq);
      assert.equal(check.uidNext, index.uidNext);
      indexes.release(check);
      own.release(index);
    } finally {
      unsubscribeOwn();
      unsubscribe();
    }
  });

  it("sees another process's writes through the store's change polling", async () => {
    const box = await store.createMailbox(userId, 'Index2');
    await store.append(box.id, msg('one'), []);
    const indexes = new MailboxIndexes(store);
    let events = 0;
    const unsubscribe = store.onChange((event) => {
      events++;
      indexes.changed(event);
    });
    try {
      const index = await indexes.acquire(box.id);
      assert.deepEqual(index.uids, [1]);
      const seen = events;
      await other.append(box.id, msg('two'), []);
      await other.setFlags(box.id, [1], 'add', ['\\Answered']);
      for (let i = 0; i < 100 && events < seen + 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      await index.fresh();
      assert.deepEqual(index.uids, [1, 2]);
      assert.deepEqual(index.get(1)?.flags, ['\\Answered']);
      indexes.release(index);
    } finally {
      unsubscribe();
    }
  });

  it('falls back to a scan when its change log no longer reaches back far enough', async () => {
    const box = await store.createMailbox(userId, 'Index3');
    await store.append(box.id, msg('x'), []);
    const index = new MailboxIndex(box.id, store);
    index.markStale();
    await index.fresh();
    const start = index.modseq;
    for (let i = 0; i < 300; i++) {
      await store.setFlags(box.id, [1], i % 2 === 0 ? 'add' : 'remove', ['\\Flagged']);
      index.markStale();
      await index.fresh();
    }
    assert.equal(index.changedSince(start, index.loadGen), undefined);
    assert.deepEqual(
      index.changedSince(index.modseq - 1, index.loadGen)?.map((e) => e.uid),
      [1],
    );
  });

  it('keeps indexes in use and evicts unused ones past the limit, least recently used first', async () => {
    const boxes = [];
    for (const name of ['Evict1', 'Evict2', 'Evict3']) {
      const box = await store.createMailbox(userId, name);
      await store.append(box.id, msg(name), []);
      await store.append(box.id, msg(`${name} 2`), []);
      boxes.push(box);
    }
    const indexes = new MailboxIndexes(store, { idleMessages: 3 });
    const held = await indexes.acquire(boxes[0]!.id);
    const second = await indexes.acquire(boxes[1]!.id);
    indexes.release(second);
    assert.ok(indexes.peek(boxes[1]!.id), 'two unused messages are within the limit');
    const third = await indexes.acquire(boxes[2]!.id);
    indexes.release(third);
    assert.equal(indexes.peek(boxes[1]!.id), undefined, 'the least recently used unused index went first');
    assert.ok(indexes.peek(boxes[2]!.id));
    assert.ok(indexes.peek(boxes[0]!.id), 'an index in use is never evicted');
    indexes.release(held);
  });

  // The index holds messages column-wise: every field read back must be the store's, by UID, across gaps.
  const sameAsStore = async (index: MailboxIndex, mailboxId: number): Promise<void> => {
    const rows = await store.listMessages(mailboxId);
    assert.deepEqual(index.uids, rows.map((r) => r.uid));
    for (const row of rows) {
      const e = index.get(row.uid)!;
      assert.deepEqual(
        { id: e.id, mailboxId: e.mailboxId, uid: e.uid, blobHash: e.blobHash, size: e.size, date: e.internalDate.getTime(), flags: [...e.flags].sort(), modseq: e.modseq },
        { id: row.id, mailboxId: row.mailboxId, uid: row.uid, blobHash: row.blobHash, size: row.size, date: row.internalDate.getTime(), flags: [...row.flags].sort(), modseq: row.modseq },
      );
    }
  };

  it('keeps every field of every message across UID gaps, an expunge in the middle and appends after it', async () => {
    const box = await store.createMailbox(userId, 'Columns1');
    for (let i = 1; i <= 10; i++) await store.append(box.id, msg(`gap ${i}`.padEnd(10 + i, 'x')), i % 2 ? ['\\Seen'] : [], new Date(Date.UTC(2026, 0, i)));
    const index = new MailboxIndex(box.id, store);
    index.markStale();
    await index.fresh();
    await loadSummaries(index.all(), new MessageCache(store));
    const before = index.get(4)!;
    const hashOf4 = before.blobHash;

    await store.setFlags(box.id, [3, 4, 7], 'add', ['\\Deleted']);
    await store.expunge(box.id);
    await store.append(box.id, msg('gap 11'), ['$Label1']);
    await store.setFlags(box.id, [8], 'add', ['\\Flagged']);
    index.markStale();
    await index.fresh();
    assert.deepEqual(index.uids, [1, 2, 5, 6, 8, 9, 10, 11]);
    await sameAsStore(index, box.id);
    assert.equal(index.get(3), undefined);
    assert.equal(index.get(0), undefined);
    assert.equal(index.get(12), undefined);
    assert.deepEqual(index.pick([1, 3, 4, 5, 7, 8, 11, 12]).map((e) => e.uid), [1, 5, 8, 11]);
    assert.deepEqual(index.all().map((e) => e.uid), index.uids);
    assert.equal(before.blobHash, hashOf4, 'an entry taken before the expunge still reads its own message');
    // Summaries stayed with their messages; the new one has none until asked.
    for (const uid of [1, 2, 5, 6, 8, 9, 10]) assert.equal(index.get(uid)!.summary?.root.envelope?.[1], `gap ${uid}`.padEnd(10 + uid, 'x'));
    assert.equal(index.get(11)!.summary, undefined);
    assert.deepEqual(await index.status(0), { messages: 8, unseen: 5, recent: 8, size: index.all().reduce((n, e) => n + e.size, 0), uidnext: 12, highestModseq: index.modseq });
  });

  it('numbers flag lists with many keywords, and renumbers once old lists outnumber the messages', async () => {
    const box = await store.createMailbox(userId, 'Columns2');
    const keywords = Array.from({ length: 40 }, (_, i) => `kw${i}`);
    await store.append(box.id, msg('many'), keywords);
    await store.append(box.id, msg('some'), ['\\Seen', ...keywords.slice(30)]);
    await store.append(box.id, msg('none'), []);
    const index = new MailboxIndex(box.id, store);
    index.markStale();
    await index.fresh();
    await sameAsStore(index, box.id);
    assert.equal(index.firstUnseenUid(), 1);
    const inUse = new Set(index.flagListsInUse().flat());
    for (const k of keywords) assert.ok(inUse.has(k), k);

    // 150 distinct lists on message 3 (more than 64 + 2 per message): old lists are dropped.
    for (let i = 0; i < 150; i++) {
      await store.setFlags(box.id, [3], 'replace', [`churn${i}`, ...(i === 149 ? ['\\Seen'] : [])]);
      index.markStale();
      await index.fresh();
    }
    await store.setFlags(box.id, [1], 'add', ['\\Seen']);
    index.markStale();
    await index.fresh();
    await sameAsStore(index, box.id);
    assert.deepEqual(new Set(index.flagListsInUse().flat()), new Set(['\\Seen', 'churn149', ...keywords]));
    assert.equal(index.firstUnseenUid(), 0);
    assert.equal((await index.status(0))!.unseen, 0);
  });

  it('packs header summaries: folded fields for SEARCH, the envelope and References as they were', async () => {
    const box = await store.createMailbox(userId, 'Columns3');
    const raw = Buffer.from(
      'From: =?utf-8?q?Ren=C3=A9e?= <renee@example.org>\r\nTo: a@example.com, "B  Two" <b@example.com>\r\n' +
        'Subject: =?utf-8?q?Caf=C3=A9_=01_Two?=   SPACES\r\nReferences: <r1@x> <r2@x>\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n',
    );
    await store.append(box.id, raw, []);
    const index = new MailboxIndex(box.id, store);
    index.markStale();
    await index.fresh();
    const first = index.all();
    await loadSummaries(first, new MessageCache(store));
    const original = summaryOf(parseMessage(raw));
    const packed = index.get(1)!.summary!;
    assert.notEqual(packed, original);
    assert.deepEqual(packed.root.envelope, original.root.envelope);
    assert.ok(first[0]!.summary, 'the entries given to loadSummaries read it too');
    assert.equal(packed.references, '<r1@x> <r2@x>');
    assert.equal(packed.folded?.subject, 'café   two spaces');
    assert.equal(packed.folded?.from, 'renée <renee@example.org>');
    assert.equal(packed.folded?.to, 'a@example.com, b two <b@example.com>');
    assert.equal(packed.folded?.cc, '');
    assert.equal(packed.folded?.bcc, '');
  });
});
