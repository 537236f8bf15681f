// /healthz and /readyz on the node's HTTP port (Fastify), over a real socket.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { WebClient } from './test-kit.js';

describe('web: health', () => {
  let server: TestServer;
  let base: string;

  before(async () => {
    server = await startTestServer({ nodeId: 'web-health-node' });
    base = `http://127.0.0.1:${server.port('http')}`;
  });
  after(async () => server.stop());

  it('/healthz answers 200 with the store kind and node name', async () => {
    const response = await fetch(`${base}/healthz`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await response.json(), { status: 'ok', store: server.store.kind, node: 'web-health-node' });
  });

  it('/readyz is 200 while active and 503 once the node is asked to drain', async () => {
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready', node: 'web-health-node' });
    assert.equal(await server.store.requestMemberState('web-health-node', 'draining'), true);
    const draining = await fetch(`${base}/readyz`);
    assert.equal(draining.status, 503);
    assert.equal(((await draining.json()) as { status: string }).status, 'draining');
    await server.store.requestMemberState('web-health-node', 'active');
    await server.membership.beat();
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
  });

  it('describes the API in an OpenAPI document built from the route schemas', async () => {
    const response = await fetch(`${base}/api/openapi.json`);
    assert.equal(response.status, 200);
    const doc = (await response.json()) as { openapi: string; paths: Record<string, Record<string, { security?: unknown[]; requestBody?: unknown; parameters: { name: string; in: string }[] }>> };
    assert.equal(doc.openapi, '3.1.0');
    assert.deepEqual(doc.paths['/login']?.post?.security, [], 'login needs no session');
    assert.ok(doc.paths['/login']?.post?.requestBody);
    assert.deepEqual(doc.paths['/send']?.post?.security, [{ session: [], csrf: [] }]);
    const list = doc.paths['/mailboxes/{name}/messages']?.get;
    assert.deepEqual(list?.parameters.map((p) => `${p.in}:${p.name}`), ['path:name', 'query:offset', 'query:limit', 'query:sort', 'query:q']);
    assert.ok(doc.paths['/events']?.get);
  });

  it('unknown paths are 404 with a JSON error', async () => {
    const response = await fetch(`${base}/nope`);
    assert.equal(response.status, 404);
    assert.deepEqual(await response.json(), { error: 'not found' });
  });
});

describe('web: health with the store down', () => {
  it('/healthz and /readyz answer 503', async () => {
    const server = await startTestServer();
    try {
      const base = `http://127.0.0.1:${server.port('http')}`;
      const ping = server.store.ping.bind(server.store);
      server.store.ping = async () => {
        throw new Error('store is down');
      };
      for (const path of ['/healthz', '/readyz']) {
        const response = await fetch(`${base}${path}`);
        assert.equal(response.status, 503, path);
        assert.equal(((await response.json()) as { status: string }).status, 'unavailable');
      }
      server.store.ping = ping;
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
    } finally {
      await server.stop();
    }
  });
});

describe('web: shutdown', () => {
  it('cuts a request still in flight at the shutdown deadline', async () => {
    const server = await startTestServer({ overrides: { shutdownTimeoutSeconds: 0.3 } });
    await server.addUser('nia@example.com', 'nia-password');
    const client = new WebClient(`http://127.0.0.1:${server.port('http')}`);
    await client.login('nia@example.com', 'nia-password');
    // A send whose body never finishes arriving; 100 Continue says the server is reading it.
    const socket = net.connect(server.port('http'), '127.0.0.1');
    socket.on('error', () => undefined);
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const reading = new Promise((resolve) => socket.once('data', resolve));
    socket.write(
      `POST /api/send HTTP/1.1\r\nHost: x\r\nCookie: ${client.cookie}\r\nX-CSRF-Token: ${client.csrfToken}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n`,
    );
    assert.match(String(await reading), /^HTTP\/1.1 100 Continue/);
    socket.write('{"subject":');
    const started = Date.now();
    await server.stop();
    await closed;
    assert.ok(Date.now() - started < 10_000, 'stopped at the deadline, not at the request timeout');
  });
});
