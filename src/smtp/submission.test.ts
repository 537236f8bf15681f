// The submission listener: AUTH rules, the sender check, local delivery, the outbound queue
// (as `quill queue list` shows it) and the Sent copy.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { pino } from 'pino';
import { emptyResolver, startTestServer, tempDir, testConfig, type TestServer } from '../../test/helpers.js';
import { startServer } from '../server.js';
import { hashPassword } from '../util/password.js';
import { runSmtplib, splitReceived, storedMessages } from './test-support.js';
import { dataBlock, WireClient } from '../../test/clients/smtp.js';

const run = promisify(execFile);

function message(subject: string, to = 'bob@example.com'): Buffer {
  // Complete as a client writes it (Date and Message-ID present), so the stored bytes must be exactly these.
  return Buffer.from(`From: alice@example.com\r\nTo: ${to}\r\nSubject: ${subject}\r\nDate: Wed, 25 Nov 2026 06:00:00 +0000\r\nMessage-ID: <${subject}@example.com>\r\n\r\nHello from submission.\r\n`);
}

const plain = (user: string, password: string) => Buffer.from(`\0${user}\0${password}`).toString('base64');

describe('SMTP submission listener (loopback plain auth, no Sent copy)', () => {
  let server: TestServer;
  let port: number;

  before(async () => {
    server = await startTestServer({ overrides: { outbound: { enabled: false }, limits: { authFailures: 3 } } });
    port = server.port('submission');
    await server.addUser('alice@example.com', 'alice-pw');
    await server.addUser('bob@example.com', 'bob-pw');
  });
  after(() => server.stop());

  it('delivers local recipients and queues foreign ones in one transaction (nodemailer with AUTH)', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, name: 'client.example', auth: { user: 'alice@example.com', pass: 'alice-pw' } });
    const raw = message('mixed', 'bob@example.com, friend@remote.example');
    const info = await transport.sendMail({ envelope: { from: 'Alice@Example.com', to: ['bob@example.com', 'friend@remote.example'] }, raw });
    transport.close();
    assert.match(info.response, /^250 /);
    assert.deepEqual(info.accepted, ['bob@example.com', 'friend@remote.example']);

    const [stored] = await storedMessages(server.store, 'bob@example.com');
    assert.ok(stored);
    const { received, rest } = splitReceived(stored.raw);
    assert.deepEqual(rest, raw);
    assert.match(received, /\r\n\tby mx\.test\.example with ESMTPA id /);

    const queued = await server.store.listOutbound();
    assert.equal(queued.length, 1);
    assert.equal(queued[0]!.recipient, 'friend@remote.example');
    assert.equal(queued[0]!.sender.toLowerCase(), 'alice@example.com');
    assert.equal(queued[0]!.blobHash, stored.blobHash, 'the queued copy is the stored copy');

    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'queue', 'list', '--data', server.dataDir], { timeout: 60_000 });
    assert.match(stdout, /friend@remote\.example/);
    assert.match(stdout, /queued/);

    assert.equal((await storedMessages(server.store, 'alice@example.com', 'Sent')).length, 0, 'sentCopy is off');
  });

  it('requires authentication for MAIL (530 5.7.0)', async () => {
    const client = await WireClient.connect(port);
    try {
      await client.read();
      const ehlo = await client.command('EHLO client.example');
      assert.ok(ehlo.lines.some((line) => /^AUTH\b.*\bPLAIN\b/.test(line) && /\bLOGIN\b/.test(line)), 'AUTH PLAIN LOGIN offered on loopback');
      const reply = await client.command('MAIL FROM:<alice@example.com>');
      assert.match(reply.text, /^530 5\.7\.0 /);
    } finally {
      client.close();
    }
  });

  it('refuses a wrong password (535 5.7.8) and closes the session after limits.authFailures', async () => {
    const result = await runSmtplib({ port, login: ['alice@example.com', 'wrong'], sender: 'alice@example.com', recipients: ['bob@example.com'], message: message('x') });
    assert.equal(result.login?.code, 535);
    assert.match(result.login!.text, /^5\.7\.8 /);
    assert.equal(result.mail.code, 530);

    const client = await WireClient.connect(port);
    try {
      await client.read();
      await client.command('EHLO client.example');
      assert.equal((await client.command(`AUTH PLAIN ${plain('alice@example.com', 'nope1')}`)).code, 535);
      assert.equal((await client.command(`AUTH PLAIN ${plain('nobody@example.com', 'nope2')}`)).code, 535);
      const last = await client.command(`AUTH PLAIN ${plain('alice@example.com', 'nope3')}`);
      assert.match(last.text, /^421 4\.7\.0 /);
      await client.untilClosed();
    } finally {
      client.close();
    }
  });

  it('refuses a sender that is not the authenticated user (553 5.7.1)', async () => {
    const result = await runSmtplib({ port, login: ['alice@example.com', 'alice-pw'], sender: 'bob@example.com', recipients: ['bob@example.com'], message: message('spoof') });
    assert.equal(result.login?.code, 235);
    assert.equal(result.mail.code, 553);
    assert.match(result.mail.text, /^5\.7\.1 /);
  });

  it('refuses an unknown local user (550 5.1.1) and keeps the rest of the transaction', async () => {
    const before = (await storedMessages(server.store, 'bob@example.com')).length;
    const result = await runSmtplib({ port, login: ['alice@example.com', 'alice-pw'], sender: 'alice@example.com', recipients: ['ghost@example.com', 'bob@example.com'], message: message('ghost') });
    assert.deepEqual(result.rcpt.map((r) => r.code), [550, 250]);
    assert.match(result.rcpt[0]!.text, /^5\.1\.1 /);
    assert.equal(result.data?.code, 250);
    assert.equal((await storedMessages(server.store, 'bob@example.com')).length, before + 1);
  });
});

