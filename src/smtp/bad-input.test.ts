// What hostile or broken clients send the MX listener: each gets an answer, nothing half
// stored, and the server keeps serving the next client.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { splitReceived, storedMessages } from './test-support.js';
import { dataBlock, WireClient } from '../../test/clients/smtp.js';

async function open(port: number): Promise<WireClient> {
  const client = await WireClient.connect(port);
  assert.equal((await client.read()).code, 220);
  assert.equal((await client.command('EHLO client.example')).code, 250);
  return client;
}

/** One complete transaction on an open session; returns the reply to the final dot. */
async function send(client: WireClient, to: string, body: Buffer): Promise<string> {
  assert.equal((await client.command('MAIL FROM:<sender@remote.example>')).code, 250);
  assert.equal((await client.command(`RCPT TO:<${to}>`)).code, 250);
  assert.equal((await client.command('DATA')).code, 354);
  client.write(dataBlock(body));
  return (await client.read()).text;
}

async function deliverOne(port: number, to: string, subject: string): Promise<void> {
  const client = await open(port);
  try {
    assert.match(await send(client, to, Buffer.from(`Subject: ${subject}\r\n\r\nstill here\r\n`)), /^250 /);
  } finally {
    client.close();
  }
}

const count = async (server: TestServer, address = 'alice@example.com') => (await storedMessages(server.store, address)).length;

