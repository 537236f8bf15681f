// SMTP through the gateway's own front end: TLS and AUTH at the gateway, the transaction on
// a node; a node killed with SIGKILL in the middle of DATA costs the client nothing, and
// a replayed transaction is stored once.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { openStore } from '../src/server.js';
import type { Store } from '../src/store/types.js';
import { silentLogger } from '../src/util/logger.js';
import { hashPassword } from '../src/util/password.js';
import { tempDir, testConfig } from './helpers.js';
import { WireClient } from './clients/smtp.js';

interface NodeProcess {
  child: ChildProcess;
  output: string;
}

function startNode(data: string, id: string): NodeProcess {
  const ports = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'node', '--id', id, '--data', data, '--trusted-gateway', '127.0.0.1', '--log-level', 'warn', ...ports], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const node: NodeProcess = { child, output: '' };
  child.stdout!.on('data', (c: Buffer) => (node.output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (node.output += c.toString()));
  return node;
}

async function inbox(store: Store, address: string): Promise<string[]> {
  const user = (await store.getUser(address))!;
  const box = (await store.getMailbox(user.id, 'INBOX'))!;
  const out: string[] = [];
  for (const meta of await store.listMessages(box.id)) out.push((await store.getBlob(meta.blobHash))!.toString());
  return out;
}