describe('SMTP submission listener (TLS required for AUTH, Sent copy on)', () => {
  let server: TestServer;
  let port: number;

  before(async () => {
    server = await startTestServer({ overrides: { outbound: { enabled: false }, smtp: { loopbackPlainAuth: false, sentCopy: true }, limits: { authFailuresPerIp: 2 } } });
    port = server.port('submission');
    await server.addUser('alice@example.com', 'alice-pw');
    await server.addUser('bob@example.com', 'bob-pw');
  });
  after(() => server.stop());

  it('does not offer AUTH before STARTTLS, and MAIL without it is 530', async () => {
    const result = await runSmtplib({ port, login: ['alice@example.com', 'alice-pw'], sender: 'alice@example.com', recipients: ['bob@example.com'], message: message('clear') });
    assert.equal(result.auth, null);
    assert.ok(result.features.includes('STARTTLS'));
    assert.equal(result.login?.code, 0, 'smtplib finds no AUTH to use');
    assert.equal(result.mail.code, 530);

    const client = await WireClient.connect(port);
    try {
      await client.read();
      await client.command('EHLO client.example');
      const reply = await client.command(`AUTH PLAIN ${plain('alice@example.com', 'alice-pw')}`);
      assert.ok(reply.code >= 500, `AUTH in the clear must fail: ${reply.text}`);
    } finally {
      client.close();
    }
  });

  it('authenticates after STARTTLS and files a \\Seen copy in Sent', async () => {
    const raw = message('tls');
    const result = await runSmtplib({ port, starttls: true, login: ['alice@example.com', 'alice-pw'], sender: 'alice@example.com', recipients: ['bob@example.com'], message: raw });
    assert.match(result.auth ?? '', /PLAIN/);
    assert.equal(result.login?.code, 235);
    assert.equal(result.data?.code, 250);
    const [inbox] = await storedMessages(server.store, 'bob@example.com');
    const [sent] = await storedMessages(server.store, 'alice@example.com', 'Sent');
    assert.ok(inbox && sent);
    assert.equal(sent.blobHash, inbox.blobHash);
    assert.deepEqual(sent.flags, ['\\Seen']);
    const { received, rest } = splitReceived(sent.raw);
    assert.deepEqual(rest, raw);
    assert.match(received, / with ESMTPSA id /);
    assert.equal((await storedMessages(server.store, 'alice@example.com')).length, 0, 'nothing in the sender INBOX');
  });

  // Last in this suite: it locks 127.0.0.1 out of this server.
  it('answers 454 4.7.0 once the client address is locked out, even to the right password', async () => {
    const attempt = (password: string) =>
      runSmtplib({ port, starttls: true, login: ['alice@example.com', password], sender: 'alice@example.com', recipients: ['bob@example.com'], message: message('locked') });
    // smtplib tries PLAIN and then LOGIN: one login() is two failures, the limit here.
    assert.equal((await attempt('wrong')).login?.code, 535);
    const locked = await attempt('alice-pw');
    assert.equal(locked.login?.code, 454);
    assert.match(locked.login!.text, /^4\.7\.0 /);
    assert.equal(locked.data, undefined);
  });
});

