// The MX listener through real clients: nodemailer, Python's smtplib and raw sockets.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { startTestServer, tempDir, type TestServer } from '../../test/helpers.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Resolver } from '../dns/resolver.js';
import type { DeliveryTarget } from '../store/types.js';
import { runSmtplib, splitReceived, storedMessages } from './test-support.js';
import { dataBlock, WireClient } from '../../test/clients/smtp.js';

const RECEIVED = /^Received: from client\.example \((?:[a-z0-9.-]+ )?\[127\.0\.0\.1\]\)\r\n\tby mx\.test\.example with (ESMTPS?) id [a-z0-9]+\.\d+(;?)\r\n(?:\tfor <([^>]+)>;\r\n)?\t\w{3}, \d{2} \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r\n$/;

// 8-bit text, Latin-1 bytes that are not UTF-8, a line starting with a dot, a line that is
// only a dot, and a line of two dots: all must come out exactly as they went in.
const MESSAGE = Buffer.concat([
  Buffer.from('From: Sender <sender@remote.example>\r\nTo: alice@example.com\r\nSubject: bytes\r\nMessage-ID: <bytes-1@remote.example>\r\n\r\n'),
  Buffer.from('Grüße aus Köln — ✓\r\n', 'utf8'),
  Buffer.from([0xe9, 0x74, 0xe9, 0x0d, 0x0a]),
  Buffer.from('.leading dot\r\n.\r\n..\r\nlast line\r\n'),
]);

