// Chaos for the whole cluster (issue 5): a gateway and three node processes; SMTP senders
// (nodemailer), POP3 readers (a raw client looping STAT/UIDL/RETR) and IMAP sessions (imapflow
// with IDLE and fetches) run without pause while nodes are killed with SIGKILL and started
// again at random. Every message that got 250 is stored exactly once, no client sees an error
// its protocol does not allow, and every IMAP client's final view matches the store.
// (The rolling upgrade is test/rolling-upgrade.test.ts.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImapFlow } from 'imapflow';
import { allWithin, bounded, OP_LIMIT_MS, TestCluster, tally, type Tally } from './cluster-kit.js';

const NODES = ['k-1', 'k-2', 'k-3'];
const IMAP_CLIENTS = 2;
/** How long nodes are killed and restarted while the clients run. */
const FAULT_MS = 25_000;
/**
 * Whether an IMAP session may be dropped when its node dies (counted, and the client reconnects).
 * The gateway's IMAP front end (src/gateway/imap-front.ts) moves sessions to another node, so
 * none should be: a drop fails the test.
 */
const IMAP_DROPS_ALLOWED = false;

describe('cluster chaos through the gateway', () => {
  const cluster = new TestCluster(NODES, ['smtp', 'pop3', 'imap']);

  before(() => cluster.start());
  after(() => cluster.close());

  /** imapflow sessions on bob's INBOX: IDLE, interrupted by fetches of the newest message. */
  async function storedUids(): Promise<number[]> {
    const user = (await cluster.store.getUser('bob@example.com'))!;
    return (await cluster.store.listMessages((await cluster.store.getMailbox(user.id, 'INBOX'))!.id)).map((m) => m.uid);
  }

  function imapClients(seen: Tally, done: () => boolean): { runs: Promise<void>[]; finalViews: Promise<number[]>[] } {
    const finals: ((uids: number[]) => void)[] = [];
    const finalViews = Array.from({ length: IMAP_CLIENTS }, () => new Promise<number[]>((resolve) => finals.push(resolve)));
    const runs = Array.from({ length: IMAP_CLIENTS }, async (_, c) => {
      for (let afterDone = 0; ; ) {
        if (done() && ++afterDone > 20) {
          seen.errors.push(`imap${c}: no session for the final view`);
          finals[c]!([]);
          return;
        }
        const client = new ImapFlow({ host: '127.0.0.1', port: cluster.gateway.port('imap'), secure: false, tls: { rejectUnauthorized: false }, auth: { user: 'bob@example.com', pass: 'pw' }, logger: false, disableAutoIdle: true });
        let dropped = false;
        client.on('error', () => (dropped = true));
        client.on('close', () => (dropped = true));
        try {
          await bounded(client.connect(), OP_LIMIT_MS, 'connect');
          await bounded(client.mailboxOpen('INBOX'), OP_LIMIT_MS, 'SELECT');
          while (!done() && !dropped) {
            const idle = client.idle().catch(() => undefined);
            await sleep(250);
            if (client.mailbox && client.mailbox.exists > 0) {
              const newest = await bounded(client.fetchOne('*', { uid: true, envelope: true }), OP_LIMIT_MS, 'FETCH');
              if (newest && !/^chaos|^rolling/.test(newest.envelope?.subject ?? '')) seen.errors.push(`imap${c}: odd newest message ${JSON.stringify(newest.envelope?.subject)}`);
              seen.imapFetches++;
            } else {
              // imapflow's fetchOne('*') in a mailbox it believes empty (a session that selected
              // INBOX before the first delivery, on a busy machine) returns false without a
              // command, so nothing ends the IDLE: a NOOP does.
              await bounded(client.noop(), OP_LIMIT_MS, 'NOOP');
            }
            await bounded(idle, OP_LIMIT_MS, 'the end of IDLE');
          }
          if (done() && !dropped) {
            // The final view: every UID the server shows this session. A node learns of mail
            // another node stored within a moment (the change feed), not at once: ask again
            // for a while until the view has caught up with the store, which the test then checks.
            let uids: number[] = [];
            const stored = (await storedUids()).join();
            for (let round = 0; round < 40; round++) {
              await bounded(client.noop(), OP_LIMIT_MS, 'NOOP');
              uids = ((await bounded(client.search({ all: true }, { uid: true }), OP_LIMIT_MS, 'SEARCH')) || []).sort((a, b) => a - b);
              if (uids.join() === stored) break;
              await sleep(250);
            }
            finals[c]!(uids);
            await bounded(client.logout(), OP_LIMIT_MS, 'LOGOUT').catch(() => undefined);
            return;
          }
        } catch (error) {
          if (!dropped) seen.errors.push(`imap${c}: ${(error as Error).message}`);
        }
        seen.imapDrops++;
        client.close();
        await sleep(100);
      }
    });
    return { runs, finalViews };
  }

  it('keeps every client whole while nodes are killed and restarted at random', async () => {
    const seen = tally();
    let faultsOver = false;
    const done = () => faultsOver;
    const smtp = cluster.senders(seen, done, 'chaos');
    const pop3 = cluster.pop3Readers(seen, done);
    // IMAP sessions take their final view once the last message is in.
    let delivered = false;
    const allSent = Promise.all(smtp).then(() => (delivered = true));
    const imap = imapClients(seen, () => delivered);

    // For FAULT_MS, every few seconds a random live node is killed and started again in the
    // background; at least one node stays up (with none, a temporary error would be right).
    const killed: string[] = [];
    const down = new Set<string>();
    const restarts: Promise<void>[] = [];
    const faultsEnd = Date.now() + FAULT_MS;
    await sleep(1500);
    while (Date.now() < faultsEnd) {
      const up = NODES.filter((id) => !down.has(id));
      if (up.length >= 2) {
        const victim = up[Math.floor(Math.random() * up.length)]!;
        killed.push(victim);
        down.add(victim);
        await cluster.stopNode(victim, 'SIGKILL');
        restarts.push(
          (async () => {
            await cluster.waitForNode(victim, false);
            await sleep(Math.random() * 500);
            cluster.startNode(victim);
            await cluster.waitForNode(victim, true);
            down.delete(victim);
          })(),
        );
      }
      await sleep(2000 + Math.random() * 2000);
    }
    faultsOver = true;
    // Bounded, naming what hung, well inside the file's 120 s.
    await allWithin(45_000, { 'SMTP senders': [allSent], 'POP3 readers': pop3, 'IMAP clients': imap.runs, 'node restarts': restarts });
    const views = await bounded(Promise.all(imap.finalViews), 5_000, "the IMAP clients' final views");

    const counts = `${seen.acknowledged.length} messages, ${seen.pop3Sessions} POP3 sessions (${seen.pop3Retrieved} RETR, ${seen.pop3TempErrors} [SYS/TEMP]), ${seen.imapFetches} IMAP fetches, ${seen.imapDrops} IMAP drops; killed ${killed.join(' ')}`;
    console.log(`# chaos: ${counts}`);
    assert.deepEqual(seen.errors, [], 'no client saw an error its protocol does not allow');
    if (!IMAP_DROPS_ALLOWED) assert.equal(seen.imapDrops, 0, 'no IMAP session was dropped');
    assert.ok(seen.acknowledged.length > 0 && seen.pop3Retrieved > 0 && seen.imapFetches > 0, counts);
    await cluster.checkStoredOnce(seen.acknowledged, /\r\nSubject: (chaos-\d+-\d+)\r\n/);
    const stored = await storedUids();
    for (const view of views) assert.deepEqual(view, stored, "an IMAP client's final view is the store's");
  });
});

