// Webmail API over a real socket: mailboxes, paging, message view with sanitised HTML,
// attachments, flags, move, delete.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { StoreError } from '../store/types.js';
import { rawMessage, WebClient } from './test-kit.js';

const HOSTILE_HTML = [
  '<html><head><style>body{background:url(https://tracker.test/bg.png)}</style><script>alert(1)</script></head><body>',
  '<p onclick="alert(2)">Hello <b>there</b></p>',
  '<img src="x" onerror="alert(3)"><img src="data:image/png;base64,iVBORw0KGgo=" alt="inline"><img src="data:text/html;base64,PHNjcmlwdD4=">',
  '<img src="https://tracker.test/pixel.gif" alt="pixel">',
  '<a href="javascript:alert(4)">click</a> <a href="https://example.org/page">site</a>',
  '<iframe src="https://evil.test/"></iframe><form action="https://evil.test/"><input name="p"></form>',
  '<svg><script>alert(5)</script></svg>',
  '<div style="color: red; background-image: url(https://tracker.test/x.png)">styled</div>',
  '</body></html>',
].join('\r\n');

function htmlMessage(subject: string): Buffer {
  return rawMessage([
    'From: Mallory <mallory@evil.test>',
    'To: fay@example.com',
    `Subject: ${subject}`,
    'Date: Tue, 24 Nov 2026 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/html; charset=utf-8',
    '',
    HOSTILE_HTML,
  ]);
}

function withAttachment(bytes: Buffer, filename: string): Buffer {
  return rawMessage([
    'From: gus@example.com',
    'To: fay@example.com',
    'Subject: =?UTF-8?Q?Bericht_f=C3=BCr_dich?=',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'see attached',
    '--b1',
    'Content-Type: application/octet-stream',
    `Content-Disposition: attachment; filename*=UTF-8''${encodeURIComponent(filename)}`,
    'Content-Transfer-Encoding: base64',
    '',
    ...(bytes.toString('base64').match(/.{1,76}/g) ?? []),
    '--b1--',
  ]);
}

