// The shared store suite on a store of two groups (a directory database and two group
// databases on one PostgreSQL server), plus what only groups have: ids that name their group,
// deliveries split over groups, least-loaded placement, and user moves.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { postgresAvailable, startPostgres, type PgServer } from '../../test/pg-server.js';
import { GROUP_ID_SPAN, groupIndexOf } from './directory.js';
import { addGroup, isGroupedStore, openPostgres, type GroupedStore } from './grouped-store.js';
import { runStoreSuite } from './store.suite.js';
import { moveUser } from './user-move.js';
import { StoreError, type Store } from './types.js';

const skip = postgresAvailable() ? false : 'PostgreSQL 15 is not installed';
let server: Promise<PgServer> | undefined;
const pg = () => (server ??= startPostgres());
after(async () => {
  if (server) (await server).destroy();
});

const directories = new WeakMap<Store, string>();

/** A directory and `groups` group databases on the test server; returns the directory URL. */
async function makeGroups(groups = 2): Promise<string> {
  const s = await pg();
  const directory = await s.createDatabase('quill_dir');
  for (let i = 0; i < groups; i++) await addGroup(directory, `g${i}`, await s.createDatabase(`quill_g${i}`));
  return directory;
}

async function open(url?: string): Promise<GroupedStore> {
  const directory = url ?? (await makeGroups());
  const store = await openPostgres(directory, { poolSize: 4 });
  assert.ok(isGroupedStore(store));
  directories.set(store, directory);
  return store;
}

const msg = (subject: string) => Buffer.from(`From: a@example.org\r\nSubject: ${subject}\r\n\r\nbody of ${subject}\r\n`);

if (!skip) {
  runStoreSuite('postgres, two groups', {
    open: () => open(),
    openPeer: (store) => open(directories.get(store)),
  });
}

