// Hot standby of a gateway address on one machine (issue 5): a second gateway started with
// gateway.standby (`quill gateway --standby`) finds the address taken, keeps trying, and takes
// it over as soon as the first gateway is gone, so clients connecting to the same address are
// answered again without anyone changing DNS or configuration.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../src/config/config.js';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { openStore } from '../src/server.js';
import type { Store } from '../src/store/types.js';
import { silentLogger } from '../src/util/logger.js';
import { tempDir, testConfig } from './helpers.js';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The first line on the port, or the connection error's code (ECONNREFUSED: nobody listens). */
function firstLine(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('data', (chunk: Buffer) => {
      resolve(chunk.toString().split('\r\n')[0]!);
      socket.destroy();
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe('a standby gateway on one machine', () => {
  const data = tempDir('quill-gw-standby-');
  let store: Store;
  const gateways: RunningGateway[] = [];
  after(async () => {
    for (const gateway of gateways) await gateway.close();
    await store?.close();
  });

  it('takes over the address when the gateway holding it closes', async () => {
    const port = await freePort();
    const listen = { smtp: `127.0.0.1:${port}` };
    const config = testConfig(data, { listen, gateway: { probeIntervalMs: 200 } });
    store = await openStore(config);
    const first = await startGateway(config, store, silentLogger(), { id: 'gw-first', protocols: ['smtp'] });
    gateways.push(first);
    const standby = await startGateway(testConfig(data, { listen, gateway: { probeIntervalMs: 200, standby: true, standbyRetryMs: 100 } }), store, silentLogger(), {
      id: 'gw-standby',
      protocols: ['smtp'],
    });
    gateways.push(standby);
    assert.equal(first.port('smtp'), port);
    assert.equal(standby.port('smtp'), 0, 'standing by while the address is held');
    // No node is up: the gateway holding the address answers SMTP's temporary error (RFC 5321 3.8).
    assert.match(await firstLine(port), /^421 /);

    await first.close();
    const closedAt = Date.now();
    let line = await firstLine(port);
    while (line === 'ECONNREFUSED' && Date.now() - closedAt < 10_000) {
      await sleep(20);
      line = await firstLine(port);
    }
    assert.match(line, /^421 /, 'the standby answers on the same address');
    assert.equal(standby.port('smtp'), port);
    console.log(`# standby: took over ${Date.now() - closedAt} ms after the first gateway closed`);
    // Its heartbeat names the address it now listens on.
    const deadline = Date.now() + 5_000;
    for (;;) {
      const member = (await store.listMembers()).find((m) => m.id === 'gw-standby');
      if (member?.addresses.smtp === `127.0.0.1:${port}`) break;
      assert.ok(Date.now() < deadline, 'the standby did not publish its address');
      await sleep(100);
    }
  });

  it('without standby, a taken address is an error at start', async () => {
    const port = await freePort();
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
    try {
      const config = testConfig(data, { listen: { smtp: `127.0.0.1:${port}` } });
      await assert.rejects(startGateway(config, store, silentLogger(), { id: 'gw-busy', protocols: ['smtp'] }), /EADDRINUSE/);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('quill gateway --standby sets gateway.standby', () => {
    assert.equal(loadConfig(undefined, { data, standby: true }).gateway.standby, true);
    assert.equal(loadConfig(undefined, { data }).gateway.standby, false);
  });
});
