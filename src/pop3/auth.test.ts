// POP3 AUTHORIZATION through real sockets: USER/PASS, AUTH PLAIN and LOGIN (RFC 5034), STLS (RFC 2595),
// plaintext policy, failures and lockout, the maildrop lock ([IN-USE]), and what gets logged.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { startTestServer, tempDir, testConfig, type TestServer } from '../../test/helpers.js';
import { startServer } from '../server.js';
import { hashPassword } from '../util/password.js';
import { Pop3Client } from '../../test/clients/pop3.js';
import { error, ok, poplib, waitFor } from './test-kit.js';

const plain = (authzid: string, authcid: string, password: string) => Buffer.from(`${authzid}\0${authcid}\0${password}`).toString('base64');

function capabilities(result: unknown): string[] {
  return Object.keys(ok(result as never) as object);
}

describe('POP3 login on loopback (plaintext allowed)', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
    const userId = await server.addUser('alice@example.com', 'correct horse');
    await server.store.deliver(Buffer.from('Subject: hello\r\n\r\nhi\r\n'), [{ userId }]);
  });
  after(() => server.stop());

  it('advertises the RFC 2449 capabilities', async () => {
    const [, capa] = await poplib(server.port('pop3'), [['capa'], ['quit']]);
    assert.deepEqual(capabilities(capa), ['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING', 'STLS', 'USER', 'SASL', 'IMPLEMENTATION']);
    assert.deepEqual((ok(capa!) as Record<string, Buffer[]>).SASL, ['PLAIN', 'LOGIN']);
  });

  it('STLS, then CAPA without STLS and a login over TLS (poplib stls)', async () => {
    const results = await poplib(server.port('pop3'), [['stls'], ['capa'], ['user', 'alice@example.com'], ['pass_', 'correct horse'], ['stat'], ['quit']]);
    assert.match(String(ok(results[1])), /^\+OK begin TLS/);
    assert.ok(!capabilities(results[2]).includes('STLS'));
    assert.ok(capabilities(results[2]).includes('USER'));
    assert.deepEqual(ok(results[5]), [1, 'Subject: hello\r\n\r\nhi\r\n'.length]);
  });

  it('refuses a second STLS and discards commands pipelined behind STLS (RFC 2595 4)', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    // Whatever follows STLS in the same packet is plaintext an attacker could have injected.
    client.write('STLS\r\nUSER alice@example.com\r\n');
    assert.match(await client.readLine(), /^\+OK begin TLS/);
    await client.upgrade();
    assert.match(await client.command('PASS correct horse'), /^-ERR send USER first/);
    assert.match(await client.command('STLS'), /^-ERR TLS is already active/);
    await client.login('alice@example.com', 'correct horse');
    assert.equal(await client.command('QUIT'), '+OK bye, 1 messages left');
  });

  it('AUTH PLAIN with an initial response, a continuation, a cancel, and a listing', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    assert.deepEqual(await client.multiline('AUTH'), { status: '+OK', body: Buffer.from('PLAIN\r\nLOGIN\r\n') });
    assert.match(await client.command('AUTH CRAM-MD5'), /^-ERR unsupported mechanism/);
    assert.equal(await client.command('AUTH PLAIN'), '+ ');
    assert.match(await client.command('*'), /^-ERR \[AUTH\] authentication cancelled/);
    assert.equal(await client.command('AUTH PLAIN'), '+ ');
    assert.match(await client.command(plain('bob@example.com', 'alice@example.com', 'correct horse')), /^-ERR \[AUTH\] logging in as another user/);
    assert.equal(await client.command('AUTH PLAIN'), '+ ');
    assert.equal(await client.command(plain('', 'alice@example.com', 'correct horse')), '+OK maildrop locked and ready, 1 messages');
    assert.equal(await client.command('QUIT'), '+OK bye, 1 messages left');

    const second = await Pop3Client.connect(server.port('pop3'));
    assert.equal(await second.command(`AUTH PLAIN ${plain('alice@example.com', 'alice@example.com', 'correct horse')}`), '+OK maildrop locked and ready, 1 messages');
    assert.equal(await second.command('QUIT'), '+OK bye, 1 messages left');
  });

  it('wrong password and unknown user get the same [AUTH] reply; the session ends after limits.authFailures', async () => {
    const results = await poplib(server.port('pop3'), [['user', 'alice@example.com'], ['pass_', 'wrong']]);
    assert.equal(error(results[2]), '-ERR [AUTH] authentication failed');

    const client = await Pop3Client.connect(server.port('pop3'));
    await client.command('USER nobody@example.com');
    assert.equal(await client.command('PASS whatever'), '-ERR [AUTH] authentication failed');
    await client.command('USER alice@example.com');
    assert.equal(await client.command('PASS wrong again'), '-ERR [AUTH] authentication failed');
    assert.equal(await client.command(`AUTH PLAIN ${plain('', 'alice@example.com', 'third')}`), '-ERR [AUTH] authentication failed');
    assert.ok(await client.serverClosed(), 'closed after the third failure (limits.authFailures = 3)');
  });

  it('locks the maildrop: a second session gets [IN-USE] until the first is gone (RFC 1939 8, RFC 2449 8.1.1)', async () => {
    const first = await Pop3Client.connect(server.port('pop3'));
    await first.login('alice@example.com', 'correct horse');
    const second = await Pop3Client.connect(server.port('pop3'));
    await second.command('USER alice@example.com');
    assert.equal(await second.command('PASS correct horse'), '-ERR [IN-USE] maildrop already locked by another session');
    const results = await poplib(server.port('pop3'), [['user', 'alice@example.com'], ['pass_', 'correct horse']]);
    assert.match(error(results[2]), /^-ERR \[IN-USE\]/);
    assert.equal(await first.command('QUIT'), '+OK bye, 1 messages left');
    await first.closed();
    await waitFor(() => server.services.get('pop3')!.connections!() === 1);
    await second.login('alice@example.com', 'correct horse');
    assert.equal(await second.command('QUIT'), '+OK bye, 1 messages left');
  });
});

