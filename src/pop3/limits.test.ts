// POP3 under bad input and limits, through raw sockets: overlong lines, bad commands,
// strangers on the port, idle clients, and too many connections.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { Pop3Client } from '../../test/clients/pop3.js';
import { waitFor } from './test-kit.js';

describe('POP3 bad input', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ overrides: { limits: { lineLength: 512, badCommands: 3 } } });
    await server.addUser('frank@example.com', 'pw');
  });
  after(() => server.stop());

  it('answers an overlong line once with -ERR, discards it as it arrives, and goes on', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    client.write('CAPA ');
    for (let i = 0; i < 64; i++) client.write('x'.repeat(16 * 1024)); // 1 MB without a line end
    client.write('\r\nUSER frank@example.com\r\n');
    assert.equal(await client.readLine(), '-ERR line too long (limit 512 octets)');
    assert.equal(await client.readLine(), '+OK send PASS', 'the next line is read normally');
    assert.equal(await client.command('PASS pw'), '+OK maildrop locked and ready, 0 messages');
    assert.equal(await client.command(`NOOP ${'y'.repeat(500)}`), '+OK', 'a line within the limit is fine');
    assert.equal(await client.command('QUIT'), '+OK bye, 0 messages left');
  });

  it('closes the session after limits.badCommands unknown, misplaced or malformed commands', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    assert.equal(await client.command('FROB'), '-ERR unknown command');
    assert.equal(await client.command('RETR 1'), '-ERR RETR is not valid in the AUTHORIZATION state');
    assert.equal(await client.command('US\0ER x'), '-ERR NUL in command');
    assert.ok(await client.serverClosed());
  });

  it('does not count a failed command that was well formed (no such message)', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    await client.login('frank@example.com', 'pw');
    for (let i = 0; i < 5; i++) assert.equal(await client.command('RETR 7'), '-ERR no such message');
    assert.equal(await client.command('NOOP'), '+OK');
    client.destroy();
  });

  it('hangs up on an HTTP request', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    assert.equal(await client.command('GET / HTTP/1.1'), '-ERR this is a POP3 server');
    assert.ok(await client.serverClosed());
  });

  it('drops the connection when the TLS handshake after STLS fails', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    assert.match(await client.command('STLS'), /^\+OK begin TLS/);
    client.write('this is not a TLS client hello\r\n\r\n');
    await client.closed();
    await waitFor(() => server.services.get('pop3')!.connections!() === 0);
  });

  it('runs commands a client sent before half-closing its side', async () => {
    const userId = (await server.store.getUser('frank@example.com'))!.id;
    await server.store.deliver(Buffer.from('Subject: x\r\n\r\nx\r\n'), [{ userId }]);
    const client = await Pop3Client.connect(server.port('pop3'));
    client.write('USER frank@example.com\r\nPASS pw\r\nDELE 1\r\nQUIT\r\n');
    client.endInput();
    const replies = [await client.readLine(), await client.readLine(), await client.readLine(), await client.readLine()];
    assert.deepEqual(replies, ['+OK send PASS', '+OK maildrop locked and ready, 1 messages', '+OK message 1 deleted', '+OK bye, 0 messages left']);
    const inbox = await server.store.getMailbox(userId, 'INBOX');
    assert.deepEqual(await server.store.listUids(inbox!.id), []);
  });
});

describe('POP3 idle timeout (RFC 1939 3 autologout)', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ overrides: { limits: { idleTimeoutSeconds: 1 } } });
    const userId = await server.addUser('gina@example.com', 'pw');
    await server.store.deliver(Buffer.from('Subject: keep\r\n\r\nkeep\r\n'), [{ userId }]);
  });
  after(() => server.stop());

  it('closes an idle session without a response and without entering UPDATE', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    await client.login('gina@example.com', 'pw');
    assert.equal(await client.command('DELE 1'), '+OK message 1 deleted');
    assert.ok(await client.serverClosed(), 'closed with nothing more sent');
    const user = await server.store.getUser('gina@example.com');
    const inbox = await server.store.getMailbox(user!.id, 'INBOX');
    assert.equal((await server.store.listUids(inbox!.id)).length, 1);
  });
});

describe('POP3 connection limits', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ overrides: { limits: { connections: 3, connectionsPerIp: 2 } } });
  });
  after(() => server.stop());

  it('refuses connections past limits.connectionsPerIp and limits.connections with [SYS/TEMP]', async () => {
    const port = server.port('pop3');
    const open = [await Pop3Client.connect(port), await Pop3Client.connect(port)];
    for (const client of open) assert.match(client.greeting, /^\+OK /);
    const thirdFromIp = await Pop3Client.connect(port);
    assert.equal(thirdFromIp.greeting, '-ERR [SYS/TEMP] too many connections from your address, try again later');
    assert.ok(await thirdFromIp.serverClosed());

    const other = await Pop3Client.connect(port, { localAddress: '127.0.0.2' });
    assert.match(other.greeting, /^\+OK /);
    open.push(other);
    const overTotal = await Pop3Client.connect(port, { localAddress: '127.0.0.3' });
    assert.equal(overTotal.greeting, '-ERR [SYS/TEMP] too many connections, try again later');
    assert.ok(await overTotal.serverClosed());

    // A slot frees when a session ends.
    assert.equal(await open[0]!.command('QUIT'), '+OK bye');
    await waitFor(() => server.services.get('pop3')!.connections!() === 2);
    const again = await Pop3Client.connect(port);
    assert.match(again.greeting, /^\+OK /);
    for (const client of [...open, again]) client.destroy();
  });
});

describe('POP3 behind a trusted gateway (PROXY v1 header)', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ overrides: { trustedGateways: ['127.0.0.1'], limits: { connectionsPerIp: 1 } } });
  });
  after(() => server.stop());

  async function via(client: string): Promise<Pop3Client> {
    return Pop3Client.connect(server.port('pop3'), { preface: `PROXY TCP4 ${client} 127.0.0.1 40000 110\r\n` });
  }

  it("applies the plaintext rule to the client's own address, and leaves per-address limits to the gateway", async () => {
    const first = await via('203.0.113.7');
    assert.match(first.greeting, /^\+OK /);
    assert.match(await first.command('USER someone@example.com'), /^-ERR \[AUTH\] .*use STLS/, 'not loopback, so no plaintext');
    // Issue 20: a gateway link counts against no address on the node (the gateway screens its
    // clients), so a second session of the same client is not refused here.
    const second = await via('203.0.113.7');
    assert.match(second.greeting, /^\+OK /);
    for (const client of [first, second]) client.destroy();
  });

  it('drops a connection from the gateway without a valid header', async () => {
    await assert.rejects(Pop3Client.connect(server.port('pop3'), { preface: 'CAPA\r\n' }), /connection closed by server/);
  });
});
