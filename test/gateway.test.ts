// The gateway in front of two nodes sharing one store: sessions go to live nodes by load,
// a dead or drained node gets none, and clients past the limits hear a temporary error.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { readProxyHeader } from '../src/protocol/proxy-header.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { silentLogger } from '../src/util/logger.js';
import { hashPassword } from '../src/util/password.js';
import { startTestServer, tempDir, testConfig, type TestServer } from './helpers.js';

function get(port: number, path = '/healthz'): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      })
      .on('error', reject);
  });
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Reads what a server says first on a fresh connection to the port. */
function firstWords(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve(text));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

describe('gateway over two nodes', () => {
  const data = tempDir('quill-gw-');
  let a: TestServer;
  let b: TestServer;
  let store: SqliteStore;
  let gateway: RunningGateway;

  before(async () => {
    a = await startTestServer({ dataDir: data, nodeId: 'node-a' });
    b = await startTestServer({ dataDir: data, nodeId: 'node-b' });
    store = await SqliteStore.open(data);
    // Probes and membership reads happen when a test calls refresh(), so each test decides
    // what the gateway knows.
    const config = testConfig(data, { gateway: { probeIntervalMs: 60_000, connectTimeoutMs: 500 } });
    gateway = await startGateway(config, store, silentLogger(), { id: 'gw-1', protocols: ['http', 'pop3'] });
  });

  after(async () => {
    await gateway.close();
    await Promise.allSettled([a.stop(), b.stop()]);
    await store.close();
  });

  it('hands sessions to both live nodes and registers itself in the membership', async () => {
    const answered = new Set<string>();
    for (let i = 0; i < 20 && answered.size < 2; i++) {
      const res = await get(gateway.port('http'));
      assert.equal(res.status, 200);
      answered.add((JSON.parse(res.body) as { node: string }).node);
      await sleep(60);
      await gateway.directory.refresh(); // new load figures
    }
    assert.deepEqual([...answered].sort(), ['node-a', 'node-b']);
    const members = await store.listMembers();
    assert.ok(members.some((m) => m.id === 'gw-1' && m.kind === 'gateway'), 'gateway heartbeat present');
  });

  it('sends nothing to a drained node, and uses it again after undrain', async () => {
    assert.ok(await store.requestMemberState('node-a', 'draining'));
    await until('node-a drained', async () => (await gateway.directory.refresh(), true) && gateway.directory.candidates('http').every((n) => n.id !== 'node-a'));
    for (let i = 0; i < 6; i++) assert.equal((JSON.parse((await get(gateway.port('http'))).body) as { node: string }).node, 'node-b');
    assert.ok(await store.requestMemberState('node-a', 'active'));
    await until('node-a back', async () => (await gateway.directory.refresh(), true) && gateway.directory.candidates('http').some((n) => n.id === 'node-a'));
  });

  it('keeps serving when a node dies, without a failed request', async () => {
    // node-b's HTTP listener dies while its heartbeat goes on claiming it: only the gateway's
    // own failed connections and probes can keep sessions away from it.
    await b.services.get('http')!.close(new Date());
    assert.ok(gateway.directory.candidates('http').some((n) => n.id === 'node-b'), 'node-b still looks alive');
    for (let i = 0; i < 10; i++) {
      const res = await get(gateway.port('http'));
      assert.equal(res.status, 200, `request ${i}`);
      assert.equal((JSON.parse(res.body) as { node: string }).node, 'node-a');
    }
    assert.ok(!gateway.directory.candidates('http').some((n) => n.id === 'node-b'), 'node-b taken out after its failed connection');
  });

  it("answers in the protocol's words when no node can take a session", async () => {
    await a.stop();
    await until('no nodes left', async () => (await gateway.directory.refresh(), true) && gateway.directory.candidates('http').length === 0);
    const res = await get(gateway.port('http'));
    assert.equal(res.status, 503);
    assert.equal(res.headers['retry-after'], '5');
    assert.match(await firstWords(gateway.port('pop3')), /^-ERR \[SYS\/TEMP\] /);
  });
});

describe('gateway limits', () => {
  it('queues clients past maxSessions, then refuses them with a temporary error', async () => {
    const data = tempDir('quill-gw-limit-');
    const node = await startTestServer({ dataDir: data, nodeId: 'node-q' });
    const store = await SqliteStore.open(data);
    const config = testConfig(data, { gateway: { maxSessions: 1, queueLength: 1, queueTimeoutMs: 400 } });
    const gateway = await startGateway(config, store, silentLogger(), { id: 'gw-limit', protocols: ['http'] });
    try {
      // One session holds the only slot (an idle keep-alive HTTP connection to the node).
      const holder = net.connect({ host: '127.0.0.1', port: gateway.port('http') });
      await new Promise((resolve) => holder.once('connect', resolve));
      await sleep(100);
      const queued = get(gateway.port('http')); // waits in the queue
      await sleep(50);
      const refused = await get(gateway.port('http')); // queue full: refused at once
      assert.equal(refused.status, 503);
      assert.equal((await queued).status, 503, 'a queued client gives up after queueTimeoutMs');
      holder.destroy();
      await until('slot free', async () => (await get(gateway.port('http'))).status === 200);
    } finally {
      await gateway.close();
      await node.stop();
      await store.close();
    }
  });
});

