// The shared store suite on PostgreSQL, plus what only a networked, concurrent engine has:
// racing writers in several processes, NOTIFY across them, lost connections and COMMITs
// with an unknown outcome. One PostgreSQL server for the file, a fresh database per case.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import { postgresAvailable, startPostgres, type PgServer } from '../../test/pg-server.js';
import { hashBytes } from './kysely-store.js';
import { parsePgUrl } from './pg-pool.js';
import { PostgresStore, type CommitCheck, type PostgresOptions } from './postgres.js';
import { runStoreSuite } from './store.suite.js';
import { StoreError, type ChangeEvent, type DeliveryResult, type Store } from './types.js';

const skip = postgresAvailable() ? false : 'PostgreSQL 15 is not installed';
let server: Promise<PgServer> | undefined;
const pg = () => (server ??= startPostgres());
after(async () => {
  if (server) (await server).destroy();
});

const urls = new WeakMap<Store, string>();
async function open(url?: string, options: PostgresOptions = {}): Promise<PostgresStore> {
  const target = url ?? (await (await pg()).createDatabase());
  const store = await PostgresStore.open(target, options);
  urls.set(store, target);
  return store;
}

const msg = (subject: string) => Buffer.from(`From: a@example.org\r\nSubject: ${subject}\r\n\r\nbody\r\n`);
const isUnavailable = (e: unknown) => e instanceof StoreError && e.code === 'unavailable';

async function withUser(store: Store): Promise<{ userId: number; inbox: number }> {
  await store.addDomain('example.com');
  const user = await store.addUser({ address: 'a@example.com', passwordHash: 'x' });
  return { userId: user.id, inbox: (await store.getMailbox(user.id, 'INBOX'))!.id };
}

if (!skip) {
  runStoreSuite('postgres', {
    open: () => open(),
    openPeer: (store) => open(urls.get(store)),
  });
}

