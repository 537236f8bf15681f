// A whole node on PostgreSQL while the database goes away and comes back: every protocol
// answers with its temporary error (SMTP 451, POP3 -ERR [SYS/TEMP], HTTP 503), nothing is
// acknowledged that was not stored, and the same process serves again once PostgreSQL is back.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { postgresAvailable, startPostgres, type PgServer } from '../../test/pg-server.js';

/** Logs in to POP3 with a raw socket and returns the reply to PASS. */
async function pop3Login(port: number, user: string, pass: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  let buffer = '';
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    for (let i = buffer.indexOf('\r\n'); i !== -1; i = buffer.indexOf('\r\n')) {
      lines.push(buffer.slice(0, i));
      buffer = buffer.slice(i + 2);
    }
    waiters.splice(0).forEach((wake) => wake());
  });
  const line = async (): Promise<string> => {
    while (lines.length === 0) await new Promise<void>((resolve) => waiters.push(resolve));
    return lines.shift()!;
  };
  try {
    assert.match(await line(), /^\+OK/);
    socket.write(`USER ${user}\r\n`);
    assert.match(await line(), /^\+OK/);
    socket.write(`PASS ${pass}\r\n`);
    return await line();
  } finally {
    socket.destroy();
  }
}

async function send(port: number, subject: string): Promise<void> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, name: 'client.example', tls: { rejectUnauthorized: false } });
  try {
    await transport.sendMail({ envelope: { from: 'bob@remote.test', to: ['alice@example.com'] }, raw: `From: bob@remote.test\r\nTo: alice@example.com\r\nSubject: ${subject}\r\n\r\nbody\r\n` });
  } finally {
    transport.close();
  }
}

describe('a node on PostgreSQL through a database outage', { skip: postgresAvailable() ? false : 'PostgreSQL 15 is not installed' }, () => {
  let pg: PgServer;
  let server: TestServer;

  before(async () => {
    pg = await startPostgres();
    server = await startTestServer({ overrides: { outbound: { enabled: false }, store: { url: await pg.createDatabase(), connectTimeoutSeconds: 2 } } });
    await server.addUser('alice@example.com', 'alice-pw');
  });
  after(async () => {
    await server?.stop();
    pg?.destroy();
  });

  it('answers with temporary errors while PostgreSQL is down and serves again when it returns', async () => {
    assert.equal(server.store.kind, 'postgres');
    const smtp = server.port('smtp');
    await send(smtp, 'before');

    pg.stopServer();
    await assert.rejects(send(smtp, 'during'), (error: { responseCode?: number }) => error.responseCode === 451);
    assert.match(await pop3Login(server.port('pop3'), 'alice@example.com', 'alice-pw'), /^-ERR \[SYS\/TEMP\] /);
    const health = await fetch(`http://127.0.0.1:${server.port('http')}/healthz`);
    assert.equal(health.status, 503);

    pg.start();
    await send(smtp, 'after');
    assert.match(await pop3Login(server.port('pop3'), 'alice@example.com', 'alice-pw'), /^\+OK/);
    assert.equal((await fetch(`http://127.0.0.1:${server.port('http')}/healthz`)).status, 200);

    const user = (await server.store.getUser('alice@example.com'))!;
    const inbox = (await server.store.getMailbox(user.id, 'INBOX'))!;
    const subjects = await Promise.all(
      (await server.store.listMessages(inbox.id)).map(async (m) => /Subject: (\w+)/.exec((await server.store.getBlob(m.blobHash))!.toString())![1]),
    );
    assert.deepEqual(subjects, ['before', 'after'], 'the mail refused with 451 was not stored');
  });
});
