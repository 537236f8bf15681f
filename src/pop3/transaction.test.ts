// POP3 TRANSACTION and UPDATE (RFC 1939 5-7) through real sockets: Python's poplib and the
// raw client. Exact bytes, byte-stuffing, sizes, deletion only at QUIT, stable UIDL.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { startTestServer, tempDir, type TestServer } from '../../test/helpers.js';
import { Pop3Client } from '../../test/clients/pop3.js';
import { error, joined, ok, poplib, waitFor } from './test-kit.js';

const DOTS = Buffer.from(
  'From: a@example.org\r\nSubject: dots\r\n\r\n.starts with a dot\r\n.\r\n..two dots\r\nmiddle . dot\r\n.\r\nlast line\r\n',
);
const EIGHT_BIT = Buffer.concat([Buffer.from('Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'), Buffer.from('caf\u00e9 \u00fcber \u2603\r\n', 'utf8'), Buffer.from([0xe9, 0xff, 0x80, 0x0d, 0x0a])]);
const NO_FINAL_CRLF = Buffer.from('Subject: unterminated\r\n\r\nline one\r\n.line two without CRLF');

async function inboxUids(server: TestServer, userId: number): Promise<number[]> {
  const inbox = await server.store.getMailbox(userId, 'INBOX');
  return server.store.listUids(inbox!.id);
}

describe('POP3 transaction', () => {
  let server: TestServer;
  let userId: number;
  const ids: string[] = [];

  before(async () => {
    server = await startTestServer();
    userId = await server.addUser('reader@example.com', 'pw reader');
    for (const raw of [DOTS, EIGHT_BIT, NO_FINAL_CRLF]) {
      const { copies } = await server.store.deliver(raw, [{ userId }]);
      ids.push(`${copies[0]!.uidvalidity}.${copies[0]!.uid}`);
    }
  });
  after(() => server.stop());

  it('STAT, LIST, UIDL and RETR give the exact stored bytes and matching sizes (poplib)', async () => {
    const results = await poplib(server.port('pop3'), [
      ['user', 'reader@example.com'],
      ['pass_', 'pw reader'],
      ['stat'],
      ['list'],
      ['uidl'],
      ['retr', 1],
      ['retr', 2],
      ['retr', 3],
      ['quit'],
    ]);
    const sizes = [DOTS.length, EIGHT_BIT.length, NO_FINAL_CRLF.length + 2];
    assert.deepEqual(ok(results[3]), [3, sizes[0]! + sizes[1]! + sizes[2]!]);
    const [, listLines] = ok(results[4]) as [Buffer, Buffer[]];
    assert.deepEqual(listLines.map(String), sizes.map((size, i) => `${i + 1} ${size}`));
    const [, uidlLines] = ok(results[5]) as [Buffer, Buffer[]];
    assert.deepEqual(uidlLines.map(String), ids.map((id, i) => `${i + 1} ${id}`));
    const expected = [DOTS, EIGHT_BIT, Buffer.concat([NO_FINAL_CRLF, Buffer.from('\r\n')])];
    for (const [i, want] of expected.entries()) {
      const retr = joined(results[6 + i]);
      assert.equal(retr.status, `+OK ${sizes[i]} octets`);
      assert.ok(retr.data.equals(want), `message ${i + 1} bytes differ`);
      assert.equal(retr.octets, sizes[i], 'octets received (before stuffing) equal the LIST size');
    }
    assert.match(String(ok(results[9])), /^\+OK/);
    assert.equal((await inboxUids(server, userId)).length, 3, 'nothing deleted');
  });

  it('stuffs lines that start with a dot on the wire and ends with CRLF.CRLF (raw socket)', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    await client.login('reader@example.com', 'pw reader');
    assert.equal(await client.command('RETR 1'), `+OK ${DOTS.length} octets`);
    const wire: string[] = [];
    for (let line = await client.readLine(); line !== '.'; line = await client.readLine()) wire.push(line);
    assert.deepEqual(wire.slice(3), ['..starts with a dot', '..', '...two dots', 'middle . dot', '..', 'last line']);
    const { status, body } = await client.multiline('RETR 3');
    assert.equal(status, `+OK ${NO_FINAL_CRLF.length + 2} octets`);
    assert.ok(body!.equals(Buffer.concat([NO_FINAL_CRLF, Buffer.from('\r\n')])));
    assert.equal(await client.command('QUIT'), '+OK bye, 3 messages left');
  });

  it('TOP sends the header, the blank line and n body lines', async () => {
    const results = await poplib(server.port('pop3'), [
      ['user', 'reader@example.com'],
      ['pass_', 'pw reader'],
      ['top', 1, 0],
      ['top', 1, 2],
      ['top', 3, 99],
      ['top', 9, 1],
      ['quit'],
    ]);
    assert.equal(joined(results[3]).data.toString(), 'From: a@example.org\r\nSubject: dots\r\n\r\n');
    assert.equal(joined(results[4]).data.toString(), 'From: a@example.org\r\nSubject: dots\r\n\r\n.starts with a dot\r\n.\r\n');
    assert.ok(joined(results[5]).data.equals(Buffer.concat([NO_FINAL_CRLF, Buffer.from('\r\n')])));
    assert.match(error(results[6]), /^-ERR no such message/);
  });

  it('runs pipelined commands in order (RFC 2449 6.6)', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    client.write('USER reader@example.com\r\nPASS pw reader\r\nSTAT\r\nLIST 2\r\nUIDL 3\r\nNOOP\r\nBOGUS\r\nQUIT\r\n');
    const replies = [];
    for (let i = 0; i < 8; i++) replies.push(await client.readLine());
    assert.deepEqual(replies, [
      '+OK send PASS',
      '+OK maildrop locked and ready, 3 messages',
      `+OK 3 ${DOTS.length + EIGHT_BIT.length + NO_FINAL_CRLF.length + 2}`,
      `+OK 2 ${EIGHT_BIT.length}`,
      `+OK 3 ${ids[2]}`,
      '+OK',
      '-ERR unknown command',
      '+OK bye, 3 messages left',
    ]);
    assert.ok(await client.serverClosed());
  });

  it('refuses commands in the wrong state and bad message numbers', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    assert.match(await client.command('STAT'), /^-ERR STAT is not valid in the AUTHORIZATION state/);
    assert.match(await client.command('RETR 1'), /^-ERR /);
    await client.login('reader@example.com', 'pw reader');
    assert.match(await client.command('USER reader@example.com'), /^-ERR USER is not valid in the TRANSACTION state/);
    assert.match(await client.command('STLS'), /^-ERR /);
    assert.match(await client.command('RETR 0'), /^-ERR no such message/);
    assert.match(await client.command('RETR 4'), /^-ERR no such message/);
    assert.match(await client.command('RETR x'), /^-ERR message number required/);
    assert.match(await client.command('TOP 1'), /^-ERR TOP needs/);
    assert.equal(await client.command('DELE 2'), '+OK message 2 deleted');
    assert.match(await client.command('DELE 2'), /^-ERR message 2 already deleted/);
    assert.match(await client.command('RETR 2'), /^-ERR message 2 already deleted/);
    assert.match(await client.command('LIST 2'), /^-ERR message 2 already deleted/);
    assert.equal(await client.command('RSET'), `+OK maildrop has 3 messages (${DOTS.length + EIGHT_BIT.length + NO_FINAL_CRLF.length + 2} octets)`);
    client.destroy();
  });
});