describe('SMTP bad input', () => {
  let server: TestServer;
  let port: number;

  before(async () => {
    server = await startTestServer({ overrides: { outbound: { enabled: false }, limits: { messageSize: 64 * 1024, recipients: 5, badCommands: 4 } } });
    port = server.port('smtp');
    for (const name of ['alice', 'u1', 'u2', 'u3', 'u4']) await server.addUser(`${name}@example.com`, 'secret-pw');
  });
  after(() => server.stop());

  it('answers a 100 KB command line with an error and serves the next client', async () => {
    const client = await open(port);
    client.write(`MAIL FROM:<${'a'.repeat(100 * 1024)}@remote.example>\r\n`);
    const reply = await client.read();
    assert.ok(reply.code >= 400, reply.text);
    await client.untilClosed();
    await deliverOne(port, 'alice@example.com', 'after the long line');
  });

  it('refuses a message past SIZE with 552 5.3.4 and stores nothing', async () => {
    const before = await count(server);
    const client = await open(port);
    try {
      const declared = await client.command(`MAIL FROM:<sender@remote.example> SIZE=${1024 * 1024}`);
      assert.match(declared.text, /^552 5\.3\.4 /);
      const big = Buffer.from(`Subject: big\r\n\r\n${'0123456789abcdef'.repeat(63)}\r\n`.repeat(100)); // ~100 KB
      assert.match(await send(client, 'alice@example.com', big), /^552 5\.3\.4 /);
      // The session goes on.
      assert.match(await send(client, 'alice@example.com', Buffer.from('Subject: small\r\n\r\nfits\r\n')), /^250 /);
    } finally {
      client.close();
    }
    const messages = await storedMessages(server.store, 'alice@example.com');
    assert.equal(messages.length, before + 1);
    assert.match(messages.at(-1)!.raw.toString(), /Subject: small/);
  });

  it('refuses NUL bytes in a message (554 5.6.0) and in a command, and goes on', async () => {
    const before = await count(server);
    const client = await open(port);
    try {
      const reply = await send(client, 'alice@example.com', Buffer.from('Subject: nul\r\n\r\nbefore\0after\r\n'));
      assert.match(reply, /^554 5\.6\.0 /);
      const command = await client.command('MAIL FROM:<nul\0@remote.example>');
      assert.ok(command.code >= 500, command.text);
      assert.match(await send(client, 'alice@example.com', Buffer.from('Subject: clean\r\n\r\nno nul\r\n')), /^250 /);
    } finally {
      client.close();
    }
    assert.equal(await count(server), before + 1);
  });

  it('stores broken MIME exactly as sent', async () => {
    const broken = Buffer.from(
      [
        'Subject: =?utf-8?B?broken',
        'Content-Type: multipart/mixed; boundary="never-closed"',
        'header line without a colon',
        'Content-Transfer-Encoding: base64',
        '',
        '--never-closed',
        'Content-Type: text/plain; charset=no-such-charset',
        'Content-Transfer-Encoding: quoted-printable',
        '',
        'bad qp =ZZ and a soft break =',
        'not base64 at all: !!!@@@',
        'bare LF here\nand a bare CR here\rend',
        '--never-closed-but-not-quite',
        '',
      ].join('\r\n'),
    );
    const client = await open(port);
    try {
      assert.match(await send(client, 'u1@example.com', broken), /^250 /);
    } finally {
      client.close();
    }
    const [stored] = await storedMessages(server.store, 'u1@example.com');
    assert.deepEqual(splitReceived(stored!.raw).rest, broken);
  });

  it('takes only limits.recipients of 10,000 pipelined RCPT commands and answers every one', async () => {
    const client = await open(port);
    try {
      const lines = ['MAIL FROM:<sender@remote.example>'];
      for (let i = 0; i < 10_000; i++) lines.push(i < 5 ? `RCPT TO:<${i === 0 ? 'alice' : `u${i}`}@example.com>` : `RCPT TO:<r${i}@example.com>`);
      client.write(lines.join('\r\n') + '\r\n');
      assert.equal((await client.read()).code, 250);
      const codes = new Map<string, number>();
      for (let i = 0; i < 10_000; i++) {
        const reply = await client.read();
        const key = reply.text.slice(0, 9);
        codes.set(key, (codes.get(key) ?? 0) + 1);
      }
      assert.deepEqual(Object.fromEntries(codes), { '250 2.1.5': 5, '452 4.5.3': 9995 });
      assert.equal((await client.command('DATA')).code, 354);
      client.write(dataBlock(Buffer.from('Subject: many\r\n\r\nto five\r\n')));
      assert.match((await client.read()).text, /^250 /);
    } finally {
      client.close();
    }
    const copies = await storedMessages(server.store, 'u4@example.com');
    assert.match(copies.at(-1)!.raw.toString(), /Subject: many/);
  });

  it('stores nothing from a connection dropped mid-DATA, and later deliveries work', async () => {
    const before = await count(server);
    const client = await open(port);
    assert.equal((await client.command('MAIL FROM:<sender@remote.example>')).code, 250);
    assert.equal((await client.command('RCPT TO:<alice@example.com>')).code, 250);
    assert.equal((await client.command('DATA')).code, 354);
    client.write('Subject: half\r\n\r\nthe first half of a message that never ends\r\n');
    client.close();
    await deliverOne(port, 'alice@example.com', 'after the drop');
    const messages = await storedMessages(server.store, 'alice@example.com');
    assert.equal(messages.length, before + 1);
    assert.doesNotMatch(messages.map((m) => m.raw.toString()).join('\n'), /Subject: half/);
  });

  it('closes a session after limits.badCommands bad commands', async () => {
    const client = await open(port);
    try {
      const replies = [];
      for (let i = 0; i < 4; i++) replies.push((await client.command(`BOGUS${i}`)).code);
      assert.deepEqual(replies, [500, 500, 500, 500]);
      const last = await client.read();
      assert.match(last.text, /^421 4\.7\.0 /);
      await client.untilClosed();
    } finally {
      client.close();
    }
  });
});

describe('SMTP slow and crowding clients', () => {
  let server: TestServer;
  let port: number;

  before(async () => {
    server = await startTestServer({ overrides: { outbound: { enabled: false }, limits: { idleTimeoutSeconds: 0.5, connectionsPerIp: 2 } } });
    port = server.port('smtp');
    await server.addUser('alice@example.com', 'secret-pw');
  });
  after(() => server.stop());

  it('closes an idle client after limits.idleTimeoutSeconds with 421', async () => {
    const client = await open(port);
    try {
      const reply = await client.read(); // sent nothing more: the server speaks first
      assert.equal(reply.code, 421);
      await client.untilClosed();
    } finally {
      client.close();
    }
  });

  it('refuses connections past limits.connectionsPerIp with 421 4.7.0', async () => {
    const first = await open(port);
    const second = await open(port);
    const third = await WireClient.connect(port);
    try {
      const reply = await third.read();
      assert.match(reply.text, /^421 4\.7\.0 /);
      await third.untilClosed();
    } finally {
      for (const client of [first, second, third]) client.close();
    }
    // Closed sessions give their slots back.
    const smtp = server.services.get('smtp')!;
    for (let i = 0; i < 100 && smtp.connections!() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    await deliverOne(port, 'alice@example.com', 'slots back');
  });
});
