// The shared mailbox index against a real store: loaded once, caught up from the change feed
// (this process's writes and another process's, seen by SQLite's change polling), and evicted
// only when no session uses it.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../../test/helpers.js';
import { SqliteStore } from '../store/sqlite.js';
import { MailboxIndex, MailboxIndexes } from './mailbox-index.js';

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
});
