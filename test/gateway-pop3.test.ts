// POP3 through the gateway's own front end (src/gateway/pop3-front.ts): login and TLS at the
// gateway, the maildrop on a node; a node killed with SIGKILL mid-RETR, or between DELE and
// QUIT, costs the client nothing; a maildrop changed behind the session's back ends it with
// -ERR [SYS/TEMP].
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { unstuffed } from '../src/protocol/dot-stuffing.js';
import { readProxyHeader } from '../src/protocol/proxy-header.js';
import { ok, poplib } from '../src/pop3/test-kit.js';
import { openStore } from '../src/server.js';
import type { Store } from '../src/store/types.js';
import { hashPassword } from '../src/util/password.js';
import { tempDir, testConfig } from './helpers.js';

/** A raw POP3 client that keeps every byte the server sent. */
class Raw {
  data = Buffer.alloc(0);
  closed = false;
  private waiters: (() => void)[] = [];
  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk]);
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('error', () => undefined);
  }
  static connect(port: number): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(new Raw(socket)));
      socket.once('error', reject);
    });
  }
  /** Waits until the bytes received satisfy the check; returns and forgets them. */
  async until(check: (data: Buffer) => number): Promise<Buffer> {
    for (;;) {
      const end = check(this.data);
      if (end >= 0) {
        const out = this.data.subarray(0, end);
        this.data = this.data.subarray(end);
        return out;
      }
      if (this.closed) throw new Error(`closed; got ${JSON.stringify(this.data.toString('latin1').slice(0, 200))}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
  async line(): Promise<string> {
    const bytes = await this.until((d) => (d.indexOf('\r\n') >= 0 ? d.indexOf('\r\n') + 2 : -1));
    return bytes.toString('utf8').slice(0, -2);
  }
  async command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.line();
  }
  /** A whole multi-line response, status line to terminator, as sent. */
  async multiline(line: string): Promise<Buffer> {
    this.socket.write(`${line}\r\n`);
    return this.until(multilineEnd);
  }
}

function multilineEnd(d: Buffer): number {
  if (d.subarray(0, 4).toString() === '-ERR') return d.indexOf('\r\n') >= 0 ? d.indexOf('\r\n') + 2 : -1;
  const first = d.indexOf('\r\n');
  if (first < 0) return -1;
  const at = d.indexOf('\r\n.\r\n', first);
  return at >= 0 ? at + 5 : -1;
}

/** The body of a RETR response, unstuffed (RFC 1939 3). */
function unstuff(response: Buffer): Buffer {
  const body = response.subarray(response.indexOf('\r\n') + 2, response.length - 3);
  return unstuffed(body);
}

interface NodeProcess {
  child: ChildProcess;
  output: string;
}

describe('POP3 through the gateway', () => {
  const data = tempDir('quill-gw-pop3-');
  const nodes = new Map<string, NodeProcess>();
  const logs: string[] = [];
  let store: Store;
  let gateway: RunningGateway;
  let userId: number;
  let inboxId: number;
  // About 4 MB, with lines that need dot-stuffing. Large enough that a node killed mid-RETR has not
  // yet handed it all to the kernel (at 1 MB, on a busy machine, it sometimes had: nothing to resume).
  const big = Buffer.from(
    'From: big@example.com\r\nSubject: big\r\n\r\n' +
      Array.from({ length: 52_000 }, (_, i) => (i % 7 === 0 ? `.dotted line ${i} ${'y'.repeat(60)}` : `line ${i} ${'x'.repeat(70)}`)).join('\r\n') +
      '\r\n',
  );

  function startNode(id: string): void {
    const ports = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'node', '--id', id, '--data', data, '--trusted-gateway', '127.0.0.1', '--log-level', 'warn', ...ports], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const node: NodeProcess = { child, output: '' };
    child.stdout!.on('data', (c: Buffer) => (node.output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (node.output += c.toString()));
    nodes.set(id, node);
  }

  async function waitForNodes(count: number): Promise<void> {
    const end = Date.now() + 60_000;
    for (;;) {
      await gateway.directory.refresh();
      if (gateway.directory.candidates('pop3').length >= count) return;
      if (Date.now() > end) throw new Error(`nodes did not come up:\n${[...nodes.values()].map((n) => n.output).join('\n')}`);
      await sleep(100);
    }
  }

  async function waitForNode(id: string): Promise<void> {
    const end = Date.now() + 60_000;
    for (;;) {
      await gateway.directory.refresh();
      if (gateway.directory.candidates('pop3').some((n) => n.id === id)) return;
      if (Date.now() > end) throw new Error(`node ${id} did not come up:\n${nodes.get(id)?.output}`);
      await sleep(100);
    }
  }

  /** Kills the node the one open gateway session is on, and starts it again (in the background). */
  async function killSessionNode(): Promise<string> {
    const [nodeId] = gateway.frontSessions('pop3');
    assert.ok(nodeId && nodes.has(nodeId), `session is on a node (${nodeId})`);
    const victim = nodes.get(nodeId)!.child;
    const died = new Promise((resolve) => victim.once('exit', resolve));
    victim.kill('SIGKILL');
    await died;
    return nodeId;
  }

  async function uids(): Promise<number[]> {
    return (await store.listMessages(inboxId)).map((m) => m.uid);
  }

  async function login(client: Raw): Promise<string> {
    assert.match(await client.line(), /^\+OK /);
    assert.equal(await client.command('USER alice@example.com'), '+OK send PASS');
    return client.command('PASS alice-pw');
  }

  before(async () => {
    const config = testConfig(data, { gateway: { probeIntervalMs: 200, connectTimeoutMs: 1000 } });
    store = await openStore(config);
    await store.addDomain('example.com');
    userId = (await store.addUser({ address: 'alice@example.com', passwordHash: await hashPassword('alice-pw') })).id;
    inboxId = (await store.getMailbox(userId, 'INBOX'))!.id;
    await store.deliver(big, [{ userId }]);
    for (let i = 1; i <= 3; i++) await store.deliver(Buffer.from(`Subject: small ${i}\r\n\r\nbody ${i}\r\n`), [{ userId }]);
    for (const id of ['pn-1', 'pn-2']) startNode(id);
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logs.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    gateway = await startGateway(config, store, pino({ level: 'info' }, sink), { id: 'gw-pop3', protocols: ['pop3'] });
    await waitForNodes(2);
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

  it('logs in at the gateway (STLS, USER/PASS, AUTH PLAIN) and serves the maildrop from a node', async () => {
    const port = gateway.port('pop3');
    const results = await poplib(port, [['stls'], ['user', 'alice@example.com'], ['pass_', 'alice-pw'], ['stat'], ['uidl'], ['retr', 2], ['top', 3, 0], ['quit']]);
    assert.match(String(ok(results[1])), /^\+OK begin TLS/);
    assert.match(String(ok(results[3])), /^\+OK maildrop locked and ready, 4 messages/);
    const sizes = await Promise.all((await store.listMessages(inboxId)).map((m) => m.size));
    assert.deepEqual(ok(results[4]), [4, sizes.reduce((a, b) => a + b, 0)]);
    const [, uidl] = ok(results[5]) as [Buffer, Buffer[]];
    assert.equal(uidl.length, 4);
    const [, lines] = ok(results[6]) as [Buffer, Buffer[]];
    assert.deepEqual(lines.map(String), ['Subject: small 1', '', 'body 1']);
    const auth = await poplib(port, [['_shortcmd', `AUTH PLAIN ${Buffer.from('\0alice@example.com\0alice-pw').toString('base64')}`], ['noop'], ['quit']]);
    assert.match(String(ok(auth[1])), /^\+OK maildrop locked/);
    const wrong = await poplib(port, [['user', 'alice@example.com'], ['pass_', 'nope'], ['stat']]);
    assert.match((wrong[2] as { error: string }).error, /^-ERR \[AUTH\] authentication failed/);
    assert.match((wrong[3] as { error: string }).error, /^-ERR STAT is not valid in the AUTHORIZATION state/);
  });

  it('finishes a RETR of a 4 MB message byte for byte when its node is killed in the middle', async () => {
    const client = await Raw.connect(gateway.port('pop3'));
    assert.match(await login(client), /^\+OK maildrop locked and ready, 4 messages/);
    client.socket.write('RETR 1\r\n');
    await client.until((d) => (d.length >= 64 * 1024 ? 0 : -1));
    // Stop reading, so the node's writes back up behind the client, and kill the node.
    client.socket.pause();
    const killed = await killSessionNode();
    client.socket.resume();
    const response = await client.until(multilineEnd);
    assert.match(response.subarray(0, 40).toString(), new RegExp(`^\\+OK ${big.length} octets\\r\\n`));
    assert.ok(unstuff(response).equals(big), 'the message arrives whole and exact');
    assert.equal(await client.command('NOOP'), '+OK', 'the session goes on');
    assert.notEqual(gateway.frontSessions('pop3')[0], killed);
    assert.ok(logs.some((l) => l.includes('resuming a POP3 response')), 'the response was resumed on another node');
    assert.match(await client.command('QUIT'), /^\+OK bye/);
    startNode(killed);
    await waitForNodes(2);
  });

  it('deletes once when the node dies between DELE and QUIT, and the client hears +OK', async () => {
    const before = await uids();
    const client = await Raw.connect(gateway.port('pop3'));
    assert.match(await login(client), /^\+OK /);
    assert.match(await client.command('DELE 2'), /^\+OK message 2 deleted/);
    const killed = await killSessionNode();
    // Started again at once: its start (seconds on a busy machine) overlaps the rest of the test.
    startNode(killed);
    assert.match(await client.command('STAT'), /^\+OK 3 /, 'the mark survives the move');
    assert.match(await client.command('RETR 2'), /^-ERR message 2 already deleted/);
    const killedAgain = await killSessionNode();
    startNode(killedAgain);
    await waitForNode(killed);
    assert.match(await client.command('QUIT'), /^\+OK bye/);
    assert.deepEqual(await uids(), [before[0], ...before.slice(2)], 'message 2 and only it is gone');
    await waitForNodes(2);
  });

  it('keeps the view of login when mail arrives before a move', async () => {
    const client = await Raw.connect(gateway.port('pop3'));
    assert.match(await login(client), /^\+OK maildrop locked and ready, 3 messages/);
    const stat = await client.command('STAT');
    const list = (await client.multiline('LIST')).toString();
    await store.deliver(Buffer.from('Subject: late\r\n\r\nlate\r\n'), [{ userId }]);
    const killed = await killSessionNode();
    assert.equal(await client.command('STAT'), stat, 'the new node counts only the old view');
    assert.equal((await client.multiline('LIST')).toString(), list);
    assert.equal(await client.command('RETR 4'), '-ERR no such message');
    assert.match(await client.command('RSET'), /^\+OK maildrop has 3 messages/);
    assert.match(await client.command('QUIT'), /^\+OK bye/);
    startNode(killed);
    await waitForNodes(2);
  });

  /**
   * A stand-in node with the real store: it marks what DELE names and, at QUIT, removes the
   * marked messages (or not) and drops the connection without answering — a node that died
   * in the middle of its UPDATE, before or after the commit.
   */
  async function standIn(commits: boolean): Promise<{ close(): Promise<void> }> {
    const inbox = (await store.getMailbox(userId, 'INBOX'))!;
    let healthy = true;
    const health = http.createServer((_req, res) => {
      res.statusCode = healthy ? 200 : 503;
      res.end('{}');
    });
    const pop3 = net.createServer((socket) => {
      socket.on('error', () => undefined);
      void readProxyHeader(socket).then(async () => {
        const listing = await store.listMessages(inboxId);
        const marks: number[] = [];
        let buffered = '';
        socket.write('+OK stand-in\r\n');
        socket.on('data', async (chunk: Buffer) => {
          buffered += chunk.toString();
          let end: number;
          while ((end = buffered.indexOf('\r\n')) >= 0) {
            const [verb = '', arg] = buffered.slice(0, end).split(' ');
            buffered = buffered.slice(end + 2);
            if (verb === 'XCLIENT') socket.write(`+OK maildrop locked and ready, ${listing.length} messages\r\n`);
            else if (verb === 'UIDL') socket.write(`+OK\r\n${listing.map((m, i) => `${i + 1} ${inbox.uidvalidity}.${m.uid}\r\n`).join('')}.\r\n`);
            else if (verb === 'DELE') {
              marks.push(listing[Number(arg) - 1]!.uid);
              socket.write(`+OK message ${arg} deleted\r\n`);
            } else if (verb === 'QUIT') {
              healthy = false;
              if (commits) await store.expunge(inboxId, marks, false);
              socket.destroy();
            } else socket.write('+OK\r\n');
          }
        });
        socket.resume();
      }, () => socket.destroy());
    });
    await new Promise<void>((resolve) => health.listen(0, '127.0.0.1', () => resolve()));
    await new Promise<void>((resolve) => pop3.listen(0, '127.0.0.1', () => resolve()));
    const addressOf = (server: net.Server | http.Server) => `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const beat = () =>
      store.heartbeat({
        id: 'stand-in',
        kind: 'node',
        state: 'active',
        version: 'test',
        addresses: { pop3: addressOf(pop3), http: addressOf(health) },
        load: { connections: {}, eventLoopDelayMs: 0, cpuPercent: 0, rssBytes: 0 },
        startedAt: new Date(),
      });
    await beat();
    const timer = setInterval(() => void beat(), 500);
    return {
      async close() {
        clearInterval(timer);
        await store.removeMember('stand-in');
        health.close();
        pop3.close();
      },
    };
  }

  for (const commits of [true, false]) {
    it(`answers +OK to a QUIT whose node died ${commits ? 'after' : 'before'} committing, deleting once`, async () => {
      const before = await uids();
      const node = await standIn(commits);
      try {
        // Only the stand-in takes new sessions while the real nodes are drained.
        for (const id of nodes.keys()) await store.requestMemberState(id, 'draining');
        const end = Date.now() + 20_000;
        for (;;) {
          await gateway.directory.refresh();
          if (gateway.directory.candidates('pop3').map((n) => n.id).join() === 'stand-in') break;
          if (Date.now() > end) throw new Error('the real nodes were not drained');
          await sleep(100);
        }
        const client = await Raw.connect(gateway.port('pop3'));
        assert.match(await login(client), /^\+OK /);
        assert.equal(gateway.frontSessions('pop3')[0], 'stand-in');
        assert.match(await client.command('DELE 1'), /^\+OK /);
        for (const id of nodes.keys()) await store.requestMemberState(id, 'active');
        for (const id of nodes.keys()) await waitForNode(id);
        assert.match(await client.command('QUIT'), /^\+OK bye/);
        assert.deepEqual(await uids(), before.slice(1), 'the marked message, and only it, is gone');
      } finally {
        await node.close();
      }
    });
  }

  it('ends the session with -ERR [SYS/TEMP] when the maildrop changed behind it', async () => {
    const client = await Raw.connect(gateway.port('pop3'));
    assert.match(await login(client), /^\+OK /);
    assert.match(await client.command('NOOP'), /^\+OK/);
    // Another client (IMAP) expunges message 1 while the session's node dies.
    const [first] = await uids();
    await store.expunge(inboxId, [first!], false);
    const killed = await killSessionNode();
    assert.match(await client.command('STAT'), /^-ERR \[SYS\/TEMP\] /);
    await client.until((d) => (client.closed ? d.length : -1));
    assert.ok(client.closed, 'and closes the connection');
    startNode(killed);
    await waitForNodes(2);
  });
});