describe('grouped store', { skip }, () => {
  it('places new users in the least-loaded group, or the one asked for, and ids name the group', async () => {
    const store = await open();
    try {
      await store.addDomain('example.com');
      const a = await store.addUser({ address: 'a@example.com', passwordHash: 'x' });
      const b = await store.addUser({ address: 'b@example.com', passwordHash: 'x' });
      const c = await store.addUserIn({ address: 'c@example.com', passwordHash: 'x' }, 'g1');
      assert.deepEqual([a, b, c].map((u) => groupIndexOf(u.id)), [0, 1, 1]);
      // g0 has one user, g1 two: the next goes to g0.
      const d = await store.addUser({ address: 'd@example.com', passwordHash: 'x' });
      assert.equal(groupIndexOf(d.id), 0);
      const inbox = (await store.getMailbox(c.id, 'INBOX'))!;
      assert.ok(inbox.id > GROUP_ID_SPAN, 'the second group counts from 2^40');
      const loads = await store.loads();
      assert.deepEqual(loads.map((l) => [l.name, l.users]), [['g0', 2], ['g1', 2]]);
      assert.deepEqual((await store.listUsers()).map((u) => u.address), ['a@example.com', 'b@example.com', 'c@example.com', 'd@example.com']);
      await assert.rejects(store.addUserIn({ address: 'e@example.com', passwordHash: 'x' }, 'nope'), (e: StoreError) => e.code === 'not-found');
      await assert.rejects(store.addUser({ address: 'B@example.com', passwordHash: 'x' }), (e: StoreError) => e.code === 'conflict');
    } finally {
      await store.close();
    }
  });

  it('stores one delivery to users of both groups, and foreign recipients in the directory, once each', async () => {
    const store = await open();
    try {
      await store.addDomain('example.com');
      const a = await store.addUser({ address: 'a@example.com', passwordHash: 'x' });
      const b = await store.addUser({ address: 'b@example.com', passwordHash: 'x' });
      assert.notEqual(groupIndexOf(a.id), groupIndexOf(b.id));
      const options = { txnId: 'txn-both', outbound: { sender: 'a@example.com', recipients: ['x@remote.test'] } };
      const first = await store.deliver(msg('both'), [{ userId: a.id }, { userId: b.id }], options);
      assert.equal(first.stored, true);
      assert.equal(first.copies.length, 2);
      assert.equal(first.outboundIds.length, 1);
      const again = await store.deliver(msg('both'), [{ userId: a.id }, { userId: b.id }], options);
      assert.equal(again.stored, false);
      for (const user of [a, b]) {
        const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
        const metas = await store.listMessages(inbox.id);
        assert.equal(metas.length, 1);
        assert.match((await store.getBlob(metas[0]!.blobHash))!.toString(), /body of both/);
      }
      const [queued] = await store.listOutbound();
      assert.equal(queued?.recipient, 'x@remote.test');
      assert.match((await store.getBlob(queued!.blobHash))!.toString(), /body of both/);
    } finally {
      await store.close();
    }
  });

  it('finds a user whose move stopped before the switch, and finishes the move when run again', async () => {
    const store = await open();
    try {
      await store.addDomain('example.com');
      const a = await store.addUserIn({ address: 'a@example.com', passwordHash: 'x' }, 'g0');
      await store.setDisplayName('a@example.com', 'Ann Able');
      await store.deliver(msg('before'), [{ userId: a.id }]);
      // The mover dies right after the source let the user go: the directory switch never happens.
      const switchUser = store.directory.switchUser.bind(store.directory);
      store.directory.switchUser = async () => {
        throw new StoreError('unavailable', 'the mover died');
      };
      await assert.rejects(moveUser(store, 'a@example.com', 'g1'), /the mover died/);
      store.directory.switchUser = switchUser;
      assert.equal((await store.directory.lookup('a@example.com'))?.movingTo, 'g1');
      // Readers and deliveries (with the id resolved before the move) find the user in g1.
      const now = (await store.getUser('a@example.com'))!;
      assert.equal(groupIndexOf(now.id), 1);
      const late = await store.deliver(msg('after'), [{ userId: a.id }]);
      assert.deepEqual(late.copies.map((c) => c.userId), [now.id]);
      const done = await moveUser(store, 'a@example.com', 'g1');
      assert.equal(done.newUserId, now.id);
      assert.deepEqual(await store.directory.lookup('a@example.com'), { group: 'g1', userId: now.id });
      const inbox = (await store.getMailbox(now.id, 'INBOX'))!;
      assert.deepEqual((await store.listMessages(inbox.id)).map((m) => m.uid), [1, 2]);
      assert.equal((await store.getUser('a@example.com'))?.displayName, 'Ann Able', 'the display name moved along');
    } finally {
      await store.close();
    }
  });

  it('fails a delivery until every group has its part, and a replay stores only the missing part', async () => {
    // The second group on a server of its own, which is stopped for a while.
    const s = await pg();
    const other = await startPostgres();
    const directory = await s.createDatabase('quill_dir');
    await addGroup(directory, 'g0', await s.createDatabase('quill_g0'));
    await addGroup(directory, 'g1', await other.createDatabase('quill_g1'));
    const store = await open(directory);
    try {
      await store.addDomain('example.com');
      const a = await store.addUser({ address: 'a@example.com', passwordHash: 'x' });
      const b = await store.addUser({ address: 'b@example.com', passwordHash: 'x' });
      other.stopServer();
      const targets = [{ userId: a.id }, { userId: b.id }];
      await assert.rejects(store.deliver(msg('split'), targets, { txnId: 'txn-split' }), (e: StoreError) => e.code === 'unavailable');
      // A node starting now serves the group that is up, and says unavailable for the other.
      const late = await open(directory);
      try {
        assert.equal((await late.getUser('a@example.com'))?.id, a.id);
        await assert.rejects(late.getUser('b@example.com'), (e: StoreError) => e.code === 'unavailable');
        await assert.rejects(late.listUsers(), (e: StoreError) => e.code === 'unavailable');
        await assert.rejects(late.getSession('no-such-session'), (e: StoreError) => e.code === 'unavailable');
        const loads = await late.loads();
        assert.deepEqual(loads.map((l) => [l.name, l.users, l.down !== undefined]), [['g0', 1, false], ['g1', 1, true]]);
        // New users go to a group that is up.
        assert.equal(groupIndexOf((await late.addUser({ address: 'c@example.com', passwordHash: 'x' })).id), 0);
        other.start();
        // It opens the group on use once it is back (tried again at most every second).
        let bob: Awaited<ReturnType<Store['getUser']>>;
        for (let i = 0; i < 50 && !bob; i++) bob = await late.getUser('b@example.com').catch(() => new Promise<undefined>((r) => setTimeout(() => r(undefined), 100)));
        assert.equal(bob?.id, b.id);
      } finally {
        await late.close();
      }
      const retry = await store.deliver(msg('split'), targets, { txnId: 'txn-split' });
      assert.equal(retry.stored, true);
      assert.deepEqual(retry.copies.map((c) => c.userId), [b.id], 'only the part that had failed is stored now');
      for (const user of [a, b]) {
        const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
        assert.equal((await store.mailboxStatus(inbox.id)).messages, 1, user.address);
      }
    } finally {
      await store.close();
      other.destroy();
    }
  });
});
