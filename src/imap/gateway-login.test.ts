// XQUILL-LOGIN (src/imap/commands/auth.ts): the gateway's IMAP front end opens a session for a
// user it authenticated itself; only a connection from a trusted gateway may do that.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestServer, type TestServer } from '../../test/helpers.js';

async function converse(port: number, lines: string[], untilText: RegExp): Promise<string> {
  const socket = net.connect({ host: '127.0.0.1', port });
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (text += chunk));
  await new Promise((resolve) => socket.once('connect', resolve));
  for (const line of lines) socket.write(`${line}\r\n`);
  const end = Date.now() + 10_000;
  while (!untilText.test(text) && Date.now() < end) await sleep(20);
  socket.destroy();
  return text;
}

describe('XQUILL-LOGIN', () => {
  let trusting: TestServer;
  let plain: TestServer;

  before(async () => {
    trusting = await startTestServer({ overrides: { trustedGateways: ['127.0.0.1'] } });
    await trusting.addUser('hal@example.com', 'hal-password');
    plain = await startTestServer();
    await plain.addUser('hal@example.com', 'hal-password');
  });

  after(async () => {
    await Promise.all([trusting.stop(), plain.stop()]);
  });

  it('opens a session from a trusted gateway without a password', async () => {
    const text = await converse(trusting.port('imap'), ['PROXY TCP4 192.0.2.9 127.0.0.1 5555 143', 'a XQUILL-LOGIN "hal@example.com"', 'b SELECT INBOX'], /b (OK|NO|BAD)/);
    assert.match(text, /a OK \[CAPABILITY [^\]]*IMAP4rev1/);
    assert.match(text, /b OK \[READ-WRITE\]/);
  });

  it('refuses an unknown user', async () => {
    const text = await converse(trusting.port('imap'), ['PROXY TCP4 192.0.2.9 127.0.0.1 5555 143', 'a XQUILL-LOGIN nobody@example.com'], /a (OK|NO|BAD)/);
    assert.match(text, /a NO \[AUTHENTICATIONFAILED\]/);
  });

  it('is no command at all for anyone else', async () => {
    const text = await converse(plain.port('imap'), ['a XQUILL-LOGIN hal@example.com', 'b SELECT INBOX'], /b (OK|NO|BAD)/);
    assert.match(text, /a BAD unknown command XQUILL-LOGIN/);
    assert.match(text, /b BAD SELECT is not allowed in the not-authenticated state/);
  });
});
