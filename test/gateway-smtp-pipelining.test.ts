// SMTP PIPELINING (RFC 2920) through the gateway's front end: the RCPTs and DATA a client sends
// along with MAIL reach the node in one write, and each reply still comes back in order — also
// when the node the session was on has gone and the session moves to another.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { silentLogger } from '../src/util/logger.js';
import { startTestServer, tempDir, testConfig, type TestServer } from './helpers.js';
import { WireClient } from './clients/smtp.js';

describe('SMTP pipelining through the gateway', () => {
  const data = tempDir('quill-gw-pipe-');
  let a: TestServer;
  let b: TestServer;
  let store: SqliteStore;
  let gateway: RunningGateway;

  before(async () => {
    const overrides = { trustedGateways: ['127.0.0.1'] };
    a = await startTestServer({ dataDir: data, nodeId: 'pipe-a', overrides });
    b = await startTestServer({ dataDir: data, nodeId: 'pipe-b', overrides });
    await a.addUser('bob@example.com', 'pw');
    store = await SqliteStore.open(data);
    gateway = await startGateway(testConfig(data, { gateway: { probeIntervalMs: 200, connectTimeoutMs: 500 } }), store, silentLogger(), { id: 'gw-pipe', protocols: ['smtp'] });
    while (gateway.directory.candidates('smtp').length < 2) {
      await sleep(100);
      await gateway.directory.refresh();
    }
  });

  after(async () => {
    await gateway.close();
    await Promise.allSettled([a.stop(), b.stop()]);
    await store.close();
  });

  async function stored(subject: string): Promise<number> {
    const user = (await store.getUser('bob@example.com'))!;
    const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
    let count = 0;
    for (const meta of await store.listMessages(inbox.id)) if ((await store.getBlob(meta.blobHash))!.toString().includes(`Subject: ${subject}\r\n`)) count++;
    return count;
  }

  const batch = () => ['MAIL FROM:<carol@elsewhere.test>', 'RCPT TO:<bob@example.com>', 'RCPT TO:<nobody@example.com>', 'DATA', ''].join('\r\n');
  const message = (subject: string) => `Subject: ${subject}\r\n\r\nPipelined.\r\n.\r\n`;

  it('answers every pipelined command in order, on one node and after a move to another', async () => {
    const client = await WireClient.connect(gateway.port('smtp'));
    assert.match(await client.reply(), /^220 /);
    client.socket.write('EHLO pipe.test\r\n');
    assert.match(await client.reply(), /PIPELINING/);
    client.socket.write(batch());
    assert.deepEqual(await client.replies(4), ['250', '250', '550', '354']);
    client.socket.write(message('first'));
    assert.deepEqual(await client.replies(1), ['250']);

    // The node the session is on goes away while the session is idle.
    const [on] = gateway.frontSessions('smtp');
    await (on === 'pipe-a' ? a : b).stop();
    client.socket.write(batch());
    assert.deepEqual(await client.replies(4), ['250', '250', '550', '354']);
    client.socket.write(`${message('second')}QUIT\r\n`);
    assert.deepEqual(await client.replies(2), ['250', '221']);
    assert.equal(await stored('first'), 1);
    assert.equal(await stored('second'), 1);
  });
});
