// Affinity (Porcupine's affinity-based balancing): a user's IMAP sessions through the gateway go
// to one node, the same from a second gateway that shares nothing but the store, until that node
// carries more than gateway.affinitySlack sessions beyond the least loaded one.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImapFlow } from 'imapflow';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { silentLogger } from '../src/util/logger.js';
import { startTestServer, tempDir, testConfig, type TestServer } from './helpers.js';

describe('gateway affinity', () => {
  const data = tempDir('quill-gw-affinity-');
  let a: TestServer;
  let b: TestServer;
  let store: SqliteStore;
  let first: RunningGateway;
  let second: RunningGateway;
  const open: ImapFlow[] = [];

  before(async () => {
    const overrides = { trustedGateways: ['127.0.0.1'] };
    a = await startTestServer({ dataDir: data, nodeId: 'aff-a', overrides });
    b = await startTestServer({ dataDir: data, nodeId: 'aff-b', overrides });
    for (const user of ['alice', 'dave']) await a.addUser(`${user}@example.com`, 'pw');
    store = await SqliteStore.open(data);
    const gateway = (id: string) =>
      startGateway(testConfig(data, { gateway: { probeIntervalMs: 200, connectTimeoutMs: 500, affinitySlack: 2 } }), store, silentLogger(), { id, protocols: ['imap'] });
    first = await gateway('gw-aff-1');
    second = await gateway('gw-aff-2');
    for (const gw of [first, second]) {
      while (gw.directory.candidates('imap').length < 2) {
        await sleep(100);
        await gw.directory.refresh();
      }
    }
  });

  after(async () => {
    await Promise.allSettled(open.map((client) => client.logout()));
    await Promise.allSettled([first.close(), second.close()]);
    await Promise.allSettled([a.stop(), b.stop()]);
    await store.close();
  });

  /** Waits until `check` holds, re-reading the membership of `gateway` meanwhile. */
  async function until(gateway: RunningGateway, what: string, check: () => boolean): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
      await gateway.directory.refresh();
    }
  }

  /**
   * Until the gateway's count of each node's IMAP sessions (the last heartbeat's, plus those it
   * opened since) matches the sessions it carries: a beat taken just before a login and read
   * just after it would count one too few for a moment.
   */
  function settled(gateway: RunningGateway): Promise<void> {
    return until(gateway, 'the node loads to settle', () => {
      const carried = new Map<string, number>();
      for (const node of gateway.frontSessions('imap')) if (node) carried.set(node, (carried.get(node) ?? 0) + 1);
      return gateway.directory.list().every((node) => (node.member.load.connections.imap ?? 0) + (node.openedSinceBeat.get('imap') ?? 0) === (carried.get(node.id) ?? 0));
    });
  }

  /** Logs in through `gateway` and says which node the new session is on. */
  async function login(gateway: RunningGateway, user: string): Promise<string> {
    const before = gateway.frontSessions('imap').filter(Boolean).length;
    const client = new ImapFlow({ host: '127.0.0.1', port: gateway.port('imap'), secure: false, tls: { rejectUnauthorized: false }, auth: { user: `${user}@example.com`, pass: 'pw' }, logger: false });
    await client.connect();
    open.push(client);
    const sessions = gateway.frontSessions('imap');
    assert.equal(sessions.filter(Boolean).length, before + 1);
    return sessions.at(-1)!;
  }

  it("sends a user's sessions from both gateways to one node, then to the other once it is 2 sessions ahead", async () => {
    // Both gateways pick dave's home without sharing anything but the store.
    const home = await login(first, 'dave');
    assert.equal(await login(second, 'dave'), home);
    await Promise.all(open.splice(0).map((client) => client.logout()));
    await until(first, "dave's sessions to end", () => first.frontSessions('imap').length === 0 && second.frontSessions('imap').length === 0);

    // Least load alone would alternate between the nodes; affinity keeps alice on one
    // (loads 0, 1, 2 against 0: within the slack of 2) and the fourth goes to the other.
    const nodes = [];
    for (let i = 0; i < 4; i++) {
      await settled(first);
      nodes.push(await login(first, 'alice'));
    }
    assert.equal(new Set(nodes.slice(0, 3)).size, 1, `first three on one node: ${nodes.join(', ')}`);
    assert.notEqual(nodes[3], nodes[0]);
  });
});
