// Drive API over a real socket: streamed and resumed uploads, byte-exact downloads with
// ranges, folders, rename, move, delete, quota, and what another user cannot reach.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { WebClient } from './test-kit.js';

const MiB = 1024 * 1024;

interface RawReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP request with a session, its body written in 64 KiB pieces as a client streams a file. */
function send(client: WebClient, method: string, path: string, options: { body?: Buffer; headers?: Record<string, string>; csrf?: boolean } = {}): Promise<RawReply> {
  const url = new URL(client.base + path);
  const headers: Record<string, string> = { cookie: client.cookie, ...options.headers };
  if (options.csrf !== false && method !== 'GET' && method !== 'HEAD') headers['x-csrf-token'] = client.csrfToken;
  if (options.body) headers['content-length'] = String(options.body.length);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers }, (response) => {
      const parts: Buffer[] = [];
      response.on('data', (part: Buffer) => parts.push(part));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(parts) }));
      response.on('error', reject);
    });
    request.on('error', reject);
    const body = options.body;
    if (!body) {
      request.end();
      return;
    }
    let at = 0;
    const pump = () => {
      while (at < body.length) {
        const piece = body.subarray(at, at + 64 * 1024);
        at += piece.length;
        if (!request.write(piece)) return void request.once('drain', pump);
      }
      request.end();
    };
    pump();
  });
}

const json = (reply: RawReply) => JSON.parse(reply.body.toString('utf8'));

async function upload(client: WebClient, bytes: Buffer, name: string, parent: number | null = null, contentType?: string) {
  const started = await client.post('/api/drive/uploads', { parent, name, size: bytes.length, ...(contentType ? { contentType } : {}) });
  assert.equal(started.status, 201, JSON.stringify(started.body));
  const put = await send(client, 'PUT', `/api/drive/uploads/${started.body.id}`, {
    body: bytes,
    headers: { 'content-type': 'application/octet-stream', 'content-range': `bytes 0-${bytes.length - 1}/${bytes.length}` },
  });
  assert.equal(put.status, 200, put.body.toString());
  const done = json(put);
  assert.equal(done.complete, true);
  return done.file as { id: number; name: string; size: number };
}

