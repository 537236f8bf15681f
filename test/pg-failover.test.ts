// Failover under load: a node on a pg_auto_failover group takes mail over SMTP from several
// senders that retry after 4xx as MTAs do; the primary is killed with SIGKILL, the monitor
// promotes the synchronous standby, and every message that got 250 must be there exactly once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import { PostgresStore } from '../src/store/postgres.js';
import type { ChangeEvent } from '../src/store/types.js';
import { startTestServer, type TestServer } from './helpers.js';
import { autoFailoverAvailable, startAutoFailover, type AutoFailoverGroup } from './pg-ha.js';

const skip = autoFailoverAvailable() ? false : 'pg_auto_failover (postgresql-15-auto-failover, pg-auto-failover-cli) is not installed';

async function send(port: number, id: string): Promise<void> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, name: 'client.example', tls: { rejectUnauthorized: false } });
  try {
    const raw = `From: bob@remote.test\r\nTo: alice@example.com\r\nMessage-ID: <${id}@remote.test>\r\nSubject: ${id}\r\n\r\nbody of ${id}\r\n`;
    await transport.sendMail({ envelope: { from: 'bob@remote.test', to: ['alice@example.com'] }, raw });
  } finally {
    transport.close();
  }
}

describe('SMTP on a PostgreSQL group while its primary dies', { skip }, () => {
  let group: AutoFailoverGroup;
  let server: TestServer;
  /** Another node's store, listening across the failover. */
  let peer: PostgresStore;

  before(async () => {
    group = await startAutoFailover();
    server = await startTestServer({ overrides: { outbound: { enabled: false }, store: { url: group.url, connectTimeoutSeconds: 2 } } });
    await server.addUser('alice@example.com', 'alice-pw');
    peer = await PostgresStore.open(group.url, { connectTimeoutMs: 2000 });
  });
  after(async () => {
    await peer?.close();
    await server?.stop();
    await group?.destroy();
  });

  it('keeps every acknowledged message exactly once across a failover', async (t) => {
    const port = server.port('smtp');
    const acked: { id: string; at: number }[] = [];
    let temporaryErrors = 0;
    let next = 0;
    let stop = false;
    const sender = async () => {
      while (!stop) {
        const id = `m${next++}`;
        // Retry after 4xx, as an MTA would, until the message is taken or the test ends.
        while (!stop) {
          try {
            await send(port, id);
            acked.push({ id, at: Date.now() });
            break;
          } catch (error) {
            const code = (error as { responseCode?: number }).responseCode;
            if (code === undefined || code < 400 || code >= 500) throw error;
            temporaryErrors++;
            await sleep(100);
          }
        }
      }
    };
    const until = async (what: string, condition: () => boolean, timeoutMs: number) => {
      for (const deadline = Date.now() + timeoutMs; !condition(); await sleep(50)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      }
    };

    const senders = Array.from({ length: 4 }, sender);
    const running = Promise.all(senders);
    let crashedAt = 0;
    try {
      await until('mail before the crash', () => acked.length >= 20, 20_000);
      const primary = await group.primary();
      crashedAt = Date.now();
      group.crash(primary);
      const before = acked.length;
      await until('mail after the failover', () => acked.length >= before + 20, 45_000);
    } finally {
      stop = true;
      await running;
    }
    assert.notEqual(await group.primary(), 'node1', 'the standby was promoted');

    const times = acked.map((a) => a.at).sort((a, b) => a - b);
    const gap = Math.max(...times.slice(1).map((at, i) => at - times[i]!));
    const firstAfter = times.find((at) => at > crashedAt)! - crashedAt;
    t.diagnostic(`${acked.length} messages acknowledged, ${temporaryErrors} 4xx answers; write gap ${gap} ms (first 250 ${firstAfter} ms after SIGKILL)`);

    const user = (await server.store.getUser('alice@example.com'))!;
    const inbox = (await server.store.getMailbox(user.id, 'INBOX'))!;
    const stored = new Map<string, number>();
    for (const meta of await server.store.listMessages(inbox.id)) {
      const id = /^Subject: (\S+)/m.exec((await server.store.getBlob(meta.blobHash))!.toString())![1]!;
      stored.set(id, (stored.get(id) ?? 0) + 1);
    }
    const missing = acked.filter((a) => !stored.has(a.id)).map((a) => a.id);
    const doubled = acked.filter((a) => (stored.get(a.id) ?? 0) > 1).map((a) => a.id);
    assert.deepEqual(missing, [], 'every 250 is stored');
    assert.deepEqual(doubled, [], 'no acknowledged message is stored twice');
  });

  it('still wakes another node through the change feed after the failover', async () => {
    // The peer's LISTEN connection died with the old primary and must find the new one.
    await peer.feedReady();
    const user = (await server.store.getUser('alice@example.com'))!;
    const woke = new Promise<ChangeEvent>((resolve) => peer.onChange((event) => event.kind === 'append' && event.userId === user.id && resolve(event)));
    await send(server.port('smtp'), 'after-failover');
    const inbox = (await server.store.getMailbox(user.id, 'INBOX'))!;
    assert.equal((await woke).mailboxId, inbox.id);
  });
});