describe('SMTP submission logging', () => {
  it('logs each session event with its session id and never a password', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    const dataDir = tempDir();
    const server = await startServer(testConfig(dataDir, { outbound: { enabled: false } }), { logger, resolver: emptyResolver });
    try {
      await server.store.addDomain('example.com');
      await server.store.addUser({ address: 'alice@example.com', passwordHash: await hashPassword('Sup3r-Secret-PW') });
      const port = server.port('submission');
      const spec = { port, sender: 'alice@example.com', recipients: ['alice@example.com'], message: message('logged', 'alice@example.com') };
      assert.equal((await runSmtplib({ ...spec, login: ['alice@example.com', 'Wr0ng-Secret-PW'] })).login?.code, 535);
      assert.equal((await runSmtplib({ ...spec, login: ['alice@example.com', 'Sup3r-Secret-PW'] })).data?.code, 250);
    } finally {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
    const events = lines.map((line) => JSON.parse(line) as { proto?: string; session?: string; msg: string });
    const ours = events.filter((e) => e.proto === 'submission' && e.session);
    for (const msg of ['connect', 'authentication refused', 'authenticated', 'message stored', 'close']) {
      assert.ok(ours.some((e) => e.msg === msg), `no "${msg}" line`);
    }
    const all = lines.join('\n');
    for (const secret of ['Sup3r-Secret-PW', 'Wr0ng-Secret-PW', Buffer.from('Sup3r-Secret-PW').toString('base64')]) assert.ok(!all.includes(secret), 'a password reached the log');
  });
});

describe('SMTP behind a trusted gateway', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ overrides: { outbound: { enabled: false }, trustedGateways: ['127.0.0.1'] } });
    await server.addUser('alice@example.com', 'alice-pw');
  });
  after(() => server.stop());

  it('takes the client address from the PROXY line: Received names it, plain AUTH is not offered to it', async () => {
    const mx = await WireClient.connect(server.port('smtp'));
    try {
      mx.write('PROXY TCP4 203.0.113.7 127.0.0.1 51234 25\r\n');
      assert.equal((await mx.read()).code, 220);
      await mx.command('EHLO client.example');
      assert.equal((await mx.command('MAIL FROM:<sender@remote.example>')).code, 250);
      assert.equal((await mx.command('RCPT TO:<alice@example.com>')).code, 250);
      assert.equal((await mx.command('DATA')).code, 354);
      mx.write(dataBlock(Buffer.from('Subject: via gateway\r\n\r\nhi\r\n')));
      assert.equal((await mx.read()).code, 250);
    } finally {
      mx.close();
    }
    const [stored] = await storedMessages(server.store, 'alice@example.com');
    assert.match(splitReceived(stored!.raw).received, /^Received: from client\.example \((?:\S+ )?\[203\.0\.113\.7\]\)/);

    const submission = await WireClient.connect(server.port('submission'));
    try {
      submission.write('PROXY TCP4 203.0.113.7 127.0.0.1 51234 587\r\n');
      await submission.read();
      const ehlo = await submission.command('EHLO client.example');
      assert.ok(!ehlo.lines.some((line) => line.startsWith('AUTH')), 'a remote client gets no AUTH before STARTTLS');
    } finally {
      submission.close();
    }
  });
});
