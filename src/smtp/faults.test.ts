// Faults around the commit: a full store answers 451 and never 250, concurrent deliveries
// are each stored once, and every 250 survives kill -9 of the server.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { startTestServer, tempDir, type TestServer } from '../../test/helpers.js';
import { SqliteStore } from '../store/sqlite.js';
import { splitReceived, storedMessages } from './test-support.js';
import { dataBlock, WireClient } from '../../test/clients/smtp.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

function messageIdOf(raw: Buffer): string {
  return /^Message-ID: <([^>]+)>/im.exec(raw.toString('latin1'))?.[1] ?? '';
}

describe('SMTP store faults', () => {
  let server: TestServer;
  let port: number;

  before(async () => {
    server = await startTestServer({ overrides: { outbound: { enabled: false }, store: { maxDatabaseBytes: 4 * 1024 * 1024 } } });
    port = server.port('smtp');
    await server.addUser('alice@example.com', 'secret-pw');
  });
  after(() => server.stop());

  it('answers 451 4.3.0 when the store is full, never 250, and keeps working', async () => {
    const client = await WireClient.connect(port);
    try {
      await client.read();
      await client.command('EHLO client.example');
      const transaction = async (body: Buffer) => {
        assert.equal((await client.command('MAIL FROM:<sender@remote.example>')).code, 250);
        assert.equal((await client.command('RCPT TO:<alice@example.com>')).code, 250);
        assert.equal((await client.command('DATA')).code, 354);
        client.write(dataBlock(body));
        return (await client.read()).text;
      };
      const line = `${'x'.repeat(76)}\r\n`;
      const big = Buffer.from(`Subject: too big for the disk\r\n\r\n${line.repeat(Math.ceil((6 * 1024 * 1024) / line.length))}`);
      assert.match(await transaction(big), /^451 4\.3\.0 /);
      assert.match(await transaction(Buffer.from('Subject: small\r\n\r\nfits\r\n')), /^250 /);
    } finally {
      client.close();
    }
    const messages = await storedMessages(server.store, 'alice@example.com');
    assert.deepEqual(
      messages.map((m) => /Subject: (.*)\r\n/.exec(m.raw.toString())?.[1]),
      ['small'],
    );
  });

  it('stores each of 200 messages over 20 concurrent connections exactly once', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, pool: true, maxConnections: 20, maxMessages: Infinity });
    const sent = new Map<string, Buffer>();
    try {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => {
          const raw = Buffer.from(`Message-ID: <concurrent-${i}@remote.example>\r\nSubject: concurrent ${i}\r\n\r\n${'body line\r\n'.repeat(20)}`);
          sent.set(`concurrent-${i}@remote.example`, raw);
          return transport.sendMail({ envelope: { from: 'sender@remote.example', to: ['alice@example.com'] }, raw });
        }),
      );
      for (const info of results) assert.match(info.response, /^250 /);
    } finally {
      transport.close();
    }
    const stored = (await storedMessages(server.store, 'alice@example.com')).filter((m) => messageIdOf(m.raw).startsWith('concurrent-'));
    assert.equal(stored.length, 200);
    const byId = new Map(stored.map((m) => [messageIdOf(m.raw), m.raw]));
    assert.equal(byId.size, 200, 'no duplicates');
    for (const [id, raw] of sent) assert.deepEqual(splitReceived(byId.get(id)!).rest, raw, id);
  });
});

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const quill = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, timeout: 60_000 });

describe('SMTP durability under kill -9', () => {
  let dir: string;
  let configFile: string;
  let child: ChildProcess | undefined;
  let ports: Record<'smtp' | 'submission' | 'pop3' | 'imap' | 'http', number>;

  async function startChild(): Promise<void> {
    // No DNS at all: inbound verification would ask about remote.example, Received about 127.0.0.1.
    const args = ['--import', 'tsx', 'src/cli/main.ts', 'start', '--config', configFile, '--data', dir, '--log-level', 'warn'];
    for (const [name, port] of Object.entries(ports)) args.push(`--${name}`, `127.0.0.1:${port}`);
    child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    for (let i = 0; i < 300; i++) {
      try {
        const client = await WireClient.connect(ports.smtp);
        const greeting = await client.read();
        client.close();
        if (greeting.code === 220) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error('server did not start');
  }

  async function stopChild(signal: NodeJS.Signals): Promise<void> {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(signal);
    await exited;
  }

  before(async () => {
    dir = tempDir('quill-smtp-kill-');
    configFile = path.join(dir, 'quill.yaml');
    writeFileSync(configFile, 'inbound:\n  verify: false\nsmtp:\n  reverseLookup: false\n');
    ports = { smtp: await freePort(), submission: await freePort(), pop3: await freePort(), imap: await freePort(), http: await freePort() };
    await quill('domain', 'add', 'example.com', '--data', dir);
    await quill('user', 'add', 'alice@example.com', '--password', 'secret-pw', '--data', dir);
  });
  after(async () => {
    await stopChild('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every acknowledged message byte for byte', async () => {
    await startChild();
    const acked = new Map<string, Buffer>();
    const killAfter = 60;
    const maxMessages = 300;
    let next = 0;
    let killed: Promise<void> | undefined;

    // Each sender keeps one session and delivers until the server dies under it.
    const sender = async (id: number) => {
      const client = await WireClient.connect(ports.smtp);
      try {
        await client.read();
        await client.command(`EHLO sender-${id}.example`);
        while (next < maxMessages) {
          const n = next++;
          const raw = Buffer.from(`Message-ID: <kill-${n}@remote.example>\r\nSubject: kill ${n}\r\n\r\n${`message ${n} `.repeat(200)}\r\n`);
          if ((await client.command('MAIL FROM:<sender@remote.example>')).code !== 250) return;
          if ((await client.command('RCPT TO:<alice@example.com>')).code !== 250) return;
          if ((await client.command('DATA')).code !== 354) return;
          client.write(dataBlock(raw));
          const reply = await client.read();
          if (reply.code !== 250) return;
          acked.set(`kill-${n}@remote.example`, raw);
          if (acked.size >= killAfter) killed ??= stopChild('SIGKILL');
        }
      } catch {
        // the server was killed mid-transaction: that message was never acknowledged
      } finally {
        client.close();
      }
    };
    await Promise.all(Array.from({ length: 10 }, (_, i) => sender(i)));
    await killed;
    assert.ok(killed, 'the server was killed mid-stream');
    assert.ok(acked.size >= killAfter && acked.size < maxMessages, `acked ${acked.size}`);

    await startChild();
    const store = await SqliteStore.open(dir);
    try {
      const stored = await storedMessages(store, 'alice@example.com');
      const byId = new Map<string, Buffer>();
      for (const message of stored) {
        const id = messageIdOf(message.raw);
        assert.ok(!byId.has(id), `${id} stored twice`);
        byId.set(id, message.raw);
      }
      for (const [id, raw] of acked) {
        const found = byId.get(id);
        assert.ok(found, `acknowledged ${id} lost`);
        assert.deepEqual(splitReceived(found).rest, raw, id);
      }
    } finally {
      await store.close();
      await stopChild('SIGTERM');
    }
  });
});
