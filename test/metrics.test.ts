// /metrics on a node's HTTP port and on the gateway's admin port: real sessions over SMTP,
// IMAP and POP3, then a scrape parsed as Prometheus text, and the counters must have moved.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { Wire } from './clients/imap.js';
import { Pop3Client } from './clients/pop3.js';
import { dataBlock, WireClient } from './clients/smtp.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { silentLogger } from '../src/util/logger.js';
import { startTestServer, tempDir, testConfig, type TestServer } from './helpers.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format (0.0.4): `name{label="value",...} number`, comments skipped. */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    const body = match[2] ?? '';
    const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
    let consumed = 0;
    for (let m = pair.exec(body); m; m = pair.exec(body)) {
      labels[m[1]!] = m[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      consumed += m[0].length;
    }
    assert.equal(consumed, body.length, `bad labels in: ${line}`);
    const value = match[3] === '+Inf' ? Infinity : match[3] === '-Inf' ? -Infinity : Number(match[3]);
    // prom-client writes an empty event-loop histogram's mean as "Nan" (read case-insensitively by Prometheus).
    assert.ok(!Number.isNaN(value) || /^nan$/i.test(match[3] ?? ''), `bad value in: ${line}`);
    samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}

/** The sum of the samples of a name whose labels include all of `labels`. */
function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const matching = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return matching.length === 0 ? undefined : matching.reduce((sum, s) => sum + s.value, 0);
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }));
      })
      .on('error', reject);
  });
}

async function scrape(port: number, headers: Record<string, string> = {}): Promise<Sample[]> {
  const res = await get(port, '/metrics', headers);
  assert.equal(res.status, 200, res.body);
  assert.match(res.type, /^text\/plain; version=0\.0\.4/);
  return parseMetrics(res.body);
}

/** ann@example.com submits one message to a recipient on another domain. */
async function submit(port: number): Promise<void> {
  const submission = await WireClient.connect(port);
  await submission.read();
  await submission.command('EHLO client.example.net');
  const auth = await submission.command(`AUTH PLAIN ${Buffer.from('\0ann@example.com\0ann-secret-1').toString('base64')}`);
  assert.equal(auth.code, 235, auth.text);
  assert.equal((await submission.command('MAIL FROM:<ann@example.com>')).code, 250);
  assert.equal((await submission.command('RCPT TO:<carol@elsewhere.example>')).code, 250);
  assert.equal((await submission.command('DATA')).code, 354);
  submission.write(dataBlock(Buffer.from('From: ann@example.com\r\nTo: carol@elsewhere.example\r\nSubject: out\r\n\r\nbye\r\n')));
  assert.equal((await submission.read()).code, 250);
  await submission.command('QUIT');
  submission.close();
}

