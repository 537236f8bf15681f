// XCLIENT LOGIN (src/pop3/commands/xclient.ts): a trusted gateway names the user; from any
// other address the command does not exist and logs nobody in.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { Pop3Client } from '../../test/clients/pop3.js';

describe('POP3 XCLIENT LOGIN', () => {
  let trusting: TestServer;
  let untrusting: TestServer;

  before(async () => {
    trusting = await startTestServer({ overrides: { trustedGateways: ['127.0.0.1'] } });
    untrusting = await startTestServer({ overrides: { trustedGateways: ['127.0.0.9'] } });
    for (const server of [trusting, untrusting]) {
      const userId = await server.addUser('alice@example.com', 'pw');
      await server.store.deliver(Buffer.from('Subject: one\r\n\r\nhi\r\n'), [{ userId }]);
    }
  });
  after(async () => {
    await trusting.stop();
    await untrusting.stop();
  });

  it('logs a trusted gateway in as the user it names, without a password', async () => {
    const client = await Pop3Client.connect(trusting.port('pop3'), { preface: 'PROXY TCP4 192.0.2.7 127.0.0.1 4000 110\r\n' });
    assert.match(client.greeting, /^\+OK /);
    assert.equal(await client.command('XCLIENT LOGIN=alice+40example.com'), '+OK maildrop locked and ready, 1 messages');
    assert.equal(await client.command('STAT'), `+OK 1 ${'Subject: one\r\n\r\nhi\r\n'.length}`);
    assert.match(await client.command('XCLIENT LOGIN=alice@example.com'), /^-ERR XCLIENT is not valid in the TRANSACTION state/);
    assert.match(await client.command('QUIT'), /^\+OK bye/);
  });

  it('refuses unknown users and malformed requests from a trusted gateway', async () => {
    const client = await Pop3Client.connect(trusting.port('pop3'), { preface: 'PROXY UNKNOWN\r\n' });
    assert.match(await client.command('XCLIENT LOGIN=nobody@example.com'), /^-ERR \[AUTH\] /);
    assert.match(await client.command('XCLIENT ADDR=1.2.3.4'), /^-ERR XCLIENT needs LOGIN/);
    assert.match(await client.command('QUIT'), /^\+OK bye/);
  });

  it('is refused from an address that is not a trusted gateway', async () => {
    const client = await Pop3Client.connect(untrusting.port('pop3'));
    assert.equal(await client.command('XCLIENT LOGIN=alice@example.com'), '-ERR unknown command');
    assert.match(await client.command('STAT'), /^-ERR STAT is not valid in the AUTHORIZATION state/);
    assert.match(await client.command('QUIT'), /^\+OK bye/);
  });
});