describe('web mail', () => {
  let server: TestServer;
  let client: WebClient;
  let fay: number;

  before(async () => {
    server = await startTestServer();
    fay = await server.addUser('fay@example.com', 'fay-password');
    client = new WebClient(`http://127.0.0.1:${server.port('http')}`);
    await client.login('fay@example.com', 'fay-password');
  });
  after(async () => server.stop());

  it('needs a session', async () => {
    assert.equal((await new WebClient(client.base).get('/api/mailboxes')).status, 401);
  });

  it('lists mailboxes with counts', async () => {
    await server.store.deliver(rawMessage(['Subject: one', '', 'x']), [{ userId: fay }]);
    await server.store.deliver(rawMessage(['Subject: two', '', 'y']), [{ userId: fay, flags: ['\\Seen'] }]);
    const reply = await client.get('/api/mailboxes');
    assert.equal(reply.status, 200);
    const inbox = reply.body.mailboxes.find((m: { name: string }) => m.name === 'INBOX');
    assert.equal(inbox.messages, 2);
    assert.equal(inbox.unseen, 1);
    assert.ok(inbox.size > 0);
    assert.equal(reply.body.mailboxes.find((m: { name: string }) => m.name === 'Trash').specialUse, '\\Trash');
  });

  it('pages through a mailbox in either order without overlap, and searches it', async () => {
    const box = await server.store.createMailbox(fay, 'Lists/Paging');
    for (let i = 1; i <= 7; i++) await server.store.append(box.id, rawMessage([`Subject: page ${i}`, 'From: Lister <list@example.org>', '', `body ${i}`]), [], new Date(Date.UTC(2026, 0, i)));
    const path = `/api/mailboxes/${encodeURIComponent('Lists/Paging')}/messages`;
    const first = await client.get(`${path}?limit=3`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.total, 7);
    assert.deepEqual(first.body.messages.map((m: { subject: string }) => m.subject), ['page 7', 'page 6', 'page 5'], 'newest first by default');
    assert.deepEqual(first.body.messages[0].from, [{ name: 'Lister', address: 'list@example.org' }]);
    const last = await client.get(`${path}?limit=3&offset=6`);
    assert.deepEqual(last.body.messages.map((m: { subject: string }) => m.subject), ['page 1']);
    const oldest = await client.get(`${path}?limit=2&offset=1&sort=date`);
    assert.deepEqual(oldest.body.messages.map((m: { uid: number }) => m.uid), [2, 3]);
    const found = await client.get(`${path}?q=${encodeURIComponent('PAGE 3')}`);
    assert.deepEqual(found.body.messages.map((m: { subject: string }) => m.subject), ['page 3']);
    assert.equal(found.body.complete, true);
    assert.equal((await client.get(`${path}?q=lister&limit=2&offset=2`)).body.messages.length, 2, 'matches the sender name, paged');
    assert.equal((await client.get(`${path}?q=lister`)).body.total, 7);
    assert.equal((await client.get(`${path}?q=nothing-like-it`)).body.total, 0);
    assert.equal((await client.get(`${path}?limit=500`)).status, 400);
    assert.equal((await client.get(`${path}?sort=subject`)).status, 400);
    assert.equal((await client.get('/api/mailboxes/Nope/messages')).status, 404);
  });

  it('shows HTML mail sanitised: no scripts, handlers, frames, forms or remote images', async () => {
    const { copies } = await server.store.deliver(htmlMessage('hostile'), [{ userId: fay }]);
    const uid = copies[0]!.uid;
    const reply = await client.get(`/api/messages/INBOX/${uid}`);
    assert.equal(reply.status, 200);
    const html: string = reply.body.html;
    assert.equal(reply.body.subject, 'hostile');
    assert.deepEqual(reply.body.from, [{ name: 'Mallory', address: 'mallory@evil.test' }]);
    for (const bad of [/<script/i, /alert/, /onerror/i, /onclick/i, /javascript:/i, /<iframe/i, /<form/i, /<input/i, /tracker\.test/, /url\(/i]) {
      assert.doesNotMatch(html, bad, `${bad} survived: ${html}`);
    }
    assert.match(html, /<p>Hello <b>there<\/b><\/p>/);
    assert.match(html, /<a href="https:\/\/example.org\/page" target="_blank" rel="noopener noreferrer">site<\/a>/);
    assert.match(html, /<div style="color:red">styled<\/div>/);
    assert.match(html, /<img alt="pixel" \/>/, 'remote image kept without its source');
    assert.match(html, /<img src="data:image\/png;base64,iVBORw0KGgo=" alt="inline" \/>/, 'inline images stay');
    assert.doesNotMatch(html, /data:text|src="x"/, 'no relative or non-image sources');
    assert.match(html, /<style>body\{background:none\}<\/style>/, 'the style sheet stays, its remote url() does not');
    assert.equal(reply.body.remoteImages, 2, 'the pixel and the style sheet background');

    const allowed = await client.get(`/api/messages/INBOX/${uid}?images=1`);
    assert.match(allowed.body.html, /<img src="https:\/\/tracker.test\/pixel.gif" alt="pixel" \/>/);
    assert.doesNotMatch(allowed.body.html, /onerror|<script/i);
  });

  it('does not list an inline (cid:) image of the HTML again as an attachment', async () => {
    const raw = rawMessage([
      'From: a@example.org',
      'Subject: inline picture',
      'Content-Type: multipart/related; boundary=r',
      '',
      '--r',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<p>Look: <img src="cid:pic@x" alt="pic"></p>',
      '--r',
      'Content-Type: image/png',
      'Content-ID: <pic@x>',
      'Content-Transfer-Encoding: base64',
      '',
      'iVBORw0KGgo=',
      '--r--',
    ]);
    const { copies } = await server.store.deliver(raw, [{ userId: fay }]);
    const view = await client.get(`/api/messages/INBOX/${copies[0]!.uid}`);
    assert.match(view.body.html, /<img src="data:image\/png;base64,/);
    assert.equal(view.body.attachments.length, 1);
    assert.equal(view.body.attachments[0].embedded, true, 'shown in the text, so the page does not list it');
  });

  it('lists attachments and downloads them byte for byte', async () => {
    const bytes = randomBytes(70_000);
    const filename = 'Bericht für dich "final".bin';
    const { copies } = await server.store.deliver(withAttachment(bytes, filename), [{ userId: fay }]);
    const uid = copies[0]!.uid;
    const view = await client.get(`/api/messages/INBOX/${uid}`);
    assert.equal(view.body.subject, 'Bericht für dich');
    assert.equal(view.body.text.trim(), 'see attached');
    assert.deepEqual(view.body.attachments, [{ index: 0, filename, contentType: 'application/octet-stream', size: bytes.length, inline: false, embedded: false }]);

    const response = await fetch(`${client.base}/api/messages/INBOX/${uid}/attachments/0`, { headers: { cookie: client.cookie } });
    assert.equal(response.status, 200);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);
    assert.equal(response.headers.get('content-disposition'), `attachment; filename="Bericht f_r dich _final_.bin"; filename*=UTF-8''Bericht%20f%C3%BCr%20dich%20%22final%22.bin`);
    assert.equal((await client.get(`/api/messages/INBOX/${uid}/attachments/1`)).status, 404);
    assert.equal((await client.get('/api/messages/INBOX/9999')).status, 404);
  });

  it('sets and clears flags', async () => {
    const { copies } = await server.store.deliver(rawMessage(['Subject: flags', '', 'x']), [{ userId: fay }]);
    const path = `/api/messages/INBOX/${copies[0]!.uid}/flags`;
    assert.deepEqual((await client.post(path, { add: ['\\Seen', '\\Flagged'] })).body, { flags: ['\\Seen', '\\Flagged'] });
    assert.deepEqual((await client.post(path, { remove: ['\\Flagged'] })).body, { flags: ['\\Seen'] });
    assert.equal((await client.post(path, { add: ['bad flag'] })).status, 400);
    assert.equal((await client.post(path, { add: ['\\Seen'] }, { csrf: false })).status, 403);
  });

  it('moves a message, deletes it to Trash, then for good from Trash', async () => {
    const { copies } = await server.store.deliver(rawMessage(['Subject: travels', '', 'x']), [{ userId: fay }]);
    const moved = await client.post(`/api/messages/INBOX/${copies[0]!.uid}/move`, { to: 'Archive' });
    assert.equal(moved.status, 200);
    assert.equal(moved.body.mailbox, 'Archive');
    assert.equal((await client.get(`/api/messages/INBOX/${copies[0]!.uid}`)).status, 404);
    assert.equal((await client.get(`/api/messages/Archive/${moved.body.uid}`)).body.subject, 'travels');
    assert.equal((await client.post(`/api/messages/Archive/${moved.body.uid}/move`, { to: 'Nowhere' })).status, 404);

    const trashed = await client.request('DELETE', `/api/messages/Archive/${moved.body.uid}`);
    assert.equal(trashed.status, 200);
    assert.equal(trashed.body.mailbox, 'Trash');
    const trash = (await server.store.getMailbox(fay, 'Trash'))!;
    assert.equal((await server.store.mailboxStatus(trash.id)).messages, 1);
    assert.equal((await client.request('DELETE', `/api/messages/Trash/${trashed.body.uid}`, undefined, { csrf: false })).status, 403);
    const gone = await client.request('DELETE', `/api/messages/Trash/${trashed.body.uid}`);
    assert.deepEqual(gone.body, { deleted: true });
    assert.equal((await server.store.mailboxStatus(trash.id)).messages, 0);
  });

  it('creates, renames and deletes folders, but not INBOX or special ones', async () => {
    const created = await client.post('/api/mailboxes', { name: 'Projects/Quill' });
    assert.equal(created.status, 201);
    assert.deepEqual(created.body, { name: 'Projects/Quill' });
    assert.equal((await client.post('/api/mailboxes', { name: 'Projects/Quill' })).status, 409);
    for (const bad of ['', '/lead', 'trail/', 'a//b', 'wild*', 'per%cent', 'tab\there', '..', 'a/../../b', '.', 'a/./b']) {
      assert.equal((await client.post('/api/mailboxes', { name: bad })).status, 400, JSON.stringify(bad));
    }
    assert.equal((await client.post('/api/mailboxes', { name: 'x' }, { csrf: false })).status, 403);
    await server.store.deliver(rawMessage(['Subject: filed', '', 'x']), [{ userId: fay, mailbox: 'Projects/Quill' }]);
    const renamed = await client.post(`/api/mailboxes/${encodeURIComponent('Projects/Quill')}/rename`, { to: 'Projects/Quillmail' });
    assert.deepEqual(renamed.body, { name: 'Projects/Quillmail' });
    const listed = await client.get(`/api/mailboxes/${encodeURIComponent('Projects/Quillmail')}/messages`);
    assert.deepEqual(listed.body.messages.map((m: { subject: string }) => m.subject), ['filed']);
    assert.equal((await client.request('DELETE', `/api/mailboxes/${encodeURIComponent('Projects/Quillmail')}`)).status, 200);
    assert.equal(await server.store.getMailbox(fay, 'Projects/Quillmail'), undefined);
    assert.equal((await client.request('DELETE', '/api/mailboxes/INBOX')).status, 400);
    assert.equal((await client.request('DELETE', '/api/mailboxes/Trash')).status, 400);
    assert.equal((await client.request('DELETE', '/api/mailboxes/Nope')).status, 404);
  });

  it('answers 503 while the store is unavailable', async () => {
    const listMailboxes = server.store.listMailboxes.bind(server.store);
    server.store.listMailboxes = async () => {
      throw new StoreError('unavailable', 'connection refused');
    };
    try {
      const reply = await client.get('/api/mailboxes');
      assert.equal(reply.status, 503);
      assert.deepEqual(reply.body, { error: 'store unavailable, try again later' });
    } finally {
      server.store.listMailboxes = listMailboxes;
    }
  });
});
