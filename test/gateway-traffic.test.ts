// The cluster under real traffic (issue 20), through the real node processes, with clients on
// addresses other than the gateway's and the nodes' own (127.0.0.2, 127.0.0.3):
// - a session counts against one address on a node from connect to close, and a gateway link
//   counts against none (the gateway limits its clients itself): 1,000 sequential SMTP sessions
//   from one client address all succeed (the node's connectionsPerIp is 50);
// - a node's refusal (421 over its connection limit) is not a dead node: it stays in rotation for
//   IMAP, POP3 and the next SMTP client.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestCluster } from './cluster-kit.js';
import { tempDir } from './helpers.js';
import { WireClient } from './clients/smtp.js';

/** One pipelined SMTP session (RFC 2920): EHLO; MAIL, RCPT, DATA in one write; the message and QUIT in one. */
async function deliver(port: number, subject: string, localAddress: string): Promise<string[]> {
  const wire = await WireClient.connect(port, { localAddress });
  const seen: string[] = [];
  try {
    seen.push(await wire.reply());
    seen.push(await wire.exchange('EHLO client.test'));
    wire.socket.write('MAIL FROM:<load@elsewhere.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n');
    for (let i = 0; i < 3; i++) seen.push(await wire.reply());
    if (!seen[4]!.startsWith('354')) return seen;
    wire.socket.write(`From: load@elsewhere.test\r\nSubject: ${subject}\r\n\r\nsmall\r\n.\r\nQUIT\r\n`);
    seen.push(await wire.reply(), await wire.reply());
    return seen;
  } catch (error) {
    if (!wire.closed) throw error;
    return [...seen, 'closed'];
  } finally {
    wire.socket.destroy();
  }
}

const codes = (replies: string[]) => replies.map((r) => r.slice(0, 3)).join(' ');

/** A raw IMAP exchange: the tagged line of `a LOGIN`, or what ended the connection. */
function imapLogin(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      if (buffer.startsWith('* OK') && !buffer.includes('a LOGIN')) {
        if (!buffer.includes('\r\n')) return;
        buffer = buffer.slice(buffer.indexOf('\r\n') + 2);
        socket.write('a LOGIN bob@example.com pw\r\n');
        buffer = `a LOGIN sent\r\n${buffer}`;
      }
      const tagged = /^a (OK|NO|BAD)[^\r\n]*/m.exec(buffer);
      if (tagged) {
        socket.end('b LOGOUT\r\n');
        resolve(tagged[0]);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(`closed: ${buffer}`));
  });
}

describe('per-address accounting through the gateway', () => {
  // The gateway's own screening allows 600 new connections per address per minute by default.
  const cluster = new TestCluster(['t-1', 't-2'], ['smtp'], { gateway: { connectsPerIpPerMinute: 5000 } });
  before(() => cluster.start());
  after(() => cluster.close());

  it('takes 1,000 sequential SMTP sessions from one client address', async () => {
    const port = cluster.gateway.port('smtp');
    const started = Date.now();
    const subjects: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const subject = `seq-${i}`;
      const replies = await deliver(port, subject, '127.0.0.2');
      assert.equal(codes(replies), '220 250 250 250 354 250 221', `session ${i}: ${replies.join(' | ')}`);
      subjects.push(subject);
    }
    console.log(`# 1,000 sequential SMTP sessions from 127.0.0.2 through the gateway in ${Date.now() - started} ms`);
    await cluster.checkStoredOnce(subjects, /\r\nSubject: (seq-\d+)\r\n/);
  });
});

describe('a node that refuses is not a dead node', () => {
  // Two SMTP sessions fill the node (limits.connections: 2 per listener).
  const nodeConfig = path.join(tempDir('quill-node-config-'), 'node.yaml');
  writeFileSync(nodeConfig, 'limits:\n  connections: 2\n');
  const cluster = new TestCluster(['r-1'], ['smtp', 'imap', 'pop3'], {
    // No probe of its own during the test: what the gateway thinks of the node comes from the sessions.
    gateway: { probeIntervalMs: 600_000 },
    nodeArgs: ['--config', nodeConfig],
  });
  const full: WireClient[] = [];
  before(() => cluster.start());
  after(async () => {
    for (const wire of full) wire.socket.destroy();
    await cluster.close();
  });

  it('keeps a node that answered 421 in rotation for IMAP, POP3 and the next SMTP client', async () => {
    const node = await cluster.nodeAddress('r-1', 'smtp');
    for (let i = 0; i < 2; i++) {
      const wire = await WireClient.connect(node.port, { host: node.host, localAddress: '127.0.0.2' });
      assert.match(await wire.reply(), /^220 /);
      full.push(wire);
    }
    // The node is full: it answers the gateway's link with 421, and the client hears a temporary error.
    const refused = await deliver(cluster.gateway.port('smtp'), 'refused', '127.0.0.3');
    assert.match(refused.at(-2)!, /^4\d\d /, refused.join(' | '));
    assert.equal(refused.at(-1), 'closed');
    for (const protocol of ['smtp', 'imap', 'pop3'] as const) {
      assert.deepEqual(cluster.gateway.directory.candidates(protocol).map((n) => n.id), ['r-1'], `${protocol}: the node is still offered`);
    }
    assert.match(await imapLogin(cluster.gateway.port('imap'), '127.0.0.3'), /^a OK/);
    // Room again on the node: the next SMTP client gets through at once, with no probe in between.
    for (const wire of full.splice(0)) wire.socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(codes(await deliver(cluster.gateway.port('smtp'), 'after', '127.0.0.3')), '220 250 250 250 354 250 221');
  });
});
