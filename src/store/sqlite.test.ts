import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { migrations } from './migrations.js';
import { SqliteStore } from './sqlite.js';
import { runStoreSuite } from './store.suite.js';
import { StoreError } from './types.js';

runStoreSuite('sqlite', {
  open: async () => SqliteStore.open(mkdtempSync(path.join(tmpdir(), 'quill-store-'))),
  openPeer: async (store) => SqliteStore.open(path.dirname((store as SqliteStore).file), { pollIntervalMs: 20 }),
});

describe('sqlite store faults', () => {
  it('fails a delivery with a temporary error when the database is full, and keeps earlier mail', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'quill-full-'));
    const store = await SqliteStore.open(dir, { maxDatabaseBytes: 400 * 1024 });
    await store.addDomain('example.com');
    const user = await store.addUser({ address: 'a@example.com', passwordHash: 'x' });
    const small = await store.deliver(Buffer.from('Subject: ok\r\n\r\nfits\r\n'), [{ userId: user.id }]);
    assert.equal(small.stored, true);
    await assert.rejects(store.deliver(Buffer.alloc(1024 * 1024, 'x'), [{ userId: user.id }]), (e: StoreError) => e.code === 'unavailable');
    const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
    assert.equal((await store.mailboxStatus(inbox.id)).messages, 1);
    await store.close();
  });
});

describe('sqlite write lock held by another process', () => {
  it('waits for it with the event loop running: timers and reads go on, the write lands when the lock is free', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'quill-busy-'));
    const store = await SqliteStore.open(dir, { busyTimeoutMs: 5000 });
    await store.addDomain('example.com');
    const user = await store.addUser({ address: 'busy@example.com', passwordHash: 'x' });
    const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
    await store.append(inbox.id, Buffer.from('Subject: one\r\n\r\nbody\r\n'), []);
    // Another connection (as another process: the CLI, an IMAP child) holds the write lock.
    const peer = new BetterSqlite3(store.file);
    peer.exec('begin immediate');
    const events: string[] = [];
    const write = store.setFlags(inbox.id, [1], 'add', ['\\Flagged']).then(() => events.push('write'));
    await sleep(30);
    events.push('timer');
    // A read goes on meanwhile (WAL: readers never wait for the writer).
    assert.equal((await store.getMailboxById(inbox.id))?.name, 'INBOX');
    events.push('read');
    peer.exec('commit');
    peer.close();
    await write;
    assert.deepEqual(events, ['timer', 'read', 'write']);
    assert.deepEqual((await store.listMessages(inbox.id))[0]?.flags, ['\\Flagged']);
    await store.close();
  });

  it('gives up with a temporary error once busyTimeoutMs has passed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'quill-busy-'));
    const store = await SqliteStore.open(dir, { busyTimeoutMs: 200 });
    await store.addDomain('example.com');
    const peer = new BetterSqlite3(store.file);
    peer.exec('begin immediate');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    await assert.rejects(store.addDomain('example.org'), (e: StoreError) => e.code === 'unavailable');
    clearInterval(timer);
    assert.ok(ticks >= 5, `the event loop ran while waiting (${ticks} ticks)`);
    peer.exec('rollback');
    peer.close();
    await store.addDomain('example.org');
    await store.close();
  });
});

