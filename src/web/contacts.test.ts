// Address suggestions from mail already exchanged, and the display name kept on the server
// (issue 21), over the HTTP API.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { rawMessage, WebClient } from './test-kit.js';

describe('web contacts and settings', () => {
  let server: TestServer;
  let alice: WebClient;
  let aliceId: number;
  let base: string;

  before(async () => {
    server = await startTestServer({ overrides: { outbound: { enabled: false } } });
    aliceId = await server.addUser('alice@example.com', 'alice-password');
    await server.addUser('bob@example.com', 'bob-password');
    base = `http://127.0.0.1:${server.port('http')}`;
    alice = new WebClient(base);
    await alice.login('alice@example.com', 'alice-password');
  });
  after(async () => server.stop());

  const suggest = async (q: string, limit?: number) => {
    const reply = await alice.get(`/api/contacts?q=${encodeURIComponent(q)}${limit ? `&limit=${limit}` : ''}`);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    return (reply.body.contacts as { name: string; address: string }[]).map((c) => (c.name ? `${c.name} <${c.address}>` : c.address));
  };

  it('suggests people mailed and heard from, most often first, and sees new mail at once', async () => {
    assert.deepEqual(await suggest('bo'), [], 'nothing exchanged yet');
    const bob = new WebClient(base);
    await bob.login('bob@example.com', 'bob-password');
    assert.equal((await bob.post('/api/send', { to: ['alice@example.com'], subject: 'Hi', text: 'x', fromName: 'Bob Builder' })).status, 201);
    assert.deepEqual(await suggest('bo'), ['Bob Builder <bob@example.com>'], 'the new message counts without waiting');
    assert.deepEqual(await suggest('BUILD'), ['Bob Builder <bob@example.com>'], 'any word of the name, any case');
    assert.deepEqual(await suggest('ali'), [], 'never the user herself');

    // Sent mail (To and Cc) counts twice as much as received: Boris, written to twice, comes first.
    for (const i of [1, 2]) {
      const sent = await alice.post('/api/send', { to: ['Boris Badenov <boris@example.net>'], cc: ['"Bond, Jim" <bond@example.org>'], subject: `s${i}`, text: 'x' });
      assert.equal(sent.status, 201);
    }
    await server.store.deliver(rawMessage(['From: Bo Other <bo@example.org>', 'To: alice@example.com', 'Subject: z', '', 'z']), [{ userId: aliceId }]);
    assert.deepEqual(await suggest('bo'), ['Boris Badenov <boris@example.net>', 'Bond, Jim <bond@example.org>', 'Bo Other <bo@example.org>', 'Bob Builder <bob@example.com>']);
    assert.deepEqual(await suggest('bo', 2), ['Boris Badenov <boris@example.net>', 'Bond, Jim <bond@example.org>'], 'bounded');
    assert.deepEqual(await suggest('example.org'), ['Bond, Jim <bond@example.org>', 'Bo Other <bo@example.org>'], 'the domain too');

    assert.equal((await alice.get('/api/contacts?q=')).status, 400, 'a query is required');
    assert.equal((await alice.get(`/api/contacts?q=bo&limit=1000`)).status, 400, 'at most 20');
    assert.equal((await new WebClient(base).get('/api/contacts?q=bo')).status, 401, 'only for the logged in');
  });

  it('keeps the display name on the server and sends with it', async () => {
    assert.deepEqual((await alice.get('/api/settings')).body, { displayName: '' });
    const put = await alice.request('PUT', '/api/settings', { displayName: '  Alice Liddell ' });
    assert.equal(put.status, 200);
    assert.deepEqual(put.body, { displayName: 'Alice Liddell' });
    assert.equal((await alice.request('PUT', '/api/settings', { displayName: 'Evil <x@y>' })).status, 400);
    assert.equal((await alice.request('PUT', '/api/settings', { displayName: 'x' }, { csrf: false })).status, 403, 'CSRF token required');

    // Another session (a new browser) sees it, and mail it sends carries it.
    const other = new WebClient(base);
    await other.login('alice@example.com', 'alice-password');
    assert.equal((await other.get('/api/me')).body.user.displayName, 'Alice Liddell');
    assert.equal((await other.post('/api/send', { to: ['bob@example.com'], subject: 'Named by the server', text: 'x' })).status, 201);
    const bob = (await server.store.getUser('bob@example.com'))!;
    const inbox = (await server.store.getMailbox(bob.id, 'INBOX'))!;
    const metas = await server.store.listMessages(inbox.id);
    const parsed = await simpleParser((await server.store.getBlob(metas.at(-1)!.blobHash))!);
    assert.equal(parsed.subject, 'Named by the server');
    assert.deepEqual(parsed.from?.value.map((a) => [a.name, a.address]), [['Alice Liddell', 'alice@example.com']]);
  });
});
