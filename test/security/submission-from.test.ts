// Issue 17 row 5: a submission client may put only its own address in From: and Sender:
// (and MAIL FROM), else 550 5.7.1 and nothing is delivered or queued; users and domains in
// smtp.trustedSenders may use any address of their own domain.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { startTestServer, type TestServer } from '../helpers.js';
import { storedMessages } from '../../src/smtp/test-support.js';
import { answeredWithin, whileTimingNoops } from './auth-kit.js';

function message(from: string, subject: string, extra = ''): string {
  return `From: ${from}\r\n${extra}To: bob@example.com, friend@remote.example\r\nSubject: ${subject}\r\n\r\nPlease wire the money.\r\n`;
}

describe('submission: From and Sender must be the authenticated user', () => {
  let server: TestServer;
  let port: number;

  before(async () => {
    server = await startTestServer({ overrides: { outbound: { enabled: false }, smtp: { trustedSenders: ['boss@example.com'] } } });
    port = server.port('submission');
    await server.addUser('alice@example.com', 'alice-pw');
    await server.addUser('bob@example.com', 'bob-pw');
    await server.addUser('boss@example.com', 'boss-pw');
  });
  after(() => server.stop());

  const send = async (user: string, raw: string, envelopeFrom = user) => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, localAddress: '127.0.0.2', auth: { user, pass: user.replace(/@.*/, '-pw') } });
    try {
      return await transport.sendMail({ envelope: { from: envelopeFrom, to: ['bob@example.com', 'friend@remote.example'] }, raw });
    } finally {
      transport.close();
    }
  };

  it('refuses From: "CEO" <ceo@example.com> from alice with 550 5.7.1, delivering and queueing nothing', async () => {
    const { result: outcome, noopMs } = await whileTimingNoops('submission', port, '127.0.0.3', 'bob@example.com', 'bob-pw', async () => {
      return send('alice@example.com', message('"CEO" <ceo@example.com>', 'urgent')).then(
        () => undefined,
        (error: Error & { responseCode?: number; response?: string }) => error,
      );
    });
    assert.ok(outcome, 'refused');
    assert.equal(outcome.responseCode, 550);
    assert.match(outcome.response ?? '', /^550 5\.7\.1 The From: header must name your own address \(alice@example\.com\)/);
    assert.equal((await storedMessages(server.store, 'bob@example.com')).length, 0);
    assert.equal((await server.store.listOutbound()).length, 0);
    assert.ok(answeredWithin(noopMs, 100), `NOOPs: ${noopMs.map(Math.round).join(', ')}`);
  });

  it('refuses a Sender: of someone else, a second From: and a From: hidden in a list', async () => {
    const refused = async (raw: string) => {
      await assert.rejects(send('alice@example.com', raw), (error: Error & { response?: string }) => /^550 5\.7\.1 /.test(error.response ?? ''));
    };
    await refused(message('alice@example.com', 'sender', 'Sender: ceo@example.com\r\n'));
    await refused(message('alice@example.com', 'two', 'From: ceo@example.com\r\n'));
    await refused(message('alice@example.com, ceo@example.com', 'list'));
    await refused(message('ceo@example.com\r\n (folded)', 'folded'));
    assert.equal((await storedMessages(server.store, 'bob@example.com')).length, 0);
  });

  it("accepts alice's own address, with any display name and any case", async () => {
    await send('alice@example.com', message('"Alice Liddell" <Alice@Example.COM>', 'own'));
    await send('alice@example.com', message('"ceo@example.com" <alice@example.com>', 'display name only'));
    await send('alice@example.com', message('alice@example.com', 'sender too', 'Sender: Alice <alice@example.com>\r\n'));
    assert.equal((await storedMessages(server.store, 'bob@example.com')).length, 3);
  });

  it('refuses someone else in MAIL FROM too (553 5.7.1)', async () => {
    await assert.rejects(send('alice@example.com', message('alice@example.com', 'envelope'), 'ceo@example.com'), (error: Error & { response?: string }) =>
      /^553 5\.7\.1 /.test(error.response ?? ''),
    );
  });

  it('lets a trusted sender use any address of its own domain, and no other', async () => {
    await send('boss@example.com', message('"CEO" <ceo@example.com>', 'trusted'), 'ceo@example.com');
    await assert.rejects(send('boss@example.com', message('ceo@other.example', 'other domain')), (error: Error & { response?: string }) => /^550 5\.7\.1 /.test(error.response ?? ''));
  });
});