describe('postgres store', { skip }, () => {
  it('parses single and multi-host URLs', () => {
    const one = parsePgUrl('postgres://quill:s%40cret@db.example:6432/mail');
    assert.deepEqual(one.hosts, [{ host: 'db.example', port: 6432 }]);
    assert.equal(one.password, 's@cret');
    assert.equal(one.targetSessionAttrs, 'any');
    const many = parsePgUrl('postgres://autoctl_node@127.0.0.1:5501,127.0.0.1:5502/quill?target_session_attrs=read-write&sslmode=prefer');
    assert.deepEqual(many.hosts.map((h) => h.port), [5501, 5502]);
    assert.equal(many.targetSessionAttrs, 'read-write');
    assert.throws(() => parsePgUrl('mysql://x/y'));
  });

  it('gives unique, gap-free UIDs to concurrent deliveries from two processes', async () => {
    const a = await open();
    const b = await open(urls.get(a));
    try {
      const { userId, inbox } = await withUser(a);
      const each = 100;
      const deliveries = [a, b].flatMap((store, s) =>
        Array.from({ length: each }, (_, i) => store.deliver(msg(`${s}-${i}`), [{ userId }, { userId, mailbox: 'Archive' }])),
      );
      // Appends and mailbox creation race the deliveries too (row locks, UIDVALIDITY counter).
      const appends = Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).append(inbox, msg(`append ${i}`), []));
      const creates = Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).createMailbox(userId, `Box${i}`));
      // The same bytes stored at once from both: the blob upsert must count every reference.
      const same = [a, b].map((store) => store.deliver(msg('identical'), [{ userId }]));
      await Promise.all([...deliveries, ...appends, ...creates, ...same]);
      const uids = await a.listUids(inbox);
      const total = 2 * each + 20 + 2;
      assert.deepEqual(uids, Array.from({ length: total }, (_, i) => i + 1));
      assert.equal((await a.mailboxStatus(inbox)).uidnext, total + 1);
      const archive = (await a.getMailbox(userId, 'Archive'))!;
      assert.deepEqual(await a.listUids(archive.id), Array.from({ length: 2 * each }, (_, i) => i + 1));
      const validities = (await a.listMailboxes(userId)).map((m) => m.uidvalidity);
      assert.equal(new Set(validities).size, validities.length, 'UIDVALIDITY unique');
      const blobHash = hashBytes(msg('identical'));
      const users = await a.getUserById(userId);
      const sizes = (await a.listMessages(inbox)).reduce((n, m) => n + m.size, 0) + (await a.listMessages(archive.id)).reduce((n, m) => n + m.size, 0);
      assert.equal(users?.usedBytes, sizes);
      // Both references to the shared bytes are counted: expunging one copy keeps the other.
      const copies = (await a.listMessages(inbox)).filter((m) => m.blobHash === blobHash);
      assert.equal(copies.length, 2);
      await a.setFlags(inbox, [copies[0]!.uid], 'add', ['\\Deleted']);
      await a.expunge(inbox);
      assert.ok(await b.getBlob(blobHash));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('indexes after a restart what was left queued, two processes sharing the queue', async () => {
    // A writer that never pauses long enough for its indexer, stopped with its mail still queued.
    const busy = await open(undefined, { textIndexIdleMs: 3_600_000 });
    const url = urls.get(busy)!;
    const { userId, inbox } = await withUser(busy);
    await Promise.all(Array.from({ length: 40 }, (_, i) => busy.deliver(msg(`pangolin ${i}`), [{ userId }])));
    await busy.close();
    const watcher = await open(url, { textIndexIdleMs: 3_600_000 });
    const db = (watcher as unknown as { db: Kysely<unknown> }).db;
    const count = async (table: string) => Number((await sql<{ n: string }>`select count(*) as n from ${sql.table(table)}`.execute(db)).rows[0]!.n);
    assert.deepEqual([await count('text_pending'), await count('blob_text')], [40, 0], 'deliveries only queue their words');
    const [a, b] = await Promise.all([open(url, { textIndexIdleMs: 10 }), open(url, { textIndexIdleMs: 10 })]);
    try {
      for (let waited = 0; (await count('text_pending')) > 0 && waited < 10_000; waited += 50) await sleep(50);
      assert.deepEqual([await count('text_pending'), await count('blob_text')], [0, 40]);
      assert.equal((await watcher.searchText(inbox, 'pangolin')).length, 40);
    } finally {
      await Promise.all([a.close(), b.close(), watcher.close()]);
    }
  });

  it('runs migrations from several nodes at once', async () => {
    const url = await (await pg()).createDatabase();
    const stores = await Promise.all(Array.from({ length: 4 }, () => open(url)));
    assert.deepEqual(await stores[0]!.pendingMigrations(), []);
    await Promise.all(stores.map((s) => s.close()));
  });

  /** Makes every COMMIT wait for a synchronous standby that never answers, for the duration of fn. */
  async function withMissingStandby(server: PgServer, fn: () => Promise<void>): Promise<void> {
    server.psql(`alter system set synchronous_standby_names = 'nobody'`);
    server.psql('select pg_reload_conf()');
    try {
      await fn();
    } finally {
      server.psql('alter system reset synchronous_standby_names');
      server.psql('select pg_reload_conf()');
    }
  }

  async function backendWaitingForStandby(server: PgServer): Promise<number> {
    for (let i = 0; i < 100; i++) {
      const pid = server.psql(`select pid from pg_stat_activity where wait_event = 'SyncRep' limit 1`);
      if (pid !== '') return Number(pid);
      await sleep(50);
    }
    throw new Error('no COMMIT is waiting for the standby');
  }

  it('confirms a delivery whose COMMIT was cut off once the database can tell', async () => {
    const server = await pg();
    const checks: CommitCheck[] = [];
    const store = await open(undefined, { commitCheckMs: 10_000, onCommitCheck: (check) => checks.push(check) });
    try {
      const { userId, inbox } = await withUser(store);
      let delivery!: Promise<DeliveryResult>;
      await withMissingStandby(server, async () => {
        delivery = store.deliver(msg('confirmed'), [{ userId }]);
        // Committed locally, then the session dies: the store cannot know from the reply.
        server.psql(`select pg_terminate_backend(${await backendWaitingForStandby(server)})`);
      });
      // With the standby requirement gone the check can commit, and finds the batch's marker.
      const result = await delivery;
      assert.equal(result.stored, true);
      assert.deepEqual(await store.listUids(inbox), [result.copies[0]!.uid]);
      // The lookup is reported (log line and metric in server.ts) with its result.
      assert.deepEqual(checks.map((c) => c.outcome), ['committed']);
    } finally {
      await store.close();
    }
  });

  it('stores a delivery once when COMMIT is cut off and the sender retries with its txnId', async () => {
    const server = await pg();
    // The check gives up while the standby is still missing.
    const checks: CommitCheck[] = [];
    const store = await open(undefined, { commitCheckMs: 500, onCommitCheck: (check) => checks.push(check) });
    try {
      const { userId, inbox } = await withUser(store);
      await withMissingStandby(server, async () => {
        const delivery = store.deliver(msg('in doubt'), [{ userId }], { txnId: 'txn-in-doubt' });
        // The session dies while COMMIT waits: committed locally, the client cannot know.
        server.psql(`select pg_terminate_backend(${await backendWaitingForStandby(server)})`);
        await assert.rejects(delivery, (e: StoreError) => isUnavailable(e) && /outcome unknown/.test(e.message));
      });
      assert.deepEqual(checks.map((c) => c.outcome), ['unknown']);
      // The retry finds the txnId and stores nothing more.
      const retry = await store.deliver(msg('in doubt'), [{ userId }], { txnId: 'txn-in-doubt' });
      assert.equal(retry.stored, false);
      assert.equal((await store.mailboxStatus(inbox)).messages, 1);
    } finally {
      await store.close();
    }
  });

  it('does not acknowledge a COMMIT whose wait for the standby was cancelled', async () => {
    const server = await pg();
    const checks: CommitCheck[] = [];
    const store = await open(undefined, { commitCheckMs: 500, onCommitCheck: (check) => checks.push(check) });
    try {
      const { userId } = await withUser(store);
      await withMissingStandby(server, async () => {
        const delivery = store.deliver(msg('not replicated'), [{ userId }]);
        // A cancelled wait makes PostgreSQL report COMMIT as done, with only a WARNING.
        server.psql(`select pg_cancel_backend(${await backendWaitingForStandby(server)})`);
        await assert.rejects(delivery, (e: StoreError) => isUnavailable(e) && /standby/.test(e.message));
      });
    } finally {
      await store.close();
    }
  });

  it('fails fast with unavailable when the server does not answer', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    const started = Date.now();
    try {
      await assert.rejects(PostgresStore.open(`postgres://postgres@127.0.0.1:${port}/x`, { connectTimeoutMs: 300 }), isUnavailable);
      assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
    } finally {
      silent.close();
    }
  });

  it('answers unavailable while the server is down and recovers without a restart, feed included', async () => {
    const server = await pg();
    const store = await open();
    const peer = await open(urls.get(store));
    try {
      const { userId, inbox } = await withUser(store);
      server.stopServer();
      const started = Date.now();
      await assert.rejects(store.getUser('a@example.com'), isUnavailable);
      await assert.rejects(store.deliver(msg('while down'), [{ userId }]), isUnavailable);
      assert.ok(Date.now() - started < 5000);
      server.start();
      assert.equal((await store.getUser('a@example.com'))?.id, userId);
      await peer.feedReady();
      const seen: ChangeEvent[] = [];
      const woke = new Promise<void>((resolve) => peer.onChange((e) => (seen.push(e), e.kind === 'append' && resolve())));
      await store.deliver(msg('after restart'), [{ userId }]);
      await woke;
      assert.ok(seen.some((e) => e.mailboxId === inbox));
      assert.equal((await store.mailboxStatus(inbox)).messages, 1);
    } finally {
      await Promise.all([store.close(), peer.close()]);
    }
  });
});
