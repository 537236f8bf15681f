// The gateway's HTTP front end: a request whose node fails before answering goes to another
// node when it may be repeated (RFC 9110 9.2.2), and gets a clear 502 when it may not. Two
// stand-in nodes make the failure exact: one takes each request and dies on it, one answers.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { silentLogger } from '../src/util/logger.js';
import { tempDir, testConfig } from './helpers.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(port: number, method: string, path: string, body?: string, agent: http.Agent | false = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // A client cannot pass itself off as having come over TLS.
    const headers: http.OutgoingHttpHeaders = { 'x-forwarded-proto': 'https', ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const BIG = Buffer.alloc(5 * 1024 * 1024, 'quillmail ');

describe('gateway HTTP front end', () => {
  const data = tempDir('quill-gw-http-');
  let store: SqliteStore;
  let gateway: RunningGateway;
  const seenByDying: string[] = [];
  const seenByWorking: string[] = [];

  // Dies on every request but the gateway's health probe, after reading it whole.
  const dying = http.createServer((req, res) => {
    if (req.url === '/healthz') return void res.end('{"ok":true}');
    seenByDying.push(`${req.method} ${req.url}`);
    req.resume();
    req.once('end', () => req.socket.destroy());
  });
  const working = http.createServer((req, res) => {
    if (req.url === '/healthz') return void res.end('{"ok":true}');
    seenByWorking.push(`${req.method} ${req.url}`);
    if (req.url === '/big') return void res.end(BIG);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ node: 'b-working', method: req.method, url: req.url, body: Buffer.concat(chunks).toString(), proto: req.headers['x-forwarded-proto'] }));
    });
  });
  const addressOf = (server: http.Server) => `127.0.0.1:${(server.address() as net.AddressInfo).port}`;

  async function beat(): Promise<void> {
    for (const [id, server] of [['a-dying', dying], ['b-working', working]] as const) {
      await store.heartbeat({
        id,
        kind: 'node',
        state: 'active',
        version: 'test',
        addresses: { http: addressOf(server) },
        load: { connections: {}, eventLoopDelayMs: 0, cpuPercent: 0, rssBytes: 0 },
        startedAt: new Date(),
      });
    }
  }

  before(async () => {
    store = await SqliteStore.open(data);
    await new Promise<void>((resolve) => dying.listen(0, '127.0.0.1', () => resolve()));
    await new Promise<void>((resolve) => working.listen(0, '127.0.0.1', () => resolve()));
    await beat();
    const config = testConfig(data, { gateway: { probeIntervalMs: 60_000, connectTimeoutMs: 500 } });
    gateway = await startGateway(config, store, silentLogger(), { id: 'gw-http', protocols: ['http'] });
  });

  after(async () => {
    await gateway.close();
    await store.close();
    dying.close();
    working.close();
  });

  // Each case starts with both nodes healthy, equally loaded: the dying one (first by name) is picked first.
  beforeEach(async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    await beat();
    await gateway.directory.refresh();
    assert.deepEqual(
      gateway.directory.candidates('http').map((n) => n.id),
      ['a-dying', 'b-working'],
    );
    seenByDying.length = 0;
    seenByWorking.length = 0;
  });

  it('sends a GET whose node died on it to the next node; the client sees only the answer', async () => {
    const answer = await request(gateway.port('http'), 'GET', '/api/mailboxes?x=1');
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.body.toString()), { node: 'b-working', method: 'GET', url: '/api/mailboxes?x=1', body: '', proto: 'http' });
    assert.deepEqual(seenByDying, ['GET /api/mailboxes?x=1']);
    assert.ok(!gateway.directory.candidates('http').some((n) => n.id === 'a-dying'), 'the dying node is taken out');
  });

  it('repeats a PUT with its body on the next node', async () => {
    const answer = await request(gateway.port('http'), 'PUT', '/api/things/7', '{"name":"seven"}');
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.body.toString()), { node: 'b-working', method: 'PUT', url: '/api/things/7', body: '{"name":"seven"}', proto: 'http' });
    assert.deepEqual(seenByDying, ['PUT /api/things/7']);
  });

  it('does not repeat a POST: the client hears a clear 502 instead', async () => {
    const answer = await request(gateway.port('http'), 'POST', '/api/send', '{"to":"x"}');
    assert.equal(answer.status, 502);
    assert.match(JSON.parse(answer.body.toString()).error, /may or may not have been applied/);
    assert.deepEqual(seenByDying, ['POST /api/send']);
    assert.deepEqual(seenByWorking, [], 'the POST went to one node only');
  });

  it('keeps a client connection alive across requests and carries large answers byte for byte', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await request(gateway.port('http'), 'GET', '/one', undefined, agent);
      const big = await request(gateway.port('http'), 'GET', '/big', undefined, agent);
      const third = await request(gateway.port('http'), 'GET', '/three', undefined, agent);
      assert.equal(first.status, 200);
      assert.equal(third.status, 200);
      assert.equal(big.body.length, BIG.length);
      assert.equal(createHash('sha256').update(big.body).digest('hex'), createHash('sha256').update(BIG).digest('hex'));
      assert.deepEqual(seenByWorking, ['GET /one', 'GET /big', 'GET /three']);
    } finally {
      agent.destroy();
    }
  });

  it('answers 503 with Retry-After when every node fails', async () => {
    working.closeAllConnections();
    const port = addressOf(working);
    await new Promise<void>((resolve) => working.close(() => resolve()));
    try {
      const answer = await request(gateway.port('http'), 'GET', '/api/x');
      assert.equal(answer.status, 503);
      assert.equal(answer.headers['retry-after'], '5');
      assert.match(JSON.parse(answer.body.toString()).error, /no mail server is available/);
    } finally {
      await new Promise<void>((resolve) => working.listen(Number(port.split(':')[1]), '127.0.0.1', () => resolve()));
    }
  });
});
