// Finding and following the primary of a pg_auto_failover group (issue 23), on one group for
// every case: the standby listed first in the store URL, the primary's connections reset under
// load (pg_terminate_backend), and a switchover under load. Senders retry after 4xx as MTAs do;
// every 250 must be stored exactly once, and no delivery started once the new primary takes
// writes may get a 4xx.
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { PostgresStore } from '../src/store/postgres.js';
import type { ChangeEvent } from '../src/store/types.js';
import { startTestServer, type TestServer } from './helpers.js';
import { Load, send, storedCounts } from './smtp-load.js';
import { autoFailoverAvailable, startAutoFailover, type AutoFailoverGroup } from './pg-ha.js';

const skip = autoFailoverAvailable() ? false : 'pg_auto_failover (postgresql-15-auto-failover, pg-auto-failover-cli) is not installed';

/** How long after a new primary takes writes a node may still answer 4xx to a new delivery. */
const FOLLOW_MS = 1000;

async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await condition()); await sleep(50)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

/** Every acknowledged id is stored exactly once. */
async function assertStoredOnce(server: TestServer, acked: readonly { id: string }[]): Promise<void> {
  const { missing, doubled } = await storedCounts(server.store, acked);
  assert.deepEqual(missing, [], 'every 250 is stored');
  assert.deepEqual(doubled, [], 'no acknowledged message is stored twice');
}

describe('the primary of a PostgreSQL group, found and followed', { skip }, () => {
  let group: AutoFailoverGroup;
  /** The store URL with the standby (node2) first. */
  let standbyFirst: string;
  let ports: Record<string, number>;
  let server: TestServer;
  /** Another node's store, listening throughout. */
  let peer: PostgresStore;

  const admin = (name: string): pg.ClientConfig => ({ host: '127.0.0.1', port: ports[name]!, user: 'postgres', database: 'quill', connectionTimeoutMillis: 2000 });
  const writable = async (name: string): Promise<boolean> => {
    const client = new pg.Client(admin(name));
    client.on('error', () => undefined);
    try {
      await client.connect();
      // pg_auto_failover promotes a standby read-only (default_transaction_read_only) first.
      const { rows } = await client.query<{ r: boolean; ro: string }>("select pg_is_in_recovery() as r, current_setting('transaction_read_only') as ro");
      return !rows[0]!.r && rows[0]!.ro === 'off';
    } catch {
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  };

  before(async () => {
    group = await startAutoFailover();
    ports = Object.fromEntries((await group.states()).map((n) => [n.name, n.port]));
    standbyFirst = `postgres://postgres@127.0.0.1:${ports.node2},127.0.0.1:${ports.node1}/quill?target_session_attrs=read-write`;
    server = await startTestServer({ overrides: { outbound: { enabled: false }, store: { url: standbyFirst, connectTimeoutSeconds: 2 } } });
    await server.addUser('alice@example.com', 'alice-pw');
    peer = await PostgresStore.open(standbyFirst, { connectTimeoutMs: 2000 });
  });
  after(async () => {
    await peer?.close();
    await server?.stop();
    await group?.destroy();
  });

  it('writes to the primary and LISTENs there with the standby first in the URL', async () => {
    // A second node starts (it LISTENs, which a standby refuses) and reports the real primary.
    const status = await peer.serverStatus();
    assert.equal(status.host?.port, ports.node1);
    assert.equal(status.inRecovery, false);
    assert.equal(peer.listening, true);
    const user = (await server.store.getUser('alice@example.com'))!;
    const woke = new Promise<ChangeEvent>((resolve) => peer.onChange((event) => event.kind === 'append' && event.userId === user.id && resolve(event)));
    await send(server.port('smtp'), 'first');
    assert.equal((await woke).userId, user.id);
  });

  it('keeps taking mail when the primary resets its connections under load', async (t: TestContext) => {
    const load = new Load(server.port('smtp'), 'reset');
    let lastReset = 0;
    try {
      await until('mail before the resets', () => load.acked.length >= 10, 20_000);
      for (let round = 0; round < 3; round++) {
        const client = new pg.Client(admin('node1'));
        await client.connect();
        const { rows } = await client.query<{ n: number }>(
          "select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where application_name = 'quillmail' and pid <> pg_backend_pid()",
        );
        await client.end();
        lastReset = Date.now();
        t.diagnostic(`round ${round}: ${rows[0]!.n} backends terminated`);
        const before = load.acked.length;
        await until('mail after a reset', () => load.acked.length >= before + 5, 20_000);
      }
    } finally {
      await load.stop();
    }
    t.diagnostic(`${load.acked.length} acknowledged, ${load.temporary.length} 4xx answers`);
    assert.deepEqual(load.temporaryAfter(lastReset + FOLLOW_MS), [], 'no 4xx once the server was reached again');
    await assertStoredOnce(server, load.acked);
  });

  it('follows a switchover under load, and the change feed follows it too', async (t: TestContext) => {
    const load = new Load(server.port('smtp'), 'switch');
    let promotedAt = 0;
    try {
      await until('mail before the switchover', () => load.acked.length >= 10, 20_000);
      const switching = group.autoctl(['perform', 'switchover', '--monitor', group.monitorUrl]);
      switching.catch(() => undefined);
      await until('node2 to accept writes', () => writable('node2'), 60_000);
      promotedAt = Date.now();
      const before = load.acked.filter((a) => a.at > promotedAt).length;
      await until('mail after the switchover', () => load.acked.filter((a) => a.at > promotedAt).length >= before + 20, 30_000);
      await switching;
    } finally {
      await load.stop();
    }
    t.diagnostic(`${load.acked.length} acknowledged, ${load.temporary.length} 4xx answers, write gap ${load.writeGap()} ms`);
    assert.deepEqual(load.temporaryAfter(promotedAt + FOLLOW_MS), [], `no 4xx later than ${FOLLOW_MS} ms after the promotion`);
    await assertStoredOnce(server, load.acked);

    assert.equal((await peer.serverStatus()).host?.port, ports.node2, 'status names the new primary');
    await peer.feedReady();
    const user = (await server.store.getUser('alice@example.com'))!;
    const woke = new Promise<ChangeEvent>((resolve) => peer.onChange((event) => event.kind === 'append' && event.userId === user.id && resolve(event)));
    await send(server.port('smtp'), 'after-switchover');
    assert.equal((await woke).userId, user.id);
  });
});
