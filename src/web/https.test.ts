// listen.https: the same web app over TLS with the node's certificate. A login over TLS gets a
// Secure cookie (and the session works over TLS); a login over plain HTTP does not.
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import type { WebService } from './server.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  protocol: string;
}

function request(port: number, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        rejectUnauthorized: false, // the node's self-signed certificate
        agent: false,
        headers: { ...headers, ...(payload ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, protocol: (res.socket as import('node:tls').TLSSocket).getProtocol?.() ?? '' }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

describe('HTTPS on the web port', () => {
  let server: TestServer;
  let port: number;

  before(async () => {
    server = await startTestServer({ overrides: { listen: { https: '127.0.0.1:0' } } });
    await server.addUser('ann@example.com', 'ann-password-1');
    port = (server.services.get('http') as WebService).httpsPort!;
    assert.ok(port > 0);
  });

  after(() => server.stop());

  it('serves health over TLS', async () => {
    const res = await request(port, 'GET', '/healthz');
    assert.equal(res.status, 200);
    assert.match(res.protocol, /^TLSv1\.[23]$/);
  });

  it('logs in over TLS with a Secure, HttpOnly cookie that opens the session', async () => {
    const login = await request(port, 'POST', '/api/login', { address: 'ann@example.com', password: 'ann-password-1' });
    assert.equal(login.status, 200, login.body);
    const cookie = String(login.headers['set-cookie']);
    assert.match(cookie, /^quill_session=/);
    assert.match(cookie, /;\s*Secure/i);
    assert.match(cookie, /;\s*HttpOnly/i);
    assert.match(cookie, /;\s*SameSite=Lax/i);
    const me = await request(port, 'GET', '/api/me', undefined, { cookie: cookie.split(';')[0]! });
    assert.equal(me.status, 200, me.body);
    assert.equal((JSON.parse(me.body) as { user: { address: string } }).user.address, 'ann@example.com');
  });

  it('gives no Secure flag to a login over plain HTTP', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port('http')}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ address: 'ann@example.com', password: 'ann-password-1' }),
    });
    assert.equal(res.status, 200);
    const cookie = res.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^quill_session=/);
    assert.doesNotMatch(cookie, /Secure/i);
  });

  it('refuses a plain-HTTP request on the TLS port without crashing', async () => {
    const net = await import('node:net');
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
      let text = '';
      socket.on('data', (chunk) => (text += chunk.toString('latin1')));
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
    });
    assert.doesNotMatch(answer, /"status":"ok"/);
    assert.equal((await request(port, 'GET', '/healthz')).status, 200);
  });
});
