// The HTTP port behind a gateway that sends PROXY v1 headers: lockout follows the named client.
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { WebClient } from './test-kit.js';

/** One HTTP/1.1 request on a fresh connection, the given bytes first (in pieces, if several). */
async function rawRequest(port: number, pieces: string[]): Promise<{ status: number; body: string }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
  const closed = new Promise((resolve) => socket.once('close', resolve));
  for (const piece of pieces) {
    socket.write(piece);
    await sleep(20);
  }
  await closed;
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  return { status: Number(head.split(' ')[1]), body };
}

function login(address: string, password: string): string {
  const body = JSON.stringify({ address, password });
  return `POST /api/login HTTP/1.1\r\nHost: node\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
}

describe('web behind a gateway (PROXY headers)', () => {
  let server: TestServer;
  let port: number;

  before(async () => {
    server = await startTestServer({ overrides: { trustedGateways: ['127.0.0.1'], limits: { authFailuresPerIp: 2, lockoutSeconds: 60 } } });
    port = server.port('http');
    await server.addUser('max@example.com', 'max-password');
  });
  after(async () => server.stop());

  it('locks out the client the header names, not the gateway', async () => {
    const header = 'PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n';
    assert.equal((await rawRequest(port, [header + login('max@example.com', 'wrong')])).status, 401);
    // The header split over two packets still counts.
    assert.equal((await rawRequest(port, ['PRO', 'XY TCP4 203.0.113.7 127.0.0.1 40001 80\r\n' + login('max@example.com', 'wrong')])).status, 401);
    assert.equal((await rawRequest(port, [header + login('max@example.com', 'max-password')])).status, 429);
    // Another client behind the same gateway, and the gateway itself, are not locked out.
    const other = await rawRequest(port, ['PROXY TCP4 198.51.100.9 127.0.0.1 40002 80\r\n' + login('max@example.com', 'max-password')]);
    assert.equal(other.status, 200, other.body);
    await new WebClient(`http://127.0.0.1:${port}`).login('max@example.com', 'max-password');
  });

  it('serves the gateway probe without a header, and drops a bad header', async () => {
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    const bad = await rawRequest(port, ['PROXY TCP4 not-an-address 127.0.0.1 1 2\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    assert.ok(Number.isNaN(bad.status), 'closed without an answer');
  });
});
