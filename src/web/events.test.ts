// Live updates: a page's event stream hears of mail delivered to its user (and only its user)
// and of changes made over IMAP.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { rawMessage, WebClient } from './test-kit.js';

/** Reads an event stream, handing out whole events (blocks separated by a blank line). */
async function* events(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      yield buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
    }
  }
}

describe('web events', () => {
  let server: TestServer;
  let client: WebClient;
  let kim: number;
  let lou: number;

  before(async () => {
    server = await startTestServer();
    kim = await server.addUser('kim@example.com', 'kim-password');
    lou = await server.addUser('lou@example.com', 'lou-password');
    client = new WebClient(`http://127.0.0.1:${server.port('http')}`);
    await client.login('kim@example.com', 'kim-password');
  });
  after(async () => server.stop());

  it('needs a session', async () => {
    assert.equal((await fetch(`${client.base}/api/events`)).status, 401);
  });

  it('tells the page of a new message as it is delivered', async () => {
    const controller = new AbortController();
    const response = await fetch(`${client.base}/api/events`, { headers: { cookie: client.cookie }, signal: controller.signal });
    try {
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
      const stream = events(response.body!);
      assert.match((await stream.next()).value ?? '', /: subscribed/);
      // Someone else's mail says nothing to this page; then kim's arrives.
      await server.store.deliver(rawMessage(['Subject: for lou', '', 'x']), [{ userId: lou }]);
      await server.store.deliver(rawMessage(['Subject: for kim', '', 'x']), [{ userId: kim }]);
      const event = (await stream.next()).value;
      assert.equal(event, 'event: append\ndata: {"kind":"append","mailbox":"INBOX"}');
      // A change to the mailbox list names no mailbox; flags name theirs.
      await server.store.createMailbox(kim, 'Projects');
      assert.equal((await stream.next()).value, 'event: mailbox\ndata: {"kind":"mailbox","mailbox":null}');
      const inbox = (await server.store.getMailbox(kim, 'INBOX'))!;
      await server.store.setFlags(inbox.id, [1], 'add', ['\\Seen']);
      assert.equal((await stream.next()).value, 'event: flags\ndata: {"kind":"flags","mailbox":"INBOX"}');
    } finally {
      controller.abort();
    }
  });

  it('tells the page of changes made over IMAP', async () => {
    const controller = new AbortController();
    const response = await fetch(`${client.base}/api/events`, { headers: { cookie: client.cookie }, signal: controller.signal });
    const imap = new ImapFlow({ host: '127.0.0.1', port: server.port('imap'), secure: false, auth: { user: 'kim@example.com', pass: 'kim-password' }, logger: false, tls: { rejectUnauthorized: false } });
    try {
      const stream = events(response.body!);
      await stream.next(); // subscribed
      await imap.connect();
      await imap.mailboxOpen('INBOX');
      await imap.messageFlagsAdd('1', ['\\Flagged'], { uid: true });
      assert.equal((await stream.next()).value, 'event: flags\ndata: {"kind":"flags","mailbox":"INBOX"}');
      await imap.mailboxCreate('From IMAP');
      assert.equal((await stream.next()).value, 'event: mailbox\ndata: {"kind":"mailbox","mailbox":null}');
    } finally {
      await imap.logout().catch(() => undefined);
      controller.abort();
    }
  });

  it('ends the stream when the server stops', async () => {
    const other = await startTestServer();
    await other.addUser('kim@example.com', 'kim-password');
    const page = new WebClient(`http://127.0.0.1:${other.port('http')}`);
    await page.login('kim@example.com', 'kim-password');
    const response = await fetch(`${page.base}/api/events`, { headers: { cookie: page.cookie } });
    const stream = events(response.body!);
    await stream.next();
    await other.stop();
    assert.equal((await stream.next()).done, true);
  });
});
