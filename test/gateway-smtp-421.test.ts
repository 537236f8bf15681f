// A node that says 421 (RFC 5321 3.8: closing the channel) unasked, while the session is idle
// between commands, and keeps the connection open: the gateway must not hand that 421 to the
// client as the answer to its next command, but move the transaction to another node.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { silentLogger } from '../src/util/logger.js';
import { startTestServer, tempDir, testConfig, type TestServer } from './helpers.js';
import { WireClient } from './clients/smtp.js';

describe('gateway SMTP and a node saying 421 unasked', () => {
  const data = tempDir('quill-gw-421-');
  let node: TestServer;
  let store: SqliteStore;
  let gateway: RunningGateway;
  let standInTransactions = 0;

  // Takes MAIL and RCPT, then says 421 unasked a moment later and leaves the connection open.
  const standIn = net.createServer((socket) => {
    socket.setEncoding('latin1');
    let buffer = '';
    let headerRead = false;
    socket.write('220 stand-in ESMTP\r\n');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!headerRead && line.startsWith('PROXY ')) {
          headerRead = true;
          continue;
        }
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'XCLIENT') socket.write('220 stand-in ready\r\n');
        else if (verb === 'EHLO') socket.write('250-stand-in\r\n250 8BITMIME\r\n');
        else if (verb === 'MAIL') {
          standInTransactions++;
          socket.write('250 2.1.0 ok\r\n');
        } else if (verb === 'RCPT') {
          socket.write('250 2.1.5 ok\r\n');
          setTimeout(() => socket.write('421 4.3.2 stand-in shutting down\r\n'), 50);
        } else socket.write('502 5.5.1 not here\r\n');
      }
    });
    socket.on('error', () => undefined);
  });
  const health = http.createServer((_req, res) => res.end('{"ok":true}'));
  const addressOf = (server: net.Server) => `127.0.0.1:${(server.address() as net.AddressInfo).port}`;

  before(async () => {
    node = await startTestServer({ dataDir: data, nodeId: 'real-node', overrides: { trustedGateways: ['127.0.0.1'] } });
    await node.addUser('ann@example.com', 'ann-password');
    store = await SqliteStore.open(data);
    await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', () => resolve()));
    await new Promise<void>((resolve) => health.listen(0, '127.0.0.1', () => resolve()));
    await store.heartbeat({
      id: 'a-stand-in',
      kind: 'node',
      state: 'active',
      version: 'test',
      addresses: { smtp: addressOf(standIn), http: addressOf(health) },
      load: { connections: {}, eventLoopDelayMs: 0, cpuPercent: 0, rssBytes: 0 },
      startedAt: new Date(),
    });
    gateway = await startGateway(testConfig(data, { gateway: { probeIntervalMs: 60_000, connectTimeoutMs: 500 } }), store, silentLogger(), {
      id: 'gw-421',
      protocols: ['smtp'],
    });
  });

  after(async () => {
    await gateway.close();
    await node.stop();
    await store.close();
    standIn.close();
    health.close();
  });

  it('moves the transaction to another node; the client never hears the 421', async () => {
    assert.equal(gateway.directory.candidates('smtp')[0]?.id, 'a-stand-in', 'the stand-in is picked first');
    const wire = await WireClient.connect(gateway.port('smtp'));
    assert.match(await wire.reply(), /^220 /);
    assert.match(await wire.exchange('EHLO client.example.net'), /^250[ -]/);
    assert.match(await wire.exchange('MAIL FROM:<sender@example.net>'), /^250 /);
    assert.match(await wire.exchange('RCPT TO:<ann@example.com>'), /^250 /);
    await sleep(300); // the stand-in has said 421 by now, and still holds the connection
    assert.match(await wire.exchange('DATA'), /^354 /);
    wire.socket.write('Subject: after a 421\r\n\r\nstored once, on the real node\r\n.\r\n');
    assert.match(await wire.reply(), /^250 /);
    await wire.exchange('QUIT');
    assert.equal(standInTransactions, 1);
    const user = (await store.getUser('ann@example.com'))!;
    const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
    const stored = await store.listMessages(inbox.id);
    assert.equal(stored.length, 1);
    assert.match((await store.getBlob(stored[0]!.blobHash))!.toString(), /stored once, on the real node/);
  });
});
