// Chaos for SMTP (the cluster issue's first chaos test): a gateway and three node processes;
// senders deliver without pause while nodes are killed with SIGKILL and started again, and a
// node is drained, stopped and started again as in a rolling upgrade. Every message that got
// 250 is stored exactly once, and no sender sees an error.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { openStore } from '../src/server.js';
import type { Store } from '../src/store/types.js';
import { silentLogger } from '../src/util/logger.js';
import { hashPassword } from '../src/util/password.js';
import { tempDir, testConfig } from './helpers.js';

const SENDERS = 4;
/** Each sender goes on until the faults are over, between these bounds. */
const MIN_PER_SENDER = 40;
const MAX_PER_SENDER = 1000;

describe('SMTP chaos through the gateway', () => {
  const data = tempDir('quill-chaos-');
  const nodes = new Map<string, ChildProcess>();
  let store: Store;
  let gateway: RunningGateway;

  function startNode(id: string): void {
    const ports = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'node', '--id', id, '--data', data, '--trusted-gateway', '127.0.0.1', '--log-level', 'error', ...ports], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    nodes.set(id, child);
  }

  async function waitForNodes(count: number): Promise<void> {
    const end = Date.now() + 60_000;
    for (;;) {
      await gateway.directory.refresh();
      if (gateway.directory.candidates('smtp').length >= count) return;
      if (Date.now() > end) throw new Error(`only ${gateway.directory.candidates('smtp').length} nodes up`);
      await sleep(100);
    }
  }

  async function stopNode(id: string, signal: NodeJS.Signals): Promise<void> {
    const child = nodes.get(id)!;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  before(async () => {
    const config = testConfig(data, { gateway: { probeIntervalMs: 200, connectTimeoutMs: 1000 } });
    store = await openStore(config);
    await store.addDomain('example.com');
    await store.addUser({ address: 'bob@example.com', passwordHash: await hashPassword('pw') });
    for (const id of ['c-1', 'c-2', 'c-3']) startNode(id);
    gateway = await startGateway(config, store, silentLogger(), { id: 'gw-chaos', protocols: ['smtp'] });
    await waitForNodes(3);
  });

  after(async () => {
    await gateway.close();
    for (const id of nodes.keys()) await stopNode(id, 'SIGTERM');
    await store.close();
  });

  it('stores every acknowledged message exactly once while nodes die and are upgraded', async () => {
    const acknowledged: string[] = [];
    const errors: string[] = [];
    let sending = true;
    let faultsOver = false;
    let sent = 0;
    const senders = Array.from({ length: SENDERS }, async (_, s) => {
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: gateway.port('smtp'), secure: false, ignoreTLS: true, pool: true, maxConnections: 1 });
      for (let i = 0; i < MAX_PER_SENDER && (i < MIN_PER_SENDER || !faultsOver); i++) {
        const id = `chaos-${s}-${i}`;
        sent++;
        try {
          await transport.sendMail({ envelope: { from: 'load@elsewhere.test', to: ['bob@example.com'] }, raw: `From: load@elsewhere.test\r\nTo: bob@example.com\r\nSubject: ${id}\r\nMessage-ID: <${id}@elsewhere.test>\r\n\r\n${'x'.repeat(2000)}\r\n` });
          acknowledged.push(id);
        } catch (error) {
          errors.push(`${id}: ${(error as Error).message}`);
        }
      }
      transport.close();
    });
    const all = Promise.all(senders).finally(() => (sending = false));

    // The faults, while the senders run.
    const faultsWhileSending: boolean[] = [];
    const waitForProgress = async (count: number) => {
      while (sending && acknowledged.length < count) await sleep(20);
      faultsWhileSending.push(sending);
    };
    // One fault at a time, each once the cluster is whole again (two dead at once would
    // leave one node, and with it drained, none: then 421 is the right answer).
    await waitForProgress(20);
    await stopNode('c-1', 'SIGKILL');
    await waitForProgress(40);
    startNode('c-1');
    await waitForNodes(3);
    await stopNode('c-2', 'SIGKILL');
    await waitForProgress(70);
    startNode('c-2');
    await waitForNodes(3);
    // Rolling upgrade of c-3: drain, stop cleanly, start the new one (it comes up active).
    await store.requestMemberState('c-3', 'draining');
    await waitForProgress(100);
    await stopNode('c-3', 'SIGTERM');
    startNode('c-3');
    await waitForNodes(3);
    faultsOver = true;
    await all;

    assert.deepEqual(faultsWhileSending, [true, true, true, true], 'every fault struck while mail was flowing');
    assert.deepEqual(errors, [], 'no sender saw an error');
    assert.equal(acknowledged.length, sent);
    const user = (await store.getUser('bob@example.com'))!;
    const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
    const subjects = new Map<string, number>();
    for (const meta of await store.listMessages(inbox.id)) {
      const raw = (await store.getBlob(meta.blobHash))!.toString();
      const subject = /\r\nSubject: (chaos-\d+-\d+)\r\n/.exec(raw)?.[1];
      if (subject) subjects.set(subject, (subjects.get(subject) ?? 0) + 1);
    }
    const missing = acknowledged.filter((id) => !subjects.has(id));
    const twice = [...subjects].filter(([, n]) => n > 1).map(([id]) => id);
    assert.deepEqual(missing, [], 'every acknowledged message is stored');
    assert.deepEqual(twice, [], 'none is stored twice');
  });
});