describe('sqlite group commit', () => {
  it('runs writes issued together in one transaction, undoing a failing one alone', async () => {
    const store = await SqliteStore.open(mkdtempSync(path.join(tmpdir(), 'quill-group-')));
    await store.addDomain('example.com');
    const user = await store.addUser({ address: 'g@example.com', passwordHash: 'x' });
    await store.deliver(Buffer.from('Subject: one\r\n\r\nbody\r\n'), [{ userId: user.id }]);
    const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
    await store.createMailbox(user.id, 'Taken');
    // Issued in one turn of the event loop: they queue behind each other and share a transaction.
    const spied = store as unknown as { transact: (...args: unknown[]) => Promise<unknown> };
    const transact = spied.transact;
    let transactions = 0;
    spied.transact = (...args) => (transactions++, transact.apply(store, args));
    const results = await Promise.allSettled([
      store.setFlags(inbox.id, [1], 'add', ['\\Seen']),
      store.createMailbox(user.id, 'Taken'),
      store.createMailbox(user.id, 'Fresh'),
      store.setFlags(inbox.id, [1], 'add', ['\\Flagged']),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    assert.equal(transactions, 1);
    assert.equal(((results[1] as PromiseRejectedResult).reason as StoreError).code, 'conflict');
    assert.ok(await store.getMailbox(user.id, 'Fresh'));
    const [meta] = await store.listMessages(inbox.id);
    assert.deepEqual([...meta!.flags].sort(), ['\\Flagged', '\\Seen']);
    await store.close();
  });
});

describe('sqlite fsync before answering (store.fsyncFlagChanges)', () => {
  /** A store whose WAL fsync is held until release(): writes that wait for it cannot settle before. */
  async function heldStore(fsyncFlagChanges?: boolean) {
    const store = await SqliteStore.open(mkdtempSync(path.join(tmpdir(), 'quill-fsync-')), { fsyncFlagChanges });
    await store.addDomain('example.com');
    const user = await store.addUser({ address: 'f@example.com', passwordHash: 'x' });
    await store.deliver(Buffer.from('Subject: one\r\n\r\nbody\r\n'), [{ userId: user.id }]);
    await store.deliver(Buffer.from('Subject: two\r\n\r\nbody\r\n'), [{ userId: user.id }]);
    const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
    const spied = store as unknown as { durable: () => Promise<void> | undefined };
    const real = spied.durable.bind(store);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let syncs = 0;
    spied.durable = () => (syncs++, gate.then(() => real()));
    return { store, user, inbox, release, syncs: () => syncs };
  }
  /** Waits until a read shows a write committed, then a few turns of the event loop for its answer. */
  async function committed(visible: () => Promise<boolean>): Promise<void> {
    while (!(await visible())) await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  }
  const settled = <T>(promise: Promise<T>) => {
    const state = { done: false };
    promise.then(() => (state.done = true), () => (state.done = true));
    return state;
  };

  it('answers flag changes, expunges and \\Recent claims before the fsync, messages only after it', async () => {
    const { store, user, inbox, release, syncs } = await heldStore();
    // Issued together: one shared transaction, answered in two parts.
    const append = store.append(inbox.id, Buffer.from('Subject: three\r\n\r\nbody\r\n'), []);
    const delivery = store.deliver(Buffer.from('Subject: four\r\n\r\nbody\r\n'), [{ userId: user.id }]);
    const appended = settled(append);
    const delivered = settled(delivery);
    const flagging = store.setFlags(inbox.id, [1, 2], 'add', ['\\Deleted', 'kw']);
    const flagged = settled(flagging);
    // Committed (a read shows it), so answered at once; the messages stay unanswered until the fsync.
    await committed(() => store.getMessage(inbox.id, 2).then((m) => m!.flags.includes('kw')));
    assert.equal(flagged.done, true, 'STORE waited for the fsync');
    assert.deepEqual((await flagging).updated.map((u) => u.uid), [1, 2]);
    const expunging = store.expunge(inbox.id, [1]);
    const expunged = settled(expunging);
    await committed(() => store.getMessage(inbox.id, 1).then((m) => m === undefined));
    assert.equal(expunged.done, true, 'EXPUNGE waited for the fsync');
    assert.deepEqual(await expunging, [1]);
    const claiming = store.claimRecent(inbox.id, 2);
    const claimed = settled(claiming);
    await committed(() => store.getMailboxById(inbox.id).then((m) => m!.recentUid === 2));
    assert.equal(claimed.done, true, 'the \\Recent claim waited for the fsync');
    assert.equal(appended.done, false, 'APPEND answered before its fsync');
    assert.equal(delivered.done, false, 'delivery answered before its fsync');
    release();
    assert.equal((await append).uid, 3);
    assert.equal((await delivery).stored, true);
    assert.deepEqual((await store.listMessages(inbox.id)).map((m) => m.uid), [2, 3, 4]);
    const before = syncs();
    await store.setFlags(inbox.id, [2], 'remove', ['kw']);
    await store.close();
    assert.ok(syncs() > before, 'close() fsyncs what was answered before its fsync');
  });

  it('makes flag changes and expunges wait for the fsync when fsyncFlagChanges is set', async () => {
    const { store, inbox, release } = await heldStore(true);
    const flagged = store.setFlags(inbox.id, [1], 'add', ['\\Deleted']);
    const state = settled(flagged);
    // The change is committed (a read shows it) but not answered before the fsync.
    await committed(() => store.getMessage(inbox.id, 1).then((m) => m!.flags.includes('\\Deleted')));
    assert.equal(state.done, false);
    const expunged = settled(store.expunge(inbox.id));
    await committed(() => store.getMessage(inbox.id, 1).then((m) => m === undefined));
    assert.equal(expunged.done, false);
    release();
    assert.equal((await flagged).updated.length, 1);
    await store.close();
  });
});

describe('sqlite full-text indexer', () => {
  it('indexes mail after its commit, finds it at once, and indexes after a restart what was left queued', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'quill-fts-'));
    // A writer that never pauses long enough for the indexer: only searches index.
    const busy = await SqliteStore.open(dir, { textIndexIdleMs: 3_600_000 });
    await busy.addDomain('example.com');
    const user = await busy.addUser({ address: 'f@example.com', passwordHash: 'x' });
    const inbox = (await busy.getMailbox(user.id, 'INBOX'))!;
    const raw = new BetterSqlite3(path.join(dir, 'quill.db'), { readonly: true });
    const queued = () => (raw.prepare('select count(*) as n from text_pending').get() as { n: number }).n;
    const indexed = () => (raw.prepare('select count(*) as n from blob_text').get() as { n: number }).n;

    const first = await busy.deliver(Buffer.from('Subject: zoo\r\n\r\nA quokka smiles.\r\n'), [{ userId: user.id }]);
    assert.deepEqual([queued(), indexed()], [1, 0], 'the delivery only queued its words');
    assert.deepEqual(await busy.searchText(inbox.id, 'quokka'), [first.copies[0]!.uid], 'a search indexes what it needs first');
    assert.deepEqual([queued(), indexed()], [0, 1]);

    // Stopped (as by a crash) with a message queued: the next start indexes it unasked.
    const second = await busy.deliver(Buffer.from('Subject: zoo\r\n\r\nA wombat digs.\r\n'), [{ userId: user.id }]);
    await busy.close();
    assert.equal(queued(), 1);
    const store = await SqliteStore.open(dir, { textIndexIdleMs: 10 });
    for (let waited = 0; queued() > 0 && waited < 10_000; waited += 20) await sleep(20);
    assert.deepEqual([queued(), indexed()], [0, 2]);
    assert.deepEqual(await store.searchText(inbox.id, 'wombat'), [second.copies[0]!.uid]);
    raw.close();
    await store.close();
  });
});