describe('gateway PROXY header', () => {
  it("tells the node the client's own address and port", async () => {
    const data = tempDir('quill-gw-proxy-');
    const store = await SqliteStore.open(data);
    await store.addDomain('example.com');
    await store.addUser({ address: 'alice@example.com', passwordHash: await hashPassword('pw') });
    // A stand-in node: healthy on HTTP; on POP3 the gateway's login (XCLIENT, after the
    // client's USER/PASS) is answered with what the PROXY line said.
    const health = http.createServer((_req, res) => res.end('{}'));
    const pop3 = net.createServer((socket) => {
      readProxyHeader(socket).then(
        (proxied) => {
          socket.write('+OK stand-in\r\n');
          socket.on('data', (chunk: Buffer) => {
            for (const line of chunk.toString().split('\r\n').filter(Boolean)) {
              if (line.startsWith('XCLIENT ')) socket.write(`+OK ${proxied?.remoteAddress} ${proxied?.remotePort}\r\n`);
              else if (line === 'UIDL') socket.write('+OK\r\n.\r\n');
              else socket.end('+OK bye\r\n');
            }
          });
          socket.resume();
        },
        () => socket.destroy(),
      );
    });
    await new Promise<void>((resolve) => health.listen(0, '127.0.0.1', () => resolve()));
    await new Promise<void>((resolve) => pop3.listen(0, '127.0.0.1', () => resolve()));
    const addressOf = (server: net.Server | http.Server) => `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    await store.heartbeat({
      id: 'stand-in',
      kind: 'node',
      state: 'active',
      version: 'test',
      addresses: { pop3: addressOf(pop3), http: addressOf(health) },
      load: { connections: {}, eventLoopDelayMs: 0, cpuPercent: 0, rssBytes: 0 },
      startedAt: new Date(),
    });
    const gateway = await startGateway(testConfig(data, { gateway: { proxyProtocol: true } }), store, silentLogger(), { id: 'gw-proxy', protocols: ['pop3'] });
    try {
      const client = net.connect({ host: '127.0.0.1', port: gateway.port('pop3') });
      let text = '';
      let localPort: number | undefined;
      client.once('connect', () => {
        localPort = client.localPort;
        client.write('USER alice@example.com\r\nPASS pw\r\nQUIT\r\n');
      });
      client.setEncoding('utf8');
      client.on('data', (chunk: string) => (text += chunk));
      await new Promise((resolve) => client.once('close', resolve));
      assert.equal(text.split('\r\n')[2], `+OK 127.0.0.1 ${localPort}`);
    } finally {
      await gateway.close();
      await store.close();
      health.close();
      pop3.close();
    }
  });
});

describe('gateway screening', () => {
  it('refuses blocklisted networks, too many sessions or connections from one address, and early talkers', async () => {
    const data = tempDir('quill-gw-screen-');
    const node = await startTestServer({ dataDir: data, nodeId: 'node-s' });
    const store = await SqliteStore.open(data);
    const config = testConfig(data, {
      gateway: { blocklist: ['127.0.0.3', '127.0.1.0/24'], sessionsPerIp: 2, connectsPerIpPerMinute: 6, smtpGreetDelayMs: 300 },
    });
    const gateway = await startGateway(config, store, silentLogger(), { id: 'gw-screen', protocols: ['http', 'smtp'] });
    const from = (localAddress: string, port = gateway.port('http')) =>
      new Promise<string>((resolve, reject) => {
        const socket = net.connect({ host: '127.0.0.1', port, localAddress }, () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => (text += chunk));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
    try {
      assert.match(await from('127.0.0.3'), /^HTTP\/1\.1 403 /, 'a listed address');
      assert.match(await from('127.0.1.9'), /^HTTP\/1\.1 403 /, 'an address in a listed network');
      assert.match(await from('127.0.0.4'), /^HTTP\/1\.1 200 /, 'anyone else');

      // Two idle sessions from 127.0.0.5 fill its share; a third is turned away.
      const held = await Promise.all([1, 2].map(() => new Promise<net.Socket>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: gateway.port('http'), localAddress: '127.0.0.5' }, () => resolve(s));
      })));
      await sleep(100);
      assert.match(await from('127.0.0.5'), /^HTTP\/1\.1 503 /);
      held.forEach((s) => s.destroy());

      // 127.0.0.6 may open six connections a minute; the seventh is refused.
      for (let i = 0; i < 6; i++) assert.match(await from('127.0.0.6'), /^HTTP\/1\.1 200 /, `connection ${i + 1}`);
      assert.match(await from('127.0.0.6'), /^HTTP\/1\.1 503 /);

      // An SMTP client that speaks before the greeting is refused.
      assert.match(await from('127.0.0.7', gateway.port('smtp')), /^554 5\.5\.0 /);
    } finally {
      await gateway.close();
      await node.stop();
      await store.close();
    }
  });
});
