// Implicit TLS at the gateway (RFC 8314 3.3): submissions (465), IMAPS (993), POP3S (995) and
// HTTPS (443) listeners whose TLS ends at the gateway; the node behind speaks plain protocol.
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { silentLogger } from '../src/util/logger.js';
import { startTestServer, tempDir, testConfig, type TestServer } from './helpers.js';

/** A POP3 dialogue over TLS: each command's first reply line. */
async function pop3s(port: number, commands: string[]): Promise<string[]> {
  const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  socket.setEncoding('utf8');
  let buffer = '';
  const waiters: (() => void)[] = [];
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    waiters.splice(0).forEach((w) => w());
  });
  const line = async (): Promise<string> => {
    for (;;) {
      const end = buffer.indexOf('\r\n');
      if (end >= 0) {
        const text = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        return text;
      }
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  const out = [await line()];
  for (const command of commands) {
    socket.write(`${command}\r\n`);
    out.push(await line());
  }
  socket.end();
  return out;
}

describe('gateway implicit TLS listeners', () => {
  const data = tempDir('quill-gw-tls-');
  let node: TestServer;
  let store: SqliteStore;
  let gateway: RunningGateway;

  before(async () => {
    node = await startTestServer({ dataDir: data, nodeId: 'node-tls', overrides: { trustedGateways: ['127.0.0.1'] } });
    await node.addUser('ann@example.com', 'ann-password');
    store = await SqliteStore.open(data);
    const config = testConfig(data, {
      gateway: { proxyProtocol: true, implicitTls: { submissions: '127.0.0.1:0', imaps: '127.0.0.1:0', pop3s: '127.0.0.1:0', https: '127.0.0.1:0' } },
    });
    gateway = await startGateway(config, store, silentLogger(), { id: 'gw-tls' });
  });

  after(async () => {
    await gateway.close();
    await node.stop();
    await store.close();
  });

  it('takes a message over submissions, AUTH allowed inside the TLS', async () => {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: gateway.tlsPort('submissions'),
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: 'ann@example.com', pass: 'ann-password' },
    });
    try {
      const info = await transport.sendMail({ from: 'ann@example.com', to: 'ann@example.com', subject: 'over 465', text: 'hello through implicit TLS' });
      assert.deepEqual(info.accepted, ['ann@example.com']);
    } finally {
      transport.close();
    }
  });

  it('serves IMAP over TLS from the first byte', async () => {
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: gateway.tlsPort('imaps'),
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: 'ann@example.com', pass: 'ann-password' },
      logger: false,
    });
    await client.connect();
    try {
      const box = await client.mailboxOpen('INBOX');
      assert.ok(box.exists >= 1);
      const message = await client.fetchOne('*', { envelope: true });
      assert.ok(message);
      assert.equal(message.envelope?.subject, 'over 465');
    } finally {
      await client.logout();
    }
  });

  it('serves POP3 over TLS from the first byte', async () => {
    const replies = await pop3s(gateway.tlsPort('pop3s'), ['USER ann@example.com', 'PASS ann-password', 'STAT', 'QUIT']);
    assert.match(replies[0]!, /^\+OK/);
    assert.match(replies[2]!, /^\+OK/, replies.join(' | '));
    assert.match(replies[3]!, /^\+OK [1-9]\d* \d+/);
  });

  it('serves HTTPS, the node behind answering plain HTTP', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port: gateway.tlsPort('https'), path: '/healthz', rejectUnauthorized: false, agent: false }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`status ${res.statusCode}`))));
        })
        .on('error', reject);
    });
    assert.equal((JSON.parse(body) as { node: string }).node, 'node-tls');
  });

  it('gives a login over the gateway\'s HTTPS a Secure cookie, and one over its plain HTTP none', async () => {
    const login = (secure: boolean) =>
      new Promise<string>((resolve, reject) => {
        const body = JSON.stringify({ address: 'ann@example.com', password: 'ann-password' });
        const options = {
          host: '127.0.0.1',
          port: secure ? gateway.tlsPort('https') : gateway.port('http'),
          method: 'POST',
          path: '/api/login',
          rejectUnauthorized: false,
          agent: false as const,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-forwarded-proto': 'https' },
        };
        const req = (secure ? https : http).request(options, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve(String(res.headers['set-cookie'] ?? '')) : reject(new Error(`status ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end(body);
      });
    assert.match(await login(true), /quill_session=.*; Secure/i);
    // The client's own X-Forwarded-Proto is dropped at the gateway: plain HTTP stays plain.
    assert.doesNotMatch(await login(false), /Secure/i);
  });

  it('drops a client that speaks plain text to a TLS port', async () => {
    const net = await import('node:net');
    const closed = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: gateway.tlsPort('imaps') }, () => socket.write('a1 CAPABILITY\r\n'));
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(text));
    });
    assert.doesNotMatch(closed, /CAPABILITY|OK/);
  });
});