describe('sqlite migrations', () => {
  it('moves cached parses out of the blobs table (008) and keeps them', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'quill-migrate-'));
    const raw = new BetterSqlite3(path.join(dir, 'quill.db'));
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: raw }) });
    const { error } = await new Migrator({ db, provider: migrations('sqlite') }).migrateTo('007_groups');
    assert.equal(error, undefined);
    await db.insertInto('blobs').values([
      { hash: 'h-parsed', size: 3, data: Buffer.from('one'), refs: 1, meta: '{"parsed":true}' },
      { hash: 'h-unparsed', size: 3, data: Buffer.from('two'), refs: 1, meta: null },
    ]).execute();
    await db.destroy();

    const store = await SqliteStore.open(dir);
    assert.equal(await store.getBlobMeta('h-parsed'), '{"parsed":true}');
    assert.equal(await store.getBlobMeta('h-unparsed'), null);
    assert.deepEqual(await store.getBlob('h-parsed'), Buffer.from('one'));
    await store.close();
  });

  it('indexes the words of mail stored before full-text search (009)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'quill-migrate-'));
    const first = await SqliteStore.open(dir);
    await first.addDomain('example.com');
    const user = await first.addUser({ address: 'old@example.com', passwordHash: 'x' });
    const inbox = (await first.getMailbox(user.id, 'INBOX'))!;
    const { uid } = await first.append(inbox.id, Buffer.from('Subject: old\r\n\r\nA letter about marmalade.\r\n'), []);
    await first.close();
    // Back to the state before 009 (and so before 010 to 013): their tables, triggers, indexes and column gone, and not recorded as run.
    const raw = new BetterSqlite3(path.join(dir, 'quill.db'));
    raw.exec(`drop trigger blobs_text_gone; drop trigger blob_text_gone; drop table blob_fts; drop table blob_text; drop index messages_blob_hash;
      drop table subscriptions; alter table users drop column display_name; drop table text_pending; drop index expunged_mailbox_modseq;
      delete from kysely_migration where name in ('009_full_text', '010_imap_subscriptions', '011_display_name', '012_text_pending', '013_expunged_modseq')`);
    raw.close();

    const store = await SqliteStore.open(dir);
    assert.deepEqual(await store.searchText(inbox.id, 'marmalade'), [uid]);
    await store.close();
  });
});