describe('SMTP MX listener', () => {
  let server: TestServer;
  let port: number;

  before(async () => {
    server = await startTestServer({ overrides: { outbound: { enabled: false } } });
    port = server.port('smtp');
    for (const name of ['alice', 'bob', 'carol']) await server.addUser(`${name}@example.com`, 'secret-pw');
  });
  after(() => server.stop());

  it('stores exactly the bytes sent plus one Received header (nodemailer over STARTTLS)', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, name: 'client.example', tls: { rejectUnauthorized: false } });
    const info = await transport.sendMail({ envelope: { from: 'sender@remote.example', to: ['alice@example.com'] }, raw: MESSAGE });
    transport.close();
    assert.match(info.response, /^250 2\.6\.0 /);
    const messages = await storedMessages(server.store, 'alice@example.com');
    assert.equal(messages.length, 1);
    const { received, verdict, rest } = splitReceived(messages[0]!.raw);
    assert.deepEqual(rest, MESSAGE);
    const match = RECEIVED.exec(received);
    assert.ok(match, `unexpected Received header:\n${received}`);
    assert.match(verdict, /^Authentication-Results: mx\.test\.example;/m, 'the inbound verdict follows Received');
    assert.equal(match[1], 'ESMTPS');
    assert.equal(match[3], 'alice@example.com');
  });

  it('advertises the extensions and stores one copy for several recipients (smtplib)', async () => {
    const calls: DeliveryTarget[][] = [];
    const deliver = server.store.deliver.bind(server.store);
    server.store.deliver = (raw, targets, options) => {
      calls.push(targets);
      return deliver(raw, targets, options);
    };
    try {
      const result = await runSmtplib({ port, sender: 'sender@remote.example', recipients: ['alice@example.com', 'BOB@example.com', 'carol@example.com'], message: MESSAGE });
      for (const extension of ['PIPELINING', '8BITMIME', 'SIZE', 'ENHANCEDSTATUSCODES', 'SMTPUTF8', 'STARTTLS']) assert.ok(result.features.includes(extension), extension);
      assert.ok(!result.features.includes('CHUNKING'), 'BDAT is not implemented, so CHUNKING must not be offered');
      assert.ok(!result.features.includes('AUTH'), 'no AUTH on the MX port');
      assert.equal(result.size, String(server.config.limits.messageSize));
      assert.deepEqual(result.rcpt.map((r) => r.code), [250, 250, 250]);
      assert.equal(result.data?.code, 250);
    } finally {
      server.store.deliver = deliver;
    }
    assert.equal(calls.length, 1, 'one deliver call for the transaction');
    assert.equal(calls[0]!.length, 3);
    const copies = await Promise.all(['alice', 'bob', 'carol'].map(async (name) => (await storedMessages(server.store, `${name}@example.com`)).at(-1)!));
    assert.equal(new Set(copies.map((c) => c.blobHash)).size, 1, 'one stored blob');
    const { received, rest } = splitReceived(copies[0]!.raw);
    assert.deepEqual(rest, MESSAGE);
    const match = RECEIVED.exec(received);
    assert.ok(match, received);
    assert.equal(match[1], 'ESMTP');
    assert.equal(match[2], ';', 'no FOR clause with several recipients');
  });

  it('refuses unknown users with 550 5.1.1 and foreign domains with 550 5.7.1', async () => {
    const before = (await storedMessages(server.store, 'alice@example.com')).length;
    const result = await runSmtplib({ port, sender: 'sender@remote.example', recipients: ['nobody@example.com', 'someone@elsewhere.example', 'alice@example.com'], message: MESSAGE });
    assert.deepEqual(result.rcpt.map((r) => r.code), [550, 550, 250]);
    assert.match(result.rcpt[0]!.text, /^5\.1\.1 /);
    assert.match(result.rcpt[1]!.text, /^5\.7\.1 /);
    assert.equal(result.data?.code, 250);
    assert.equal((await storedMessages(server.store, 'alice@example.com')).length, before + 1);
    assert.deepEqual(await server.store.listOutbound(), [], 'nothing relayed');
  });

  it('answers 452 4.2.2 at RCPT when the mailbox is full', async () => {
    await server.addUser('full@example.com', 'secret-pw', { quotaBytes: 1000 });
    const client = await WireClient.connect(port);
    try {
      assert.equal((await client.read()).code, 220);
      assert.equal((await client.command('EHLO client.example')).code, 250);
      assert.equal((await client.command('MAIL FROM:<sender@remote.example> SIZE=5000')).code, 250);
      const reply = await client.command('RCPT TO:<full@example.com>');
      assert.equal(reply.code, 452);
      assert.match(reply.text, /^452 4\.2\.2 /);
      assert.equal((await client.command('RCPT TO:<alice@example.com>')).code, 250, 'a small message still fits elsewhere');
      assert.equal((await client.command('QUIT')).code, 221);
    } finally {
      client.close();
    }
  });

  it('delivers to an internationalized address with SMTPUTF8 (RFC 6531)', async () => {
    await server.addUser('jörg@example.com', 'secret-pw');
    const client = await WireClient.connect(port);
    const raw = Buffer.from('From: δοκιμή@remote.example\r\nSubject: Grüße\r\n\r\nUTF-8 all the way\r\n', 'utf8');
    try {
      await client.read();
      await client.command('EHLO client.example');
      assert.equal((await client.command('MAIL FROM:<δοκιμή@remote.example> SMTPUTF8')).code, 250);
      assert.equal((await client.command('RCPT TO:<jörg@example.com>')).code, 250);
      assert.equal((await client.command('DATA')).code, 354);
      client.write(dataBlock(raw));
      assert.equal((await client.read()).code, 250);
    } finally {
      client.close();
    }
    const [stored] = await storedMessages(server.store, 'jörg@example.com');
    const { received, rest } = splitReceived(stored!.raw);
    assert.deepEqual(rest, raw);
    assert.match(Buffer.from(received, 'latin1').toString('utf8'), / with UTF8SMTP id [^\r]+\r\n\tfor <jörg@example\.com>;/);
  });

  it('refuses AUTH on the MX port', async () => {
    const client = await WireClient.connect(port);
    try {
      await client.read();
      await client.command('EHLO client.example');
      const reply = await client.command('AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldC1wdw==');
      assert.ok(reply.code >= 500, reply.text);
      assert.equal((await client.command('MAIL FROM:<alice@example.com>')).code, 250);
      const relay = await client.command('RCPT TO:<victim@elsewhere.example>');
      assert.match(relay.text, /^550 5\.7\.1 /);
    } finally {
      client.close();
    }
  });
});