describe('web drive', () => {
  let server: TestServer;
  let fay: WebClient;
  let gus: WebClient;

  before(async () => {
    server = await startTestServer();
    await server.addUser('fay@example.com', 'fay-password');
    await server.addUser('gus@example.com', 'gus-password', { quotaBytes: 3 * MiB });
    fay = new WebClient(`http://127.0.0.1:${server.port('http')}`);
    gus = new WebClient(fay.base);
    await fay.login('fay@example.com', 'fay-password');
    await gus.login('gus@example.com', 'gus-password');
  });
  after(async () => server.stop());

  let big: { id: number; size: number };
  let bigBytes: Buffer;

  it('streams a few MB up in one PUT and downloads them byte-exact', async () => {
    bigBytes = randomBytes(5 * MiB + 12345);
    big = await upload(fay, bigBytes, 'big.bin');
    assert.equal(big.size, bigBytes.length);
    const list = await fay.get('/api/drive');
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.entries.map((e: { name: string; size: number; kind: string }) => [e.kind, e.name, e.size]),
      [['file', 'big.bin', bigBytes.length]],
    );
    assert.equal(list.body.usedBytes, bigBytes.length);
    const down = await send(fay, 'GET', `/api/drive/files/${big.id}/content`);
    assert.equal(down.status, 200);
    assert.equal(down.body.length, bigBytes.length);
    assert.ok(down.body.equals(bigBytes), 'byte-exact');
    assert.equal(down.headers['content-length'], String(bigBytes.length));
    assert.equal(down.headers['content-type'], 'application/octet-stream');
    assert.equal(down.headers['x-content-type-options'], 'nosniff');
    assert.equal(down.headers['accept-ranges'], 'bytes');
    assert.match(down.headers['content-disposition']!, /^attachment; filename="big\.bin"/);
    assert.ok(down.headers.etag);
  });

  it('answers byte ranges: first bytes, suffix, across a chunk boundary, 416 past the end', async () => {
    const path = `/api/drive/files/${big.id}/content`;
    const size = bigBytes.length;
    const first = await send(fay, 'GET', path, { headers: { range: 'bytes=0-99' } });
    assert.equal(first.status, 206);
    assert.equal(first.headers['content-range'], `bytes 0-99/${size}`);
    assert.ok(first.body.equals(bigBytes.subarray(0, 100)));
    const suffix = await send(fay, 'GET', path, { headers: { range: 'bytes=-500' } });
    assert.equal(suffix.status, 206);
    assert.equal(suffix.headers['content-range'], `bytes ${size - 500}-${size - 1}/${size}`);
    assert.ok(suffix.body.equals(bigBytes.subarray(size - 500)));
    const middle = await send(fay, 'GET', path, { headers: { range: `bytes=${MiB - 10}-${2 * MiB + 9}` } });
    assert.equal(middle.status, 206);
    assert.equal(middle.body.length, MiB + 20);
    assert.ok(middle.body.equals(bigBytes.subarray(MiB - 10, 2 * MiB + 10)), 'spans three chunks');
    const open = await send(fay, 'GET', path, { headers: { range: `bytes=${size - 3}-` } });
    assert.ok(open.body.equals(bigBytes.subarray(size - 3)));
    const past = await send(fay, 'GET', path, { headers: { range: `bytes=${size}-` } });
    assert.equal(past.status, 416);
    assert.equal(past.headers['content-range'], `bytes */${size}`);
    const several = await send(fay, 'GET', path, { headers: { range: 'bytes=0-1,5-6' } });
    assert.equal(several.status, 200, 'several ranges: the whole file');
    assert.equal(several.body.length, size);
    const stale = await send(fay, 'GET', path, { headers: { range: 'bytes=0-1', 'if-range': '"other"' } });
    assert.equal(stale.status, 200, 'If-Range that does not match: the whole file');
    const same = await send(fay, 'GET', path, { headers: { range: 'bytes=0-1', 'if-range': String(first.headers.etag) } });
    assert.equal(same.status, 206);
    const head = await send(fay, 'HEAD', path);
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(size));
  });

  it('resumes an upload after the connection drops mid-way', async () => {
    const bytes = randomBytes(4 * MiB + 777);
    const started = await fay.post('/api/drive/uploads', { parent: null, name: 'resumed.bin', size: bytes.length });
    const id = started.body.id as string;
    const url = new URL(fay.base);
    // Half the file, then the connection is cut without finishing the request.
    const socketGone = new Promise<void>((resolve) => {
      const request = http.request({
        host: url.hostname,
        port: url.port,
        path: `/api/drive/uploads/${id}`,
        method: 'PUT',
        headers: {
          cookie: fay.cookie,
          'x-csrf-token': fay.csrfToken,
          'content-type': 'application/octet-stream',
          'content-range': `bytes 0-${bytes.length - 1}/${bytes.length}`,
          'content-length': String(bytes.length),
        },
      });
      request.on('error', () => resolve());
      request.on('close', () => resolve());
      request.write(bytes.subarray(0, 2 * MiB + 300_000), async () => {
        // Wait until the server has committed some of it, then drop the connection.
        for (let i = 0; i < 200; i++) {
          const state = await send(fay, 'HEAD', `/api/drive/uploads/${id}`);
          if (Number(state.headers['upload-offset']) >= MiB) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        request.destroy();
      });
    });
    await socketGone;
    let offset = -1;
    for (let attempt = 0; attempt < 20; attempt++) {
      const state = await send(fay, 'HEAD', `/api/drive/uploads/${id}`);
      assert.equal(state.status, 200);
      offset = Number(state.headers['upload-offset']);
      assert.ok(offset >= MiB && offset < bytes.length, `kept what was committed: ${offset}`);
      let put: RawReply;
      try {
        put = await send(fay, 'PUT', `/api/drive/uploads/${id}`, {
          body: bytes.subarray(offset),
          headers: { 'content-type': 'application/octet-stream', 'content-range': `bytes ${offset}-${bytes.length - 1}/${bytes.length}` },
        });
      } catch (error) {
        // The server was still finishing the dropped request and refused this one at the wrong
        // offset: it answers 409 and closes without reading the body, so a client still writing
        // may see the connection reset instead of the answer. It asks again, as the app does.
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ECONNRESET' || code === 'EPIPE') continue;
        throw error;
      }
      if (put.status === 409) continue; // the server was still finishing the dropped request
      assert.equal(put.status, 200, put.body.toString());
      const done = json(put);
      assert.equal(done.complete, true);
      const down = await send(fay, 'GET', `/api/drive/files/${done.file.id}/content`);
      assert.ok(down.body.equals(bytes), 'byte-exact after the resume');
      assert.equal((await send(fay, 'HEAD', `/api/drive/uploads/${id}`)).status, 404, 'the upload is over');
      await fay.request('DELETE', `/api/drive/nodes/${done.file.id}`);
      return;
    }
    assert.fail('the upload never resumed');
  });

  it('refuses an upload over the quota before storing its bytes', async () => {
    const before = (await gus.get('/api/drive')).body.usedBytes;
    const refused = await gus.post('/api/drive/uploads', { parent: null, name: 'huge.bin', size: 4 * MiB });
    assert.equal(refused.status, 507);
    assert.match(refused.body.error, /quota/);
    assert.equal((await gus.get('/api/drive')).body.usedBytes, before);
    // Mail and drive share it: a file that fits, then one more that would not.
    await upload(gus, randomBytes(2 * MiB), 'fits.bin');
    const second = await gus.post('/api/drive/uploads', { parent: null, name: 'second.bin', size: 2 * MiB });
    assert.equal(second.status, 507);
  });

  it('renames, moves and deletes; deleting a folder frees its bytes', async () => {
    const docs = await fay.post('/api/drive/folders', { parent: null, name: 'Docs' });
    assert.equal(docs.status, 201);
    const inner = await fay.post('/api/drive/folders', { parent: docs.body.id, name: 'Inner' });
    assert.equal((await fay.post('/api/drive/folders', { parent: null, name: 'Docs' })).status, 409);
    const file = await upload(fay, Buffer.from('hello drive\n'), 'note.txt', null, 'text/plain');
    const renamed = await fay.request('PATCH', `/api/drive/nodes/${file.id}`, { name: 'hello.txt', parent: inner.body.id });
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
    assert.equal(renamed.body.name, 'hello.txt');
    const listing = await fay.get(`/api/drive?folder=${inner.body.id}`);
    assert.deepEqual(listing.body.path.map((p: { name: string }) => p.name), ['Docs', 'Inner']);
    assert.deepEqual(listing.body.entries.map((e: { name: string }) => e.name), ['hello.txt']);
    assert.equal((await fay.request('PATCH', `/api/drive/nodes/${docs.body.id}`, { parent: inner.body.id })).status, 400, 'not into itself');
    const text = await send(fay, 'GET', `/api/drive/files/${file.id}/content`);
    assert.equal(text.headers['content-type'], 'text/plain');
    assert.equal(text.body.toString(), 'hello drive\n');
    const moveBig = await fay.request('PATCH', `/api/drive/nodes/${big.id}`, { parent: docs.body.id });
    assert.equal(moveBig.body.parent, docs.body.id);
    const usedBefore = (await fay.get('/api/drive')).body.usedBytes;
    const deleted = await fay.request('DELETE', `/api/drive/nodes/${docs.body.id}`);
    assert.equal(deleted.status, 200);
    assert.equal(deleted.body.freedBytes, bigBytes.length + 12);
    const after = await fay.get('/api/drive');
    assert.equal(after.body.usedBytes, usedBefore - bigBytes.length - 12);
    assert.deepEqual(after.body.entries, []);
    assert.equal((await send(fay, 'GET', `/api/drive/files/${file.id}/content`)).status, 404);
    assert.equal((await fay.get(`/api/drive?folder=${inner.body.id}`)).status, 404);
  });

  it("gives another user 404 for someone else's file, folder and upload", async () => {
    const file = await upload(fay, Buffer.from('private'), 'private.txt');
    const folder = await fay.post('/api/drive/folders', { parent: null, name: 'Private' });
    const pending = await fay.post('/api/drive/uploads', { parent: null, name: 'pending.bin', size: 10 });
    assert.equal((await send(gus, 'GET', `/api/drive/files/${file.id}/content`)).status, 404);
    assert.equal((await gus.get(`/api/drive/nodes/${file.id}`)).status, 404);
    assert.equal((await gus.request('PATCH', `/api/drive/nodes/${file.id}`, { name: 'mine.txt' })).status, 404);
    assert.equal((await gus.request('DELETE', `/api/drive/nodes/${file.id}`)).status, 404);
    assert.equal((await gus.get(`/api/drive?folder=${folder.body.id}`)).status, 404);
    assert.equal((await gus.post('/api/drive/folders', { parent: folder.body.id, name: 'x' })).status, 404);
    assert.equal((await gus.get(`/api/drive/uploads/${pending.body.id}`)).status, 404);
    const put = await send(gus, 'PUT', `/api/drive/uploads/${pending.body.id}`, { body: Buffer.alloc(10), headers: { 'content-type': 'application/octet-stream', 'content-range': 'bytes 0-9/10' } });
    assert.equal(put.status, 404);
    assert.equal((await send(fay, 'GET', `/api/drive/files/${file.id}/content`)).body.toString(), 'private');
  });

  it('refuses bad names (400), a missing CSRF token (403) and bodies past their range', async () => {
    for (const name of ['', 'a/b', '..', 'x'.repeat(300), 'new\nline']) {
      const reply = await fay.post('/api/drive/folders', { parent: null, name });
      assert.equal(reply.status, 400, `${JSON.stringify(name)}: ${JSON.stringify(reply.body)}`);
    }
    assert.equal((await fay.post('/api/drive/uploads', { parent: null, name: 'a/b', size: 1 })).status, 400);
    assert.equal((await fay.post('/api/drive/folders', { parent: null, name: 'ok' }, { csrf: false })).status, 403);
    const started = await fay.post('/api/drive/uploads', { parent: null, name: 'csrf.bin', size: 4 });
    const headers = { 'content-type': 'application/octet-stream', 'content-range': 'bytes 0-3/4' };
    assert.equal((await send(fay, 'PUT', `/api/drive/uploads/${started.body.id}`, { body: Buffer.from('abcd'), headers, csrf: false })).status, 403);
    const long = await send(fay, 'PUT', `/api/drive/uploads/${started.body.id}`, { body: Buffer.from('abcdef'), headers: { ...headers, 'content-range': 'bytes 0-5/6' } });
    assert.equal(long.status, 400, 'a range that does not match the declared size');
    const wrongStart = await send(fay, 'PUT', `/api/drive/uploads/${started.body.id}`, { body: Buffer.from('cd'), headers: { ...headers, 'content-range': 'bytes 2-3/4' } });
    assert.equal(wrongStart.status, 409);
    assert.equal(json(wrongStart).offset, 0);
    const openApi = await fay.get('/api/openapi.json');
    assert.ok(openApi.body.paths['/drive/uploads/{id}']?.put, 'the drive is in the OpenAPI document');
    const ok = await send(fay, 'PUT', `/api/drive/uploads/${started.body.id}?offset=0`, { body: Buffer.from('abcd'), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(json(ok).complete, true);
  });

  it('never serves a file as a page: HTML and SVG go out as attachments of type octet-stream', async () => {
    const html = await upload(fay, Buffer.from('<script>alert(1)</script>'), 'page "x" ünï.html', null, 'text/html');
    const down = await send(fay, 'GET', `/api/drive/files/${html.id}/content`);
    assert.equal(down.headers['content-type'], 'application/octet-stream');
    assert.equal(down.headers['content-disposition'], `attachment; filename="page _x_ _n_.html"; filename*=UTF-8''page%20%22x%22%20%C3%BCn%C3%AF.html`);
    assert.equal(down.headers['x-content-type-options'], 'nosniff');
    assert.match(String(down.headers['content-security-policy']), /sandbox/);
    const empty = await fay.post('/api/drive/uploads', { parent: null, name: 'empty.txt', size: 0 });
    assert.equal(empty.body.file.size, 0);
    const none = await send(fay, 'GET', `/api/drive/files/${empty.body.file.id}/content`);
    assert.equal(none.status, 200);
    assert.equal(none.body.length, 0);
  });
});
