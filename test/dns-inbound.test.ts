// A node with its own caching resolver (config dns.servers) pointed at a DNS server the test
// runs on 127.0.0.1: a DKIM-signed message from a key published there verifies `pass` through a
// real SMTP delivery from 127.0.0.2, the next message from the same domain asks DNS nothing, and
// when DNS is slower than inbound.budgetMs the message is still taken, judged temperror.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { dkimSignature } from '../src/mailauth/sign.js';
import { startServer, type RunningServer } from '../src/server.js';
import { splitReceived, storedMessages } from '../src/smtp/test-support.js';
import { hashPassword } from '../src/util/password.js';
import { silentLogger } from '../src/util/logger.js';
import { startDnsServer, type TestDnsServer } from './dns-server.js';
import { tempDir, testConfig } from './helpers.js';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const KEY = { domain: 'sender.test', selector: 'q1', privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };

function message(n: number): Buffer {
  return Buffer.from(
    `From: Ann <ann@sender.test>\r\nTo: <bob@example.com>\r\nSubject: signed ${n}\r\nMessage-ID: <${n}.${Date.now()}@sender.test>\r\nDate: ${new Date().toUTCString()}\r\n\r\nHello Bob\r\n`,
  );
}

async function signed(raw: Buffer): Promise<Buffer> {
  const signature = await dkimSignature(raw, KEY);
  if ('error' in signature) throw new Error(signature.error);
  return Buffer.concat([Buffer.from(signature.header), raw]);
}

async function send(port: number, raw: Buffer): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, localAddress: '127.0.0.2', ignoreTLS: true, name: 'out.sender.test' });
  try {
    const info = await transport.sendMail({ envelope: { from: 'ann@sender.test', to: ['bob@example.com'] }, raw });
    return info.response;
  } finally {
    transport.close();
  }
}

async function startNode(dns: TestDnsServer, dataDir: string, nodeId: string, budgetMs?: number): Promise<RunningServer> {
  const config = testConfig(dataDir, {
    outbound: { enabled: false },
    dns: { servers: [dns.address], timeoutMs: 1000, retries: 1 },
    inbound: budgetMs ? { budgetMs } : {},
  });
  const server = await startServer(config, { logger: silentLogger(), nodeId });
  await server.store.addDomain('example.com');
  await server.store.addUser({ address: 'bob@example.com', passwordHash: await hashPassword('secret-pw') });
  return server;
}

const records = [
  { name: 'sender.test', type: 'TXT' as const, data: 'v=spf1 ip4:127.0.0.2 -all' },
  { name: 'q1._domainkey.sender.test', type: 'TXT' as const, data: `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}` },
  { name: '_dmarc.sender.test', type: 'TXT' as const, data: 'v=DMARC1; p=reject' },
];

describe('inbound authentication through the node resolver and a real DNS server', () => {
  let dns: TestDnsServer;
  let server: RunningServer;
  const dataDir = tempDir();

  before(async () => {
    dns = await startDnsServer({ zones: ['sender.test'], records });
    server = await startNode(dns, dataDir, 'dns-node');
  });
  after(async () => {
    await server.close();
    await dns.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('verifies a message signed with a published key: dkim, spf and dmarc pass', async () => {
    assert.match(await send(server.port('smtp'), await signed(message(1))), /^250 /);
    const [stored] = await storedMessages(server.store, 'bob@example.com');
    const { verdict } = splitReceived(stored!.raw);
    assert.match(verdict, /dkim=pass header\.i=@sender\.test/);
    assert.match(verdict, /spf=pass/);
    assert.match(verdict, /dmarc=pass/);
    assert.equal(dns.queries('q1._domainkey.sender.test', 'TXT'), 1);
    // Loopback clients are never looked up in DNS.
    assert.equal(dns.queries('2.0.0.127.in-addr.arpa', 'PTR'), 0);
  });

  it('asks DNS nothing for the next message from the same domain', async () => {
    const before = dns.totalQueries();
    assert.match(await send(server.port('smtp'), await signed(message(2))), /^250 /);
    const messages = await storedMessages(server.store, 'bob@example.com');
    assert.equal(messages.length, 2);
    assert.match(splitReceived(messages[1]!.raw).verdict, /dkim=pass/);
    assert.equal(dns.totalQueries(), before);
  });

  it('counts cache hits and misses in quill_dns_lookups_total on /metrics', async () => {
    const response = await fetch(`http://127.0.0.1:${server.port('http')}/metrics`);
    const text = await response.text();
    const count = (result: string) => Number(new RegExp(`^quill_dns_lookups_total\\{node="dns-node",result="${result}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    assert.ok(count('miss') >= 3, text.split('\n').filter((l) => l.includes('dns')).join('\n'));
    assert.ok(count('hit') >= 3);
  });
});

describe('the per-message DNS budget', () => {
  let dns: TestDnsServer;
  let server: RunningServer;
  const dataDir = tempDir();

  before(async () => {
    dns = await startDnsServer({ zones: ['sender.test'], records, latencyMs: 800 });
    server = await startNode(dns, dataDir, 'dns-budget-node', 150);
  });
  after(async () => {
    await server.close();
    await dns.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('ends lookups at inbound.budgetMs with temperror, and the policy takes the message', async () => {
    assert.match(await send(server.port('smtp'), await signed(message(3))), /^250 /);
    const [stored] = await storedMessages(server.store, 'bob@example.com');
    const { verdict } = splitReceived(stored!.raw);
    assert.match(verdict, /dkim=temperror/);
    assert.match(verdict, /spf=temperror/);
    assert.match(verdict, /dmarc=temperror/);
  });
});