describe('metrics on a node', () => {
  let server: TestServer;
  const node = 'metrics-node';

  before(async () => {
    server = await startTestServer({ nodeId: node });
    await server.addUser('ann@example.com', 'ann-secret-1');
  });

  after(() => server.stop());

  it('counts sessions, commands, deliveries and store calls, and shows open connections', async () => {
    const smtp = await WireClient.connect(server.port('smtp'));
    assert.equal((await smtp.read()).code, 220);
    assert.equal((await smtp.command('EHLO client.example.net')).code, 250);
    assert.equal((await smtp.command('MAIL FROM:<bob@example.net>')).code, 250);
    assert.equal((await smtp.command('RCPT TO:<ann@example.com>')).code, 250);
    assert.equal((await smtp.command('DATA')).code, 354);
    smtp.write(dataBlock(Buffer.from('From: bob@example.net\r\nTo: ann@example.com\r\nSubject: hi\r\n\r\nhello\r\n')));
    assert.equal((await smtp.read()).code, 250);
    await smtp.command('QUIT');
    smtp.close();

    const { client: imap } = await Wire.connect(server.port('imap'));
    await imap.login('ann@example.com', 'ann-secret-1');
    assert.match((await imap.commandLines('SELECT INBOX')).tagged, /OK/);

    const pop3 = await Pop3Client.connect(server.port('pop3'));
    // IMAP still open: the connections gauge shows it.
    const during = await scrape(server.port('http'));
    assert.ok((total(during, 'quill_connections_open', { node, protocol: 'imap' }) ?? 0) >= 1, 'open IMAP connection in the gauge');
    assert.notEqual(total(during, 'quill_connections_open', { node, protocol: 'smtp' }), undefined);
    await pop3.login('ann@example.com', 'ann-secret-1');
    assert.match(await pop3.command('STAT'), /^\+OK 1 /);
    await pop3.command('QUIT');
    await imap.commandLines('LOGOUT');
    imap.destroy();

    const samples = await scrape(server.port('http'));
    assert.ok((total(samples, 'quill_deliveries_total', { node, path: 'smtp', result: 'stored' }) ?? 0) >= 1, 'a stored delivery');
    assert.ok((total(samples, 'quill_commands_total', { node, protocol: 'imap', command: 'LOGIN' }) ?? 0) >= 1, 'IMAP LOGIN counted');
    assert.ok((total(samples, 'quill_commands_total', { node, protocol: 'imap', command: 'SELECT' }) ?? 0) >= 1, 'IMAP SELECT counted');
    assert.ok((total(samples, 'quill_commands_total', { node, protocol: 'pop3', command: 'PASS' }) ?? 0) >= 1, 'POP3 PASS counted');
    assert.ok((total(samples, 'quill_commands_total', { node, protocol: 'smtp', command: 'RCPT' }) ?? 0) >= 1, 'SMTP RCPT counted');
    for (const protocol of ['smtp', 'imap', 'pop3']) {
      assert.ok((total(samples, 'quill_connections_total', { node, protocol }) ?? 0) >= 1, `${protocol} connection counted`);
    }
    for (const protocol of ['imap', 'pop3']) assert.ok((total(samples, 'quill_authentications_total', { node, protocol, result: 'ok' }) ?? 0) >= 1, `${protocol} login counted`);
    assert.ok((total(samples, 'quill_store_seconds_count', { node, operation: 'deliver' }) ?? 0) >= 1, 'deliver timed');
    assert.ok((total(samples, 'quill_store_seconds_count', { node }) ?? 0) > 0, 'store latency histogram filled');
    assert.equal(total(samples, 'quill_outbound_queue_messages', { node, status: 'queued' }), 0);
    assert.ok((total(samples, 'quill_http_requests_total', { node, route: '/metrics', status: '200' }) ?? 0) >= 1, 'the first scrape counted');
    assert.ok((total(samples, 'process_resident_memory_bytes') ?? 0) > 0, 'default process metrics');
  });

  it('counts what the outbound worker did with a message to another domain', async () => {
    await submit(server.port('submission'));
    let done = 0;
    for (let i = 0; i < 100 && done === 0; i++) {
      done = total(await scrape(server.port('http')), 'quill_deliveries_total', { node, path: 'outbound' }) ?? 0;
      if (done === 0) await sleep(100);
    }
    assert.ok(done >= 1, 'an outbound attempt counted (bounced or deferred: the test DNS knows no MX)');
  });
});

describe('metrics with a token, no outbound worker', () => {
  let server: TestServer;
  const node = 'metrics-token-node';
  const token = 'scrape-token-0123456789';

  before(async () => {
    server = await startTestServer({ nodeId: node, overrides: { metrics: { token }, outbound: { enabled: false } } });
    await server.addUser('ann@example.com', 'ann-secret-1');
  });

  after(() => server.stop());

  it('refuses a scrape without the bearer token and serves one with it', async () => {
    assert.equal((await get(server.port('http'), '/metrics')).status, 401);
    assert.equal((await get(server.port('http'), '/metrics', { authorization: 'Bearer wrong-token-0123456789' })).status, 401);
    const samples = await scrape(server.port('http'), { authorization: `Bearer ${token}` });
    assert.ok(samples.some((s) => s.name === 'quill_connections_open'));
  });

  it('shows the outbound queue by status', async () => {
    await submit(server.port('submission'));
    await submit(server.port('submission'));
    // The figure is cached for a few seconds (the previous test's scrape read it): wait it out.
    let samples = await scrape(server.port('http'), { authorization: `Bearer ${token}` });
    for (let i = 0; i < 100 && total(samples, 'quill_outbound_queue_messages', { node, status: 'queued' }) !== 2; i++) {
      await sleep(100);
      samples = await scrape(server.port('http'), { authorization: `Bearer ${token}` });
    }
    assert.equal(total(samples, 'quill_outbound_queue_messages', { node, status: 'queued' }), 2);
    assert.equal(total(samples, 'quill_outbound_queue_messages', { node, status: 'held' }), 0);
  });
});