describe('SMTP MX shutdown', () => {
  it('closes idle sessions at once and lets an open transaction finish first', async () => {
    const dataDir = tempDir();
    try {
      const server = await startTestServer({ dataDir, overrides: { outbound: { enabled: false }, shutdownTimeoutSeconds: 30 } });
      await server.addUser('alice@example.com', 'secret-pw');
      const port = server.port('smtp');
      const idle = await WireClient.connect(port);
      const busy = await WireClient.connect(port);
      for (const client of [idle, busy]) {
        await client.read();
        await client.command('EHLO client.example');
      }
      assert.equal((await busy.command('MAIL FROM:<sender@remote.example>')).code, 250);
      assert.equal((await busy.command('RCPT TO:<alice@example.com>')).code, 250);

      const stopping = server.stop();
      assert.match((await idle.read()).text, /^421 4\.3\.2 /);
      await idle.untilClosed();
      // Shutdown has begun; the open transaction still completes.
      assert.equal((await busy.command('DATA')).code, 354);
      busy.write(dataBlock(Buffer.from('Subject: during shutdown\r\n\r\nmade it\r\n')));
      assert.match((await busy.read()).text, /^250 /);
      assert.match((await busy.read()).text, /^421 4\.3\.2 /);
      await busy.untilClosed();
      await stopping;

      const store = await SqliteStore.open(dataDir);
      try {
        const [stored] = await storedMessages(store, 'alice@example.com');
        assert.match(stored!.raw.toString(), /Subject: during shutdown/);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

// A DNS zone where 127.0.0.1 may not send for either domain, and both publish DMARC.
const zone: Record<string, string[]> = {
  'strict.test': ['v=spf1 ip4:192.0.2.10 -all'],
  '_dmarc.strict.test': ['v=DMARC1; p=reject'],
  'soft.test': ['v=spf1 ip4:192.0.2.10 -all'],
  '_dmarc.soft.test': ['v=DMARC1; p=quarantine'],
};
const notFound = (name: string): never => {
  throw Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
};
const zoneResolver: Resolver = {
  resolveTxt: async (name) => zone[name.toLowerCase()]?.map((record) => [record]) ?? notFound(name),
  resolveMx: async (name) => notFound(name),
  resolve4: async (name) => notFound(name),
  resolve6: async (name) => notFound(name),
};

describe('SMTP MX inbound policy', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ resolver: zoneResolver, overrides: { outbound: { enabled: false } } });
    await server.addUser('alice@example.com', 'secret-pw');
  });
  after(() => server.stop());

  const spoofed = (domain: string) => Buffer.from(`From: <ceo@${domain}>\r\nTo: <alice@example.com>\r\nSubject: pay this\r\nMessage-ID: <spoof@${domain}>\r\n\r\nUrgent.\r\n`);

  it('refuses mail failing DMARC of a p=reject domain with 550 5.7.1', async () => {
    const result = await runSmtplib({ port: server.port('smtp'), sender: 'ceo@strict.test', recipients: ['alice@example.com'], message: spoofed('strict.test') });
    assert.equal(result.data?.code, 550);
    assert.match(result.data!.text, /^5\.7\.1 .*DMARC/);
    assert.equal((await storedMessages(server.store, 'alice@example.com')).length, 0);
  });

  it('files mail failing DMARC of a p=quarantine domain in Junk', async () => {
    const raw = spoofed('soft.test');
    const result = await runSmtplib({ port: server.port('smtp'), sender: 'ceo@soft.test', recipients: ['alice@example.com'], message: raw });
    assert.equal(result.data?.code, 250);
    assert.equal((await storedMessages(server.store, 'alice@example.com')).length, 0);
    const [junk] = await storedMessages(server.store, 'alice@example.com', 'Junk');
    const { verdict, rest } = splitReceived(junk!.raw);
    assert.match(verdict, /dmarc=fail/);
    assert.deepEqual(rest, raw);
  });
});
