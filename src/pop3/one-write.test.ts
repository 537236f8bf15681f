// A RETR or TOP reply leaves in one write: status, message and terminator arrive in one read
// on the client, instead of pieces whose last one waits for the client's delayed ACK.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';

/** Sends a command and collects the reply's reads until `done` says it is complete. */
function exchange(socket: Socket, command: string, done: (text: string) => boolean): Promise<string[]> {
  return new Promise((resolve) => {
    const reads: string[] = [];
    const onData = (chunk: Buffer) => {
      reads.push(chunk.toString('latin1'));
      if (done(reads.join(''))) {
        socket.off('data', onData);
        resolve(reads);
      }
    };
    socket.on('data', onData);
    if (command) socket.write(`${command}\r\n`);
  });
}

const lineDone = (text: string) => text.endsWith('\r\n');
const multiDone = (text: string) => text.endsWith('\r\n.\r\n');

describe('POP3 replies in one write', () => {
  let server: TestServer;
  let socket: Socket;

  before(async () => {
    server = await startTestServer();
    const userId = await server.addUser('one@example.com', 'pw');
    const body = Array.from({ length: 40 }, (_, i) => `line ${i} of the body, long enough to matter ${'z'.repeat(30)}`).join('\r\n');
    await server.store.deliver(Buffer.from(`Subject: one\r\nFrom: <a@example.org>\r\n\r\n.dotted\r\n${body}\r\n`), [{ userId }]);
    socket = connect({ host: '127.0.0.1', port: server.port('pop3'), localAddress: '127.0.0.2' });
    await exchange(socket, '', lineDone);
    await exchange(socket, 'USER one@example.com', lineDone);
    await exchange(socket, 'PASS pw', lineDone);
  });
  after(async () => {
    socket.destroy();
    await server.stop();
  });

  it('RETR arrives in one read', async () => {
    const reads = await exchange(socket, 'RETR 1', multiDone);
    assert.match(reads.join(''), /^\+OK \d+ octets\r\n/);
    assert.match(reads.join(''), /\r\n\.\.dotted\r\n/);
    assert.equal(reads.length, 1, `the reply came in ${reads.length} reads`);
  });

  it('TOP arrives in one read', async () => {
    const reads = await exchange(socket, 'TOP 1 3', multiDone);
    assert.match(reads.join(''), /^\+OK/);
    assert.equal(reads.length, 1, `the reply came in ${reads.length} reads`);
  });
});