describe('SMTP through the gateway', () => {
  const data = tempDir('quill-gw-smtp-');
  const nodes = new Map<string, NodeProcess>();
  let store: Store;
  let gateway: RunningGateway;

  before(async () => {
    const config = testConfig(data, { gateway: { probeIntervalMs: 200, connectTimeoutMs: 1000 } });
    store = await openStore(config);
    await store.addDomain('example.com');
    await store.addUser({ address: 'alice@example.com', passwordHash: await hashPassword('alice-pw') });
    await store.addUser({ address: 'bob@example.com', passwordHash: await hashPassword('bob-pw') });
    for (const id of ['sn-1', 'sn-2']) nodes.set(id, startNode(data, id));
    gateway = await startGateway(config, store, silentLogger(), { id: 'gw-smtp', protocols: ['smtp', 'submission'] });
    const end = Date.now() + 60_000;
    while (gateway.directory.candidates('smtp').length < 2) {
      if (Date.now() > end) throw new Error(`nodes did not come up:\n${[...nodes.values()].map((n) => n.output).join('\n')}`);
      await sleep(100);
      await gateway.directory.refresh();
    }
  });

  after(async () => {
    await gateway.close();
    for (const node of nodes.values()) {
      if (node.child.exitCode === null && node.child.signalCode === null) {
        const exited = new Promise((resolve) => node.child.once('exit', resolve));
        node.child.kill('SIGTERM');
        await exited;
      }
    }
    await store.close();
  });

  it('takes submission with STARTTLS and AUTH at the gateway, and MX mail, onto a node', async () => {
    const submission = nodemailer.createTransport({
      host: '127.0.0.1',
      port: gateway.port('submission'),
      secure: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: 'alice@example.com', pass: 'alice-pw' },
      // From another loopback address than the gateway's, so the node's view of the client shows.
      localAddress: '127.0.0.2',
    });
    const info = await submission.sendMail({ from: 'alice@example.com', to: 'bob@example.com', subject: 'via gateway', text: 'Through TLS at the gateway.' });
    submission.close();
    assert.match(info.response, /^250 /);

    const mx = nodemailer.createTransport({ host: '127.0.0.1', port: gateway.port('smtp'), secure: false, ignoreTLS: true });
    await mx.sendMail({ envelope: { from: 'someone@elsewhere.test', to: ['bob@example.com'] }, raw: 'From: someone@elsewhere.test\r\nTo: bob@example.com\r\nSubject: mx via gateway\r\n\r\nHi\r\n' });
    mx.close();

    const mail = await inbox(store, 'bob@example.com');
    const submitted = mail.find((m) => m.includes('Subject: via gateway'));
    assert.ok(submitted, 'submitted message stored');
    assert.match(submitted, /^Received: from \S+ \((?:\S+ )?\[127\.0\.0\.2\]\)/, "the node saw the client's address, not the gateway's");
    assert.ok(mail.some((m) => m.includes('Subject: mx via gateway')), 'MX message stored');
  });

  it('refuses a wrong password at the gateway, and the node still wants a login', async () => {
    const client = await WireClient.connect(gateway.port('submission'));
    assert.match(await client.reply(), /^220 /);
    assert.match(await client.exchange('EHLO client.test'), /250-STARTTLS/);
    assert.match(await client.exchange(`AUTH PLAIN ${Buffer.from('\0alice@example.com\0wrong').toString('base64')}`), /^535 5\.7\.8/);
    assert.match(await client.exchange('MAIL FROM:<alice@example.com>'), /^530 /, 'the node still requires auth');
    assert.match(await client.exchange(`NOOP ${'x'.repeat(100_000)}`), /^500 5\.5\.2 /, 'a 100 KB line is refused');
    assert.match(await client.exchange('NOOP'), /^250 /, 'and the session goes on');
    assert.match(await client.exchange('QUIT'), /^221 /);
  });

  it('finishes a message whose node is killed in the middle of DATA, storing it once', async () => {
    const client = await WireClient.connect(gateway.port('smtp'));
    assert.match(await client.reply(), /^220 /);
    assert.match(await client.exchange('EHLO sender.test'), /^250/);
    assert.match(await client.exchange('MAIL FROM:<carol@elsewhere.test>'), /^250/);
    assert.match(await client.exchange('RCPT TO:<bob@example.com>'), /^250/);
    assert.match(await client.exchange('DATA'), /^354/);
    client.socket.write('From: carol@elsewhere.test\r\nTo: bob@example.com\r\nSubject: survives a node\r\n\r\nFirst half.\r\n');
    await sleep(200);
    const [nodeId] = gateway.frontSessions('smtp');
    assert.ok(nodeId && nodes.has(nodeId), `session is on a node (${nodeId})`);
    const victim = nodes.get(nodeId)!.child;
    const died = new Promise((resolve) => victim.once('exit', resolve));
    victim.kill('SIGKILL');
    await died;
    client.socket.write('Second half.\r\n.\r\n');
    assert.match(await client.reply(), /^250 /, 'the client is told the message is stored');
    assert.match(await client.exchange('QUIT'), /^221 /);
    const copies = (await inbox(store, 'bob@example.com')).filter((m) => m.includes('Subject: survives a node'));
    assert.equal(copies.length, 1);
    assert.ok(copies[0]!.endsWith('\r\n\r\nFirst half.\r\nSecond half.\r\n'), 'both halves, exactly');
  });

  it('stores a transaction replayed with the same id once', async () => {
    // What the gateway does after a node died having stored the message but not answered.
    const [target] = gateway.directory.candidates('smtp');
    assert.ok(target);
    const [host, port] = [target.address.slice(0, target.address.lastIndexOf(':')), Number(target.address.slice(target.address.lastIndexOf(':') + 1))];
    const send = async (txn: string | undefined, xclient: boolean) => {
      const socket = net.connect({ host, port });
      await new Promise((resolve) => socket.once('connect', resolve));
      const wire = new WireClient(socket);
      socket.write('PROXY UNKNOWN\r\n');
      assert.match(await wire.reply(), /^220 /);
      if (xclient) assert.match(await wire.exchange('XCLIENT ADDR=192.0.2.7 PORT=4000'), /^220 /);
      assert.match(await wire.exchange('EHLO replay.test'), /^250/);
      assert.match(await wire.exchange(`MAIL FROM:<dave@elsewhere.test>${txn ? ` XQUILL-TXN=${txn}` : ''}`), /^250/);
      assert.match(await wire.exchange('RCPT TO:<bob@example.com>'), /^250/);
      assert.match(await wire.exchange('DATA'), /^354/);
      const reply = await wire.exchange(`Subject: replayed ${txn ?? 'untagged'}\r\n\r\nOnce.\r\n.`);
      socket.end('QUIT\r\n');
      return reply;
    };
    assert.match(await send('gw-test.0001', true), /^250 /);
    assert.match(await send('gw-test.0001', true), /^250 /, 'the replay is acknowledged too');
    assert.equal((await inbox(store, 'bob@example.com')).filter((m) => m.includes('Subject: replayed gw-test.0001')).length, 1);
    // Without XCLIENT (not a gateway's session) the parameter is ignored.
    await send('gw-test.0002', false);
    await send('gw-test.0002', false);
    assert.equal((await inbox(store, 'bob@example.com')).filter((m) => m.includes('Subject: replayed gw-test.0002')).length, 2);
  });
});