describe('metrics on the gateway', () => {
  const data = tempDir('quill-metrics-gw-');
  let node: TestServer;
  let store: SqliteStore;
  let gateway: RunningGateway;

  before(async () => {
    node = await startTestServer({ dataDir: data, nodeId: 'metrics-gw-node' });
    store = await SqliteStore.open(data);
    const config = testConfig(data, { gateway: { probeIntervalMs: 60_000, connectTimeoutMs: 500, adminListen: '127.0.0.1:0' } });
    gateway = await startGateway(config, store, silentLogger(), { id: 'metrics-gw', protocols: ['http', 'pop3'] });
  });

  after(async () => {
    await gateway.close();
    await node.stop();
    await store.close();
    rmSync(data, { recursive: true, force: true });
  });

  it('serves /healthz, /readyz and /metrics with a session count after a proxied connection', async () => {
    const admin = gateway.adminPort!;
    assert.ok(admin > 0);
    assert.equal((await get(admin, '/healthz')).status, 200);
    assert.equal((await get(admin, '/readyz')).status, 200);
    const pop3 = await Pop3Client.connect(gateway.port('pop3'));
    assert.match(pop3.greeting, /^\+OK/);
    assert.match(await pop3.command('QUIT'), /^\+OK/);
    const samples = await scrape(admin);
    assert.ok((total(samples, 'quill_gateway_sessions_total', { gateway: 'metrics-gw', protocol: 'pop3' }) ?? 0) >= 1, 'a gateway session counted');
    assert.equal(total(samples, 'quill_gateway_nodes', { gateway: 'metrics-gw', health: 'healthy' }), 1);
    assert.notEqual(total(samples, 'quill_gateway_sessions_open', { gateway: 'metrics-gw', protocol: 'pop3' }), undefined);
    assert.equal((await get(admin, '/nothing')).status, 404);
  });

  it('is not ready once no node is live', async () => {
    await node.stop();
    await gateway.directory.refresh();
    const res = await get(gateway.adminPort!, '/readyz');
    assert.equal(res.status, 503, res.body);
  });
});

describe('gateway failover in the metrics', () => {
  const data = tempDir('quill-metrics-failover-');
  const nodes = new Map<string, TestServer>();
  let store: SqliteStore;
  let gateway: RunningGateway;

  before(async () => {
    // Nodes believe the gateway (PROXY, XCLIENT) and give up on open transactions quickly when stopped.
    const overrides = { trustedGateways: ['127.0.0.1'], shutdownTimeoutSeconds: 0.5 };
    for (const id of ['failover-a', 'failover-b']) nodes.set(id, await startTestServer({ dataDir: data, nodeId: id, overrides }));
    await nodes.get('failover-a')!.addUser('ann@example.com', 'ann-secret-1');
    store = await SqliteStore.open(data);
    const config = testConfig(data, { gateway: { probeIntervalMs: 60_000, connectTimeoutMs: 500, adminListen: '127.0.0.1:0' } });
    gateway = await startGateway(config, store, silentLogger(), { id: 'failover-gw', protocols: ['smtp', 'http'] });
  });

  after(async () => {
    await gateway.close();
    await Promise.allSettled([...nodes.values()].map((node) => node.stop()));
    await store.close();
    rmSync(data, { recursive: true, force: true });
  });

  it("keeps nodes' /metrics off the gateway's public HTTP port", async () => {
    assert.equal((await get(gateway.port('http'), '/healthz')).status, 200);
    assert.equal((await get(gateway.port('http'), '/metrics')).status, 404);
    // A scraper on the gateway's own host, talking to the node directly, is served.
    assert.equal((await get(nodes.get('failover-a')!.services.get('http')!.port, '/metrics')).status, 200);
  });

  it('counts a transaction replayed on another node after its node stopped', async () => {
    const smtp = await WireClient.connect(gateway.port('smtp'));
    assert.equal((await smtp.read()).code, 220);
    assert.equal((await smtp.command('EHLO client.example.net')).code, 250);
    assert.equal((await smtp.command('MAIL FROM:<bob@example.net>')).code, 250);
    assert.equal((await smtp.command('RCPT TO:<ann@example.com>')).code, 250);
    const [first] = gateway.frontSessions('smtp');
    assert.ok(first && nodes.has(first), `session on a node: ${first}`);
    await nodes.get(first)!.stop();
    // The front lets go of the link once it has seen it close (what the node said while
    // shutting down goes with it); the next command then replays the transaction elsewhere.
    for (let i = 0; i < 100 && gateway.frontSessions('smtp')[0] !== undefined; i++) await sleep(20);

    const data = await smtp.command('DATA');
    assert.equal(data.code, 354, data.text);
    smtp.write(dataBlock(Buffer.from('From: bob@example.net\r\nTo: ann@example.com\r\nSubject: moved\r\n\r\nhello\r\n')));
    assert.equal((await smtp.read()).code, 250);
    await smtp.command('QUIT');
    smtp.close();
    const [second] = [...nodes.keys()].filter((id) => id !== first);

    const samples = await scrape(gateway.adminPort!);
    assert.ok((total(samples, 'quill_gateway_failovers_total', { gateway: 'failover-gw', protocol: 'smtp' }) ?? 0) >= 1, 'the replay counted');
    assert.ok((total(samples, 'quill_deliveries_total', { node: second!, path: 'smtp', result: 'stored' }) ?? 0) >= 1, 'stored by the other node');
    assert.notEqual(total(samples, 'quill_gateway_imap_events_total', { event: 'failover' }), undefined);
  });
});
