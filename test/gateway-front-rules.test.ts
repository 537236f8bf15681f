// The gateway's IMAP and POP3 fronts follow the nodes' rules (clients from 127.0.0.2): SASL LOGIN
// as well as PLAIN (src/protocol/sasl.ts), the nodes' IMAP command limits (src/imap/reader-limits.ts:
// all of one APPEND's literals, ID's long line), and backpressure both ways on an IMAP session.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { openStore } from '../src/server.js';
import type { Store } from '../src/store/types.js';
import { silentLogger } from '../src/util/logger.js';
import { hashPassword } from '../src/util/password.js';
import { tempDir, testConfig } from './helpers.js';

const run = promisify(execFile);
const CLIENT = '127.0.0.2';
const USER = 'alice@example.com';
const PASS = 'front secret';
const MESSAGE_SIZE = 4 * 1024 * 1024;

/** A raw client from 127.0.0.2 that keeps what the server sent (in pieces: a big FETCH is many MB). */
class Raw {
  private chunks: string[] = [];
  closed = false;
  private waiters: (() => void)[] = [];
  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.chunks.push(chunk);
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('error', () => undefined);
  }
  static open(port: number): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, localAddress: CLIENT }, () => resolve(new Raw(socket)));
      socket.once('error', reject);
    });
  }
  /** Waits for the pattern in what was received; returns everything up to its end and forgets it. */
  async until(pattern: RegExp, ms = 30_000): Promise<string> {
    const end = Date.now() + ms;
    // Only what arrived since the last look (and 1 KB before it) is searched again.
    let tail = '';
    let tailStart = 0;
    let scanned = 0;
    for (;;) {
      const fresh = this.chunks.slice(scanned).join('');
      scanned = this.chunks.length;
      const window = tail + fresh;
      const match = pattern.exec(window);
      if (match) {
        const all = this.chunks.join('');
        const at = tailStart + match.index + match[0].length;
        this.chunks = at < all.length ? [all.slice(at)] : [];
        return all.slice(0, at);
      }
      tail = window.slice(-1024);
      tailStart += window.length - tail.length;
      const last = tail.slice(-300);
      if (this.closed) throw new Error(`closed waiting for ${pattern}; got ${JSON.stringify(last)}`);
      if (Date.now() > end) throw new Error(`timed out waiting for ${pattern}; got ${JSON.stringify(last)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
  send(text: string | Buffer): void {
    this.socket.write(text);
  }
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 50_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('the gateway fronts follow the nodes’ rules', () => {
  const data = tempDir('quill-gw-rules-');
  let node: ChildProcess | undefined;
  let nodeOutput = '';
  let store: Store;
  let gateway: RunningGateway;

  before(async () => {
    const config = testConfig(data, { limits: { messageSize: MESSAGE_SIZE }, gateway: { probeIntervalMs: 200, connectTimeoutMs: 1000 } });
    store = await openStore(config);
    await store.addDomain('example.com');
    const user = await store.addUser({ address: USER, passwordHash: await hashPassword(PASS) });
    const body = `${'x'.repeat(998)}\r\n`.repeat(Math.floor((MESSAGE_SIZE - 1024) / 1000));
    await store.deliver(Buffer.from(`From: someone@elsewhere.test\r\nTo: ${USER}\r\nSubject: big\r\nMessage-ID: <big@elsewhere.test>\r\n\r\n${body}`), [{ userId: user.id }]);
    const ports = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
    node = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'node', '--id', 'rules-1', '--data', data, '--trusted-gateway', '127.0.0.1', '--log-level', 'warn', ...ports], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    node.stdout!.on('data', (c: Buffer) => (nodeOutput += c.toString()));
    node.stderr!.on('data', (c: Buffer) => (nodeOutput += c.toString()));
    gateway = await startGateway(config, store, silentLogger(), { id: 'gw-rules', protocols: ['imap', 'pop3'] });
    await until('the node', async () => {
      await gateway.directory.refresh();
      return gateway.directory.candidates('imap').length === 1 && gateway.directory.candidates('pop3').length === 1;
    }).catch((error: Error) => {
      throw new Error(`${error.message}\n${nodeOutput}`);
    });
  });

  after(async () => {
    await gateway?.close();
    if (node && node.exitCode === null && node.signalCode === null) {
      const exited = new Promise((resolve) => node!.once('exit', resolve));
      node.kill('SIGKILL');
      await exited;
    }
    await store?.close();
  });

  async function loggedIn(): Promise<Raw> {
    const client = await Raw.open(gateway.port('imap'));
    await client.until(/^\* OK[^\r]*\r\n/);
    client.send(`a LOGIN ${USER} "${PASS}"\r\n`);
    await client.until(/a OK[^\r]*\r\n/);
    client.send('s SELECT INBOX\r\n');
    await client.until(/s OK[^\r]*\r\n/);
    return client;
  }

  it('offers SASL LOGIN: curl logs in with AUTH=LOGIN over IMAP and POP3', async () => {
    const imap = await run('curl', ['-sS', '--max-time', '20', '--interface', CLIENT, '--login-options', 'AUTH=LOGIN', '-u', `${USER}:${PASS}`, `imap://127.0.0.1:${gateway.port('imap')}/INBOX?ALL`], { timeout: 30_000 });
    assert.match(imap.stdout, /\* SEARCH 1/);
    const pop3 = await run('curl', ['-sS', '--max-time', '20', '--interface', CLIENT, '--login-options', 'AUTH=LOGIN', '-u', `${USER}:${PASS}`, `pop3://127.0.0.1:${gateway.port('pop3')}/`], { timeout: 30_000 });
    assert.match(pop3.stdout, /^1 \d+/m);

    const raw = await Raw.open(gateway.port('imap'));
    await raw.until(/^\* OK[^\r]*\r\n/);
    raw.send('c CAPABILITY\r\n');
    assert.match(await raw.until(/c OK[^\r]*\r\n/), /AUTH=PLAIN AUTH=LOGIN/);
    raw.send('d AUTHENTICATE LOGIN\r\n');
    assert.match(await raw.until(/\r\n/), /^\+ VXNlcm5hbWU6\r\n$/);
    raw.send('*\r\n');
    assert.match(await raw.until(/\r\n/), /^d BAD authentication cancelled/);
    raw.send(`e AUTHENTICATE PLAIN ${Buffer.from(`bob@example.com\0${USER}\0${PASS}`).toString('base64')}\r\n`);
    assert.match(await raw.until(/\r\n/), /^e NO \[AUTHENTICATIONFAILED\] authorization identity/);
    raw.send('f AUTHENTICATE LOGIN not!base64\r\n');
    assert.match(await raw.until(/\r\n/), /^f BAD invalid base64/);
    raw.socket.destroy();

    const pop = await Raw.open(gateway.port('pop3'));
    await pop.until(/^\+OK[^\r]*\r\n/);
    pop.send('CAPA\r\n');
    assert.match(await pop.until(/\r\n\.\r\n/), /\r\nSASL PLAIN LOGIN\r\n/);
    pop.send('AUTH LOGIN\r\n');
    assert.match(await pop.until(/\r\n/), /^\+ VXNlcm5hbWU6\r\n$/);
    pop.send('*\r\n');
    assert.match(await pop.until(/\r\n/), /^-ERR \[AUTH\] authentication cancelled/);
    pop.socket.destroy();
  });

  it('refuses an APPEND whose literals together pass the nodes’ limit when it is announced, and passes a long ID line', async () => {
    const client = await loggedIn();
    const piece = 1536 * 1024; // four of these pass limits.messageSize + imap.commandLiteralBytes (5 MiB)
    client.send(`p APPEND INBOX {${piece}}\r\n`);
    let refusedAt = 0;
    for (let n = 1; n <= 15; n++) {
      const reply = await client.until(/\r\n/);
      if (/^\+ /.test(reply)) {
        client.send(Buffer.alloc(piece, 'a'));
        client.send(n < 15 ? ` {${piece}}\r\n` : '\r\n');
        continue;
      }
      assert.match(reply, /^p NO \[TOOBIG\] /);
      refusedAt = n;
      break;
    }
    assert.equal(refusedAt, 4, 'the fourth literal is refused when announced, with no "+"');

    // ID's line may be longer than limits.lineLength (8192), on the node as at the gateway.
    const pairs = Array.from({ length: 20 }, (_, i) => `"k${i}" "${'v'.repeat(900)}"`).join(' ');
    client.send(`i ID (${pairs})\r\n`);
    const id = await client.until(/i (OK|NO|BAD)[^\r]*\r\n/);
    assert.match(id, /\* ID /);
    assert.match(id, /i OK/);
    client.send('n NOOP\r\n');
    await client.until(/n OK[^\r]*\r\n/);
    client.socket.destroy();
  });

  it('a client that reads nothing does not make the gateway buffer what it sends, and its session goes on', async () => {
    const client = await loggedIn();
    client.socket.pause();
    // The node's answers (3 x 4 MB) fill the way back; then the node stops reading, and so must the gateway.
    for (let n = 0; n < 3; n++) client.send(`f${n} FETCH 1 BODY[]\r\n`);
    // Long ID lines (RFC 2971: up to 30 pairs, past limits.lineLength): many bytes in few commands.
    // More bytes (~48 MB) than the kernel's socket buffers on the way can hold (client send, gateway
    // receive and send, node receive: ~20 MB at Linux's default maximums), so what the client still
    // holds shows whether the gateway stopped reading.
    const line = Array.from({ length: 30 }, (_, i) => `"k${i}" "${'v'.repeat(1000)}"`).join(' ');
    const total = 1600;
    for (let n = 0; n < total; n++) client.send(`i${n} ID (${line})\r\n`);
    const sent = total * (line.length + 12);
    // Wait until the bytes have stopped moving for 2 s (a gateway without backpressure takes them all in ~2 s).
    let last = -1;
    let still = 0;
    for (let i = 0; i < 60 && still < 7; i++) {
      still = client.socket.writableLength === last ? still + 1 : 0;
      last = client.socket.writableLength;
      await sleep(300);
    }
    assert.ok(client.socket.writableLength > sent / 4, `the gateway stopped reading: ${client.socket.writableLength} of ${sent} bytes still with the client`);
    client.socket.resume();
    const rest = await client.until(new RegExp(`i${total - 1} OK[^\\r]*\\r\\n`), 120_000);
    assert.equal(rest.match(/^f\d OK/gm)?.length, 3, 'every FETCH answered');
    assert.equal(rest.match(/^i\d+ OK/gm)?.length, total, 'every ID answered');
    client.send('z NOOP\r\n');
    await client.until(/z OK[^\r]*\r\n/);
    client.socket.destroy();
  });
});
