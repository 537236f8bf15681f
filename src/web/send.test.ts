// Sending from the browser: local delivery, Sent copy, Bcc kept out of the header, foreign
// recipients queued, bad recipients refused.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { rawMessage, WebClient } from './test-kit.js';

describe('web send', () => {
  let server: TestServer;
  let client: WebClient;
  let hal: number;
  let ida: number;
  let jon: number;

  before(async () => {
    // No worker: queued entries stay put where the test can see them.
    server = await startTestServer({ overrides: { outbound: { enabled: false } } });
    hal = await server.addUser('hal@example.com', 'hal-password');
    ida = await server.addUser('ida@example.com', 'ida-password');
    jon = await server.addUser('jon@example.com', 'jon-password');
    client = new WebClient(`http://127.0.0.1:${server.port('http')}`);
    await client.login('hal@example.com', 'hal-password');
  });
  after(async () => server.stop());

  async function onlyMessage(userId: number, mailbox: string): Promise<{ raw: string; flags: string[] }> {
    const box = (await server.store.getMailbox(userId, mailbox))!;
    const metas = await server.store.listMessages(box.id);
    assert.equal(metas.length, 1, `${mailbox} of user ${userId}`);
    return { raw: (await server.store.getBlob(metas[0]!.blobHash))!.toString('utf8'), flags: metas[0]!.flags };
  }

  it('delivers to local users, keeps a Sent copy, and leaves Bcc out of the header', async () => {
    const attachment = Buffer.from([0, 1, 2, 254, 255]);
    const reply = await client.post('/api/send', {
      to: ['ida@example.com'],
      bcc: ['jon@example.com'],
      subject: 'Grüße',
      text: 'hello from the web',
      attachments: [{ filename: 'data.bin', content: attachment.toString('base64') }],
    });
    assert.equal(reply.status, 201, JSON.stringify(reply.body));
    assert.equal(reply.body.queued, 0);
    assert.match(reply.body.messageId, /^<.+@example\.com>$/);

    const inbox = await onlyMessage(ida, 'INBOX');
    assert.match(inbox.raw, /^From: hal@example\.com\r$/m);
    assert.match(inbox.raw, /^To: ida@example\.com\r$/m);
    assert.match(inbox.raw, /^Subject: =\?UTF-8\?/m);
    assert.match(inbox.raw, /^Date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000\r$/m);
    assert.ok(inbox.raw.includes(`Message-ID: ${reply.body.messageId}`));
    assert.doesNotMatch(inbox.raw, /jon@example\.com|^Bcc:/im, 'Bcc is not in the message');
    assert.deepEqual(inbox.flags, []);
    const bcc = await onlyMessage(jon, 'INBOX');
    assert.equal(bcc.raw, inbox.raw, 'the Bcc recipient got the same message');
    const sent = await onlyMessage(hal, 'Sent');
    assert.equal(sent.raw, inbox.raw);
    assert.deepEqual(sent.flags, ['\\Seen']);

    // And the recipient reads it through the API, attachment intact.
    const reader = new WebClient(client.base);
    await reader.login('ida@example.com', 'ida-password');
    const list = await reader.get('/api/mailboxes/INBOX/messages');
    assert.equal(list.body.messages[0].subject, 'Grüße');
    const view = await reader.get(`/api/messages/INBOX/${list.body.messages[0].uid}`);
    assert.equal(view.body.text.trim(), 'hello from the web');
    const download = await fetch(`${reader.base}/api/messages/INBOX/${view.body.uid}/attachments/0`, { headers: { cookie: reader.cookie } });
    assert.deepEqual(Buffer.from(await download.arrayBuffer()), attachment);
  });

  it('queues foreign recipients for the outbound worker', async () => {
    const reply = await client.post('/api/send', { to: ['someone@far.test', 'other@far.test'], cc: ['ida@example.com'], subject: 'out', text: 'x' });
    assert.equal(reply.status, 201, JSON.stringify(reply.body));
    assert.equal(reply.body.queued, 2);
    const queued = (await server.store.listOutbound()).filter((entry) => entry.domain === 'far.test');
    assert.deepEqual(queued.map((entry) => [entry.sender, entry.recipient]).sort(), [
      ['hal@example.com', 'other@far.test'],
      ['hal@example.com', 'someone@far.test'],
    ]);
  });

  it('refuses unknown local users, no recipients, bad addresses and a missing CSRF token', async () => {
    const unknown = await client.post('/api/send', { to: ['ghost@example.com'], subject: 's', text: 'x' });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.error, /ghost@example\.com: No such user/);
    assert.equal((await client.post('/api/send', { subject: 's', text: 'x' })).status, 400);
    assert.equal((await client.post('/api/send', { to: ['not an address'], subject: 's' })).status, 400);
    assert.equal((await client.post('/api/send', { to: ['ida@example.com'], subject: 's', attachments: [{ filename: 'f', path: '/etc/passwd', content: '' }] })).status, 400);
    assert.equal((await client.post('/api/send', { to: ['ida@example.com'], subject: 's' }, { csrf: false })).status, 403);
    const sentBox = (await server.store.getMailbox(hal, 'Sent'))!;
    assert.equal((await server.store.mailboxStatus(sentBox.id)).messages, 2, 'nothing stored for refused sends');
  });

  it('forwards a message with its attachments', async () => {
    const kit = await server.addUser('kit@example.com', 'kit-password');
    const bytes = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256));
    const original = rawMessage([
      'From: ida@example.com',
      'To: hal@example.com',
      'Subject: the numbers',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain',
      '',
      'numbers attached',
      '--b',
      'Content-Type: application/octet-stream; name="numbers.bin"',
      'Content-Disposition: attachment; filename="numbers.bin"',
      'Content-Transfer-Encoding: base64',
      '',
      bytes.toString('base64'),
      '--b--',
    ]);
    const { copies } = await server.store.deliver(original, [{ userId: hal }]);
    const reply = await client.post('/api/send', { to: ['kit@example.com'], subject: 'Fwd: the numbers', text: 'see below', forward: { mailbox: 'INBOX', uid: copies[0]!.uid } });
    assert.equal(reply.status, 201, JSON.stringify(reply.body));
    const parsed = await simpleParser(Buffer.from((await onlyMessage(kit, 'INBOX')).raw));
    assert.equal(parsed.text?.trim(), 'see below');
    assert.equal(parsed.attachments.length, 1);
    assert.equal(parsed.attachments[0]!.filename, 'numbers.bin');
    assert.deepEqual(parsed.attachments[0]!.content, bytes);
    assert.equal((await client.post('/api/send', { to: ['kit@example.com'], subject: 'x', forward: { mailbox: 'INBOX', uid: 999 } })).status, 404);
  });

  it('keeps drafts with their Bcc, replaces them, and drops the draft once sent', async () => {
    const drafts = (await server.store.getMailbox(hal, 'Drafts'))!;
    const draft = { to: ['ida@example.com'], bcc: ['jon@example.com'], subject: 'draft one', text: 'not yet' };
    const first = await client.post('/api/drafts', draft);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const saved = await onlyMessage(hal, 'Drafts');
    assert.match(saved.raw, /^Bcc: jon@example\.com\r$/m, 'a draft keeps its Bcc');
    assert.deepEqual(saved.flags.sort(), ['\\Draft', '\\Seen']);
    const second = await client.post('/api/drafts', { ...draft, subject: 'draft two', replaces: first.body.uid });
    assert.match((await onlyMessage(hal, 'Drafts')).raw, /^Subject: draft two\r$/m);
    const sent = await client.post('/api/send', { ...draft, subject: 'final', draft: second.body.uid });
    assert.equal(sent.status, 201);
    assert.equal((await server.store.mailboxStatus(drafts.id)).messages, 0);
  });
});