describe('POP3 plaintext refused off loopback-allowed config (pop3.loopbackPlainAuth: false)', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ overrides: { pop3: { loopbackPlainAuth: false } } });
    await server.addUser('carol@example.com', 'pw carol');
  });
  after(() => server.stop());

  it('refuses USER and AUTH PLAIN before STLS with [AUTH], and offers neither in CAPA', async () => {
    const results = await poplib(server.port('pop3'), [['capa'], ['user', 'carol@example.com'], ['quit']]);
    const capa = capabilities(results[1]);
    assert.ok(capa.includes('STLS'));
    assert.ok(!capa.includes('USER') && !capa.includes('SASL'));
    assert.match(error(results[2]), /^-ERR \[AUTH\] plaintext authentication is not allowed without TLS; use STLS first/);

    const client = await Pop3Client.connect(server.port('pop3'));
    assert.match(await client.command(`AUTH PLAIN ${plain('', 'carol@example.com', 'pw carol')}`), /^-ERR \[AUTH\] .*use STLS/);
    assert.match(await client.command('PASS pw carol'), /^-ERR send USER first/);
    client.destroy();
  });

  it('allows USER/PASS (poplib stls) and AUTH PLAIN after STLS', async () => {
    const results = await poplib(server.port('pop3'), [['stls'], ['capa'], ['user', 'carol@example.com'], ['pass_', 'pw carol'], ['stat'], ['quit']]);
    assert.ok(capabilities(results[2]).includes('USER'));
    assert.deepEqual(ok(results[5]), [0, 0]);

    const client = await Pop3Client.connect(server.port('pop3'));
    assert.match(await client.startTls(), /^\+OK/);
    assert.equal(await client.command(`AUTH PLAIN ${plain('', 'carol@example.com', 'pw carol')}`), '+OK maildrop locked and ready, 0 messages');
    assert.equal(await client.command('QUIT'), '+OK bye, 0 messages left');
  });
});

describe('POP3 lockout after failures from one address', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ overrides: { limits: { authFailuresPerIp: 3, authFailures: 10, lockoutSeconds: 60 } } });
    await server.addUser('dave@example.com', 'pw dave');
  });
  after(() => server.stop());

  it('refuses even the right password once the address is locked out', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    for (let i = 0; i < 3; i++) {
      await client.command('USER dave@example.com');
      assert.equal(await client.command(`PASS wrong ${i}`), '-ERR [AUTH] authentication failed');
    }
    await client.command('USER dave@example.com');
    assert.match(await client.command('PASS pw dave'), /^-ERR \[AUTH\] too many failed logins from your address/);
    client.destroy();
    const results = await poplib(server.port('pop3'), [['user', 'dave@example.com'], ['pass_', 'pw dave']]);
    assert.match(error(results[2]), /^-ERR \[AUTH\] too many failed logins/);
  });
});

describe('POP3 logging', () => {
  it('logs one line per session event with proto pop3, and never a password', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    const dataDir = tempDir('quill-pop3-log-');
    const server = await startServer(testConfig(dataDir), { logger: pino({ level: 'debug' }, sink) });
    try {
      await server.store.addDomain('example.com');
      await server.store.addUser({ address: 'erin@example.com', passwordHash: await hashPassword('Sekr1t-Pa55') });
      const port = server.port('pop3');
      await poplib(port, [['user', 'erin@example.com'], ['pass_', 'Wr0ng-Pa55'], ['user', 'erin@example.com'], ['pass_', 'Sekr1t-Pa55'], ['quit']]);
      const client = await Pop3Client.connect(port);
      assert.match(await client.command(`AUTH PLAIN ${plain('', 'erin@example.com', 'Sekr1t-Pa55')}`), /^\+OK/);
      assert.match(await client.command('QUIT'), /^\+OK/);
      await waitFor(() => lines.filter((line) => line.includes('"msg":"close"')).length === 2);
      const events = lines.map((line) => JSON.parse(line) as { proto?: string; msg: string }).filter((entry) => entry.proto === 'pop3');
      for (const msg of ['connect', 'login failed', 'login', 'update', 'close']) assert.ok(events.some((entry) => entry.msg === msg), `a "${msg}" line`);
      const all = lines.join('\n');
      for (const secret of ['Sekr1t-Pa55', 'Wr0ng-Pa55', plain('', 'erin@example.com', 'Sekr1t-Pa55')]) assert.ok(!all.includes(secret), 'no password in the log');
    } finally {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