describe('POP3 deletion happens only at QUIT (RFC 1939 6)', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  async function userWith(address: string, count: number): Promise<number> {
    const userId = await server.addUser(address, 'pw');
    for (let i = 1; i <= count; i++) await server.store.deliver(Buffer.from(`Subject: m${i}\r\n\r\nbody ${i}\r\n`), [{ userId }]);
    return userId;
  }

  it('DELE then QUIT removes the messages', async () => {
    const userId = await userWith('quit@example.com', 3);
    const before = await inboxUids(server, userId);
    const results = await poplib(server.port('pop3'), [['user', 'quit@example.com'], ['pass_', 'pw'], ['dele', 1], ['dele', 3], ['quit']]);
    assert.equal(String(ok(results[5])), '+OK bye, 1 messages left');
    assert.deepEqual(await inboxUids(server, userId), [before[1]]);
  });

  it('DELE then a dropped connection keeps them', async () => {
    const userId = await userWith('drop@example.com', 2);
    const client = await Pop3Client.connect(server.port('pop3'));
    await client.login('drop@example.com', 'pw');
    assert.equal(await client.command('DELE 1'), '+OK message 1 deleted');
    assert.equal(await client.command('DELE 2'), '+OK message 2 deleted');
    client.destroy();
    await waitFor(() => server.services.get('pop3')!.connections!() === 0);
    const results = await poplib(server.port('pop3'), [['user', 'drop@example.com'], ['pass_', 'pw'], ['stat'], ['quit']]);
    assert.equal((ok(results[3]) as number[])[0], 2);
    assert.equal((await inboxUids(server, userId)).length, 2);
  });

  it('RSET unmarks, so QUIT removes nothing', async () => {
    const userId = await userWith('rset@example.com', 2);
    const results = await poplib(server.port('pop3'), [['user', 'rset@example.com'], ['pass_', 'pw'], ['dele', 1], ['stat'], ['rset'], ['stat'], ['quit']]);
    assert.equal((ok(results[4]) as number[])[0], 1);
    assert.equal((ok(results[6]) as number[])[0], 2);
    assert.equal((await inboxUids(server, userId)).length, 2);
  });

  it('the maildrop is INBOX as of login; messages removed meanwhile are refused', async () => {
    const userId = await userWith('snapshot@example.com', 2);
    const client = await Pop3Client.connect(server.port('pop3'));
    await client.login('snapshot@example.com', 'pw');
    await server.store.deliver(Buffer.from('Subject: later\r\n\r\nlater\r\n'), [{ userId }]);
    const inbox = await server.store.getMailbox(userId, 'INBOX');
    await server.store.expunge(inbox!.id, [(await inboxUids(server, userId))[0]!], false); // as IMAP would
    assert.match(await client.command('STAT'), /^\+OK 2 /);
    assert.match(await client.command('RETR 1'), /^-ERR message 1 is no longer available/);
    const { body } = await client.multiline('RETR 2');
    assert.equal(body!.toString(), 'Subject: m2\r\n\r\nbody 2\r\n');
    assert.equal(await client.command('DELE 1'), '+OK message 1 deleted');
    assert.equal(await client.command('QUIT'), '+OK bye, 1 messages left');
    assert.equal((await inboxUids(server, userId)).length, 2, 'message 2 and the later one remain');
  });

  it('reads over POP3 what came in over SMTP, byte for byte after the Received header', async () => {
    await server.addUser('smtp@example.com', 'pw');
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: server.port('smtp'), secure: false, tls: { rejectUnauthorized: false } });
    const sent = Buffer.concat([DOTS, EIGHT_BIT]);
    await transport.sendMail({ envelope: { from: 'x@remote.example', to: ['smtp@example.com'] }, raw: sent });
    transport.close();
    const results = await poplib(server.port('pop3'), [['user', 'smtp@example.com'], ['pass_', 'pw'], ['list', 1], ['retr', 1], ['quit']]);
    const retr = joined(results[4]);
    assert.ok(retr.data.subarray(retr.data.length - sent.length).equals(sent), 'the sent bytes end the message');
    assert.match(retr.data.toString('latin1'), /(^|\r\n)Received: /);
    assert.equal(String(ok(results[3])), `+OK 1 ${retr.octets}`);
  });

  it('streams a 5 MB message exactly, stuffing included', async () => {
    const userId = await server.addUser('big@example.com', 'pw');
    const lines: Buffer[] = [Buffer.from('Subject: big\r\n\r\n')];
    let size = lines[0]!.length;
    for (let i = 0; size < 5 * 1024 * 1024; i++) {
      const line = Buffer.from(i % 7 === 0 ? `.dot line ${i} caf\u00e9 ${'x'.repeat(60)}\r\n` : `line ${i} ${'y'.repeat(70)}\r\n`, 'utf8');
      lines.push(line);
      size += line.length;
    }
    const raw = Buffer.concat(lines);
    await server.store.deliver(raw, [{ userId }]);
    const client = await Pop3Client.connect(server.port('pop3'));
    await client.login('big@example.com', 'pw');
    assert.equal(await client.command('LIST 1'), `+OK 1 ${raw.length}`);
    // The client stops reading at first, so the server has to wait for the socket to drain.
    client.write('RETR 1\r\n');
    await client.stall(200);
    const status = await client.readLine();
    const body = await client.readBody();
    assert.equal(status, `+OK ${raw.length} octets`);
    assert.equal(body.length, raw.length);
    assert.ok(body.equals(raw));
    assert.equal(await client.command('QUIT'), '+OK bye, 1 messages left');
  });
});

describe('POP3 UIDL across a restart', () => {
  it('keeps unique ids and undeleted messages when the server restarts on the same data', async () => {
    const dataDir = tempDir('quill-pop3-restart-');
    try {
      let server = await startTestServer({ dataDir });
      const userId = await server.addUser('keep@example.com', 'pw');
      for (let i = 1; i <= 3; i++) await server.store.deliver(Buffer.from(`Subject: ${i}\r\n\r\n${i}\r\n`), [{ userId }]);
      const first = await poplib(server.port('pop3'), [['user', 'keep@example.com'], ['pass_', 'pw'], ['uidl'], ['quit']]);
      const ids = (ok(first[3]) as [Buffer, Buffer[]])[1].map(String);
      // A session with a deletion mark is cut off by the shutdown: nothing is deleted.
      const client = await Pop3Client.connect(server.port('pop3'));
      await client.login('keep@example.com', 'pw');
      assert.equal(await client.command('DELE 2'), '+OK message 2 deleted');
      await server.stop();
      await client.closed();

      server = await startTestServer({ dataDir });
      try {
        const second = await poplib(server.port('pop3'), [['user', 'keep@example.com'], ['pass_', 'pw'], ['uidl'], ['quit']]);
        assert.deepEqual((ok(second[3]) as [Buffer, Buffer[]])[1].map(String), ids);
        assert.equal(ids.length, 3);
      } finally {
        await server.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
