// The admin API over a real socket: who may use it (every route, enumerated from the running
// app), users, quota, draining and stopping nodes, the queue, raw views and the audit log,
// also as `quill admin audit` sees it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import { emptyResolver, startTestServer, tempDir, testConfig, type TestServer } from '../../test/helpers.js';
import type { StopRequest } from '../cluster/membership.js';
import { startServer } from '../server.js';
import { hashPassword } from '../util/password.js';
import { silentLogger } from '../util/logger.js';
import { WebClient, rawMessage } from './test-kit.js';

const MAIN = path.resolve('src/cli/main.ts');

function quill(args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', MAIN, ...args], { timeout: 60_000, encoding: 'buffer' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr: stderr.toString() });
    });
  });
}

/** One IMAP LOGIN over a raw socket: the tagged reply's status. */
function imapLogin(port: number, user: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let sent = false;
    socket.setTimeout(10_000, () => socket.destroy(new Error(`IMAP timed out: ${text}`)));
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      text += chunk.toString();
      if (!sent && text.includes('\r\n')) {
        sent = true;
        socket.write(`a1 LOGIN "${user}" "${password}"\r\n`);
      }
      const tagged = /^a1 (OK|NO|BAD)/m.exec(text);
      if (tagged) {
        socket.end('a2 LOGOUT\r\n');
        resolve(tagged[1]!);
      }
    });
  });
}

async function smtpLogin(port: number, user: string, pass: string): Promise<boolean> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, auth: { user, pass } });
  try {
    return await transport.verify();
  } catch (error) {
    if ((error as { code?: string }).code === 'EAUTH') return false;
    throw error;
  } finally {
    transport.close();
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** A path of the OpenAPI document with its parameters filled in. */
function concrete(template: string): string {
  const values: Record<string, string> = { id: '1', address: 'ann@example.com', mailboxId: '1', uid: '1', name: 'example.com' };
  return template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(values[name] ?? 'x'));
}

describe('admin API', () => {
  let server: TestServer;
  let base: string;
  let admin: WebClient;
  let ann: WebClient;

  before(async () => {
    // No outbound worker: queued test entries stay where the admin API can act on them.
    server = await startTestServer({ nodeId: 'node-main', overrides: { outbound: { enabled: false } } });
    base = `http://127.0.0.1:${server.port('http')}`;
    await server.store.addUser({ address: 'root@example.com', passwordHash: await hashPassword('root-password'), isAdmin: true });
    await server.addUser('ann@example.com', 'ann-password');
    admin = new WebClient(base);
    await admin.login('root@example.com', 'root-password');
    ann = new WebClient(base);
    await ann.login('ann@example.com', 'ann-password');
  });
  after(async () => server.stop());

  /** Command-line store options for the server's store. */
  const storeArgs = () => (server.config.store.url ? ['--store', server.config.store.url] : ['--data', server.dataDir]);

  it('answers 401 to nobody and 403 to a non-admin on every admin route', async () => {
    const doc = (await ann.get('/api/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(doc.paths)
      .filter(([p]) => p.startsWith('/admin'))
      .flatMap(([p, methods]) => Object.keys(methods).map((method) => ({ method: method.toUpperCase(), path: `/api${concrete(p)}` })));
    // The document lists what the app registered: a new admin route is checked here too.
    assert.ok(routes.length >= 25, `only ${routes.length} admin routes found`);
    for (const wanted of ['GET /api/admin/cluster', 'POST /api/admin/nodes/1/stop', 'DELETE /api/admin/queue/1', 'GET /api/admin/audit', 'POST /api/admin/users']) {
      assert.ok(routes.some((r) => `${r.method} ${r.path}` === wanted), wanted);
    }
    const anonymous = new WebClient(base);
    for (const route of routes) {
      const body = route.method === 'GET' ? undefined : {};
      const nobody = await anonymous.request(route.method, route.path, body);
      assert.equal(nobody.status, 401, `${route.method} ${route.path} anonymous`);
      const user = await ann.request(route.method, route.path, body);
      assert.equal(user.status, 403, `${route.method} ${route.path} as a non-admin`);
      assert.deepEqual(user.body, { error: 'administrators only' });
    }
    // Nothing changed: the domain ann's DELETE named is still there, ann is still enabled.
    assert.ok(await server.store.getDomain('example.com'));
    assert.equal((await server.store.getUser('ann@example.com'))?.disabled, false);
    // An admin needs the CSRF token like everyone else.
    assert.equal((await admin.post('/api/admin/domains', { name: 'csrf.example' }, { csrf: false })).status, 403);
  });

  it('creates, disables and enables a user; a disabled user cannot log in anywhere', async () => {
    const created = await admin.post('/api/admin/users', { address: 'Dora@Example.com', password: 'dora-password', quotaBytes: 1000 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual({ ...created.body.user, createdAt: undefined }, {
      address: 'dora@example.com',
      isAdmin: false,
      disabled: false,
      quotaBytes: 1000,
      usedBytes: 0,
      createdAt: undefined,
      group: null,
    });
    assert.equal((await admin.post('/api/admin/users', { address: 'dora@example.com', password: 'dora-password' })).status, 409);
    assert.equal((await admin.post('/api/admin/users', { address: 'x@nowhere.example', password: 'long-enough' })).status, 400);
    assert.equal((await admin.post('/api/admin/users', { address: 'y@example.com', password: 'short' })).status, 400);
    assert.equal((await admin.post('/api/admin/users', { address: 'y@example.com', password: 'long-enough', admin: true })).status, 400);

    const imap = server.port('imap');
    const submission = server.port('submission');
    assert.equal(await imapLogin(imap, 'dora@example.com', 'dora-password'), 'OK');
    assert.equal(await smtpLogin(submission, 'dora@example.com', 'dora-password'), true);
    const dora = new WebClient(base);
    await dora.login('dora@example.com', 'dora-password');

    assert.deepEqual((await admin.post('/api/admin/users/dora@example.com/disable')).body, { ok: true });
    assert.equal(await imapLogin(imap, 'dora@example.com', 'dora-password'), 'NO');
    assert.equal(await smtpLogin(submission, 'dora@example.com', 'dora-password'), false);
    assert.equal((await dora.get('/api/me')).status, 401, 'her browser session ended');
    const listed = await admin.get('/api/admin/users?q=DORA');
    assert.equal(listed.body.total, 1);
    assert.equal(listed.body.users[0].disabled, true);

    assert.deepEqual((await admin.post('/api/admin/users/dora@example.com/enable')).body, { ok: true });
    assert.equal(await imapLogin(imap, 'dora@example.com', 'dora-password'), 'OK');
    assert.equal((await admin.post('/api/admin/users/ghost@example.com/disable')).status, 404);
    assert.equal((await admin.post('/api/admin/users/root@example.com/disable')).status, 409, 'not yourself');

    // A password reset: the old password stops working.
    assert.deepEqual((await admin.post('/api/admin/users/dora@example.com/password', { password: 'new-dora-password' })).body, { ok: true });
    assert.equal(await imapLogin(imap, 'dora@example.com', 'dora-password'), 'NO');
    assert.equal(await imapLogin(imap, 'dora@example.com', 'new-dora-password'), 'OK');

    const actions = (await admin.get('/api/admin/audit?limit=20')).body.entries.filter((e: { target: string }) => e.target === 'dora@example.com');
    assert.deepEqual(
      actions.map((e: { action: string }) => e.action),
      ['user.password', 'user.enable', 'user.disable', 'user.add'],
    );
    assert.ok(actions.every((e: { actor: string }) => e.actor === 'root@example.com'));
  });

  it('changes a quota, validates input, pages and searches users', async () => {
    assert.deepEqual((await admin.post('/api/admin/users/ann@example.com/quota', { quotaBytes: 5_000_000 })).body, { ok: true });
    assert.equal((await server.store.getUser('ann@example.com'))?.quotaBytes, 5_000_000);
    for (const bad of [{ quotaBytes: -1 }, { quotaBytes: 'lots' }, { quotaBytes: 1.5 }, {}, { quotaBytes: 1, extra: 1 }]) {
      const reply = await admin.post('/api/admin/users/ann@example.com/quota', bad);
      assert.equal(reply.status, 400, JSON.stringify(bad));
      assert.equal(typeof reply.body.error, 'string');
    }
    assert.equal((await admin.get('/api/admin/users?limit=0')).status, 400);
    assert.equal((await admin.get('/api/admin/users?offset=-1')).status, 400);
    assert.equal((await admin.get('/api/admin/queue/abc')).status, 400);
    const page = await admin.get('/api/admin/users?offset=1&limit=1');
    assert.equal(page.status, 200);
    assert.equal(page.body.users.length, 1);
    assert.ok(page.body.total >= 3);
    assert.equal((await admin.get('/api/admin/users?q=ann')).body.users[0].quotaBytes, 5_000_000);
    assert.equal((await admin.post('/api/admin/users/ann@example.com/move', { group: 'g2' })).status, 501);
  });

  it('adds and removes domains, refusing to remove one with users', async () => {
    assert.equal((await admin.post('/api/admin/domains', { name: 'New.Example' })).status, 201);
    assert.equal((await admin.post('/api/admin/domains', { name: 'not a domain' })).status, 400);
    const { domains } = (await admin.get('/api/admin/domains')).body;
    assert.deepEqual(
      domains.map((d: { name: string; users: number }) => [d.name, d.users > 0]),
      [
        ['example.com', true],
        ['new.example', false],
      ],
    );
    assert.equal((await admin.request('DELETE', '/api/admin/domains/example.com')).status, 409);
    assert.deepEqual((await admin.request('DELETE', '/api/admin/domains/new.example')).body, { ok: true });
    assert.equal((await admin.request('DELETE', '/api/admin/domains/new.example')).status, 404);
  });

  it('drains and undrains a live node, which obeys at its next beat', async () => {
    const cluster = await admin.get('/api/admin/cluster');
    const me = cluster.body.members.find((m: { id: string }) => m.id === 'node-main');
    assert.ok(me, JSON.stringify(cluster.body));
    assert.equal(me.kind, 'node');
    assert.equal(me.state, 'active');
    assert.equal(me.alive, true);
    assert.equal(me.addresses.http, `127.0.0.1:${server.port('http')}`);
    assert.equal(typeof me.load.rssBytes, 'number');
    if (cluster.body.store.kind === 'sqlite') {
      assert.equal(cluster.body.store.path, path.join(server.dataDir, 'quill.db'));
      assert.ok(cluster.body.store.sizeBytes > 0);
    } else {
      assert.ok(cluster.body.store.groups[0].hosts.some((h: { role: string }) => h.role === 'primary'));
    }

    const state = async (wanted: string) =>
      until(`state ${wanted}`, async () => {
        const members = (await admin.get('/api/admin/cluster')).body.members as { id: string; state: string }[];
        return members.find((m) => m.id === 'node-main' && m.state === wanted);
      });
    assert.deepEqual((await admin.post('/api/admin/nodes/node-main/drain')).body, { ok: true });
    await state('draining');
    assert.equal(server.membership.state, 'draining');
    // As the console sends it: a POST without a body.
    assert.deepEqual((await admin.request('POST', '/api/admin/nodes/node-main/undrain')).body, { ok: true });
    await state('active');
    assert.equal((await admin.post('/api/admin/nodes/no-such-node/drain')).status, 404);
  });

  it('lists, holds, releases, retries and deletes a queued message', async () => {
    const raw = rawMessage(['From: ann@example.com', 'To: far@elsewhere.example', 'Subject: queued', '', 'hello']);
    const { outboundIds } = await server.store.deliver(raw, [], { outbound: { sender: 'ann@example.com', recipients: ['far@elsewhere.example'] } });
    const id = outboundIds[0]!;
    const { entries } = (await admin.get('/api/admin/queue')).body;
    const entry = entries.find((e: { id: number }) => e.id === id);
    assert.deepEqual([entry.from, entry.recipients, entry.size], ['ann@example.com', ['far@elsewhere.example'], raw.length]);
    assert.equal((await admin.get(`/api/admin/queue/${id}`)).body.entry.id, id);

    assert.deepEqual((await admin.post(`/api/admin/queue/${id}/hold`)).body, { ok: true });
    assert.equal((await server.store.getOutbound(id))?.status, 'held');
    assert.deepEqual((await admin.post(`/api/admin/queue/${id}/release`)).body, { ok: true });
    assert.notEqual((await server.store.getOutbound(id))?.status, 'held');
    assert.deepEqual((await admin.post(`/api/admin/queue/${id}/hold`)).body, { ok: true });
    assert.deepEqual((await admin.post(`/api/admin/queue/${id}/retry`)).body, { ok: true });
    assert.deepEqual((await admin.request('DELETE', `/api/admin/queue/${id}`)).body, { ok: true });
    assert.equal(await server.store.getOutbound(id), undefined);
    assert.equal((await admin.get(`/api/admin/queue/${id}`)).status, 404);
    assert.equal((await admin.post(`/api/admin/queue/${id}/retry`)).status, 404);

    const audited = (await admin.get('/api/admin/audit?limit=10')).body.entries.filter((e: { target: string }) => e.target === String(id));
    assert.deepEqual(
      audited.map((e: { action: string }) => e.action),
      ['queue.delete', 'queue.retry', 'queue.hold', 'queue.release', 'queue.hold'],
    );
  });

  it('shows the exact stored bytes of a message, audited, also to the CLI', async () => {
    const raw = Buffer.concat([rawMessage(['From: x@example.org', 'To: ann@example.com', 'Subject: raw view', '']), Buffer.from([0xe9, 0x00, 0xff, 0x0d, 0x0a])]);
    const annId = (await server.store.getUser('ann@example.com'))!.id;
    const { copies } = await server.store.deliver(raw, [{ userId: annId }]);
    const { mailboxId, uid } = copies[0]!;

    const boxes = (await admin.get('/api/admin/raw/users/ann@example.com/mailboxes')).body.mailboxes;
    const inbox = boxes.find((b: { name: string }) => b.name === 'INBOX');
    assert.equal(inbox.id, mailboxId);
    assert.equal(inbox.messages, 1);
    const list = (await admin.get(`/api/admin/raw/users/ann@example.com/mailboxes/${mailboxId}/messages?limit=10`)).body;
    assert.equal(list.total, 1);
    assert.equal(list.messages[0].uid, uid);
    assert.equal(list.messages[0].size, raw.length);

    const shown = await admin.get(`/api/admin/raw/users/ann@example.com/mailboxes/${mailboxId}/messages/${uid}`);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.encoding, 'latin1', 'not valid UTF-8');
    assert.equal(shown.body.truncated, false);
    assert.deepEqual(Buffer.from(shown.body.raw, 'latin1'), raw);
    assert.equal(shown.body.meta.size, raw.length);
    // Another user's mailbox id is not reachable through ann's address.
    assert.equal((await admin.get(`/api/admin/raw/users/root@example.com/mailboxes/${mailboxId}/messages/${uid}`)).status, 404);

    const [view] = (await admin.get('/api/admin/audit?limit=1')).body.entries;
    assert.equal(view.actor, 'root@example.com');
    assert.equal(view.action, 'view');
    assert.equal(view.target, 'ann@example.com');
    assert.deepEqual(view.detail, { what: 'message', mailbox: 'INBOX', mailboxId, uid });
    const all = (await admin.get('/api/admin/audit?limit=500')).body.entries as { id: number; action: string }[];
    assert.equal(all.filter((e) => e.action === 'view').length, 3, 'mailboxes, messages, message');
    const older = (await admin.get(`/api/admin/audit?before=${view.id}&limit=1`)).body.entries;
    assert.ok(older[0].id < view.id);

    // The CLI sees the web's entries, and its own raw view is audited as cli:<user>.
    const cliRaw = await quill(['admin', 'raw', 'message', 'ann@example.com', 'INBOX', String(uid), ...storeArgs()]);
    assert.equal(cliRaw.code, 0, cliRaw.stderr);
    assert.deepEqual(cliRaw.stdout, raw);
    const audit = await quill(['admin', 'audit', '--json', '--limit', '5', ...storeArgs()]);
    assert.equal(audit.code, 0, audit.stderr);
    const entries = JSON.parse(audit.stdout.toString()) as { actor: string; action: string; target: string; detail: Record<string, unknown> }[];
    assert.match(entries[0]!.actor, /^cli:/);
    assert.equal(entries[0]!.action, 'view');
    assert.ok(entries.some((e) => e.actor === 'root@example.com' && e.action === 'view' && e.detail.uid === uid));
    const text = await quill(['admin', 'audit', ...storeArgs()]);
    assert.match(text.stdout.toString(), /^ID +AT +ACTOR +ACTION +TARGET +DETAIL\n/);
  });

  it("writes the CLI's operator commands to the audit log as cli:<os user>", async () => {
    for (const args of [['domain', 'add', 'cli.example'], ['user', 'disable', 'ann@example.com'], ['user', 'enable', 'ann@example.com']]) {
      const run = await quill([...args, ...storeArgs()]);
      assert.equal(run.code, 0, run.stderr);
    }
    assert.equal((await server.store.getUser('ann@example.com'))?.disabled, false);
    const entries = (await admin.get('/api/admin/audit?limit=3')).body.entries as { actor: string; action: string; target: string }[];
    assert.deepEqual(
      entries.map((e) => [e.actor, e.action, e.target]),
      [
        [`cli:${userInfo().username}`, 'user.enable', 'ann@example.com'],
        [`cli:${userInfo().username}`, 'user.disable', 'ann@example.com'],
        [`cli:${userInfo().username}`, 'domain.add', 'cli.example'],
      ],
    );
    const failed = await quill(['user', 'disable', 'ghost@example.com', ...storeArgs()]);
    assert.equal(failed.code, 2);
    assert.equal((await admin.get('/api/admin/audit?limit=1')).body.entries[0].action, 'user.enable', 'a failed command writes nothing');
  });

  it("lists a user's drive objects, folders before their contents, audited", async () => {
    const annId = (await server.store.getUser('ann@example.com'))!.id;
    const folder = await server.store.createDriveFolder(annId, null, 'Papers');
    await server.store.createDriveFolder(annId, folder.id, 'Old');
    const reply = await admin.get('/api/admin/raw/users/ann@example.com/drive');
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.deepEqual(
      reply.body.objects.map((o: { name: string; parentId: number | null }) => [o.name, o.parentId]),
      [
        ['Papers', null],
        ['Old', folder.id],
      ],
    );
    const [view] = (await admin.get('/api/admin/audit?limit=1')).body.entries;
    assert.deepEqual([view.action, view.target, view.detail], ['view', 'ann@example.com', { what: 'drive', objects: 2 }]);
  });

  it('stops a node on request: it closes its listeners and leaves the membership', async () => {
    const requests: StopRequest[] = [];
    const otherDir = tempDir();
    const other = await startServer(testConfig(otherDir, { outbound: { enabled: false } }), { store: server.store, logger: silentLogger(), resolver: emptyResolver, nodeId: 'node-other', onStopRequested: (r) => requests.push(r) });
    try {
      const otherHttp = `http://127.0.0.1:${other.port('http')}/healthz`;
      assert.equal((await fetch(otherHttp)).status, 200);
      assert.deepEqual((await admin.post('/api/admin/nodes/node-other/stop')).body, { ok: true });
      await until('the stop', async () => (requests.length > 0 ? true : undefined));
      assert.deepEqual(requests, ['stop']);
      await assert.rejects(fetch(otherHttp), 'the HTTP listener is closed');
      await assert.rejects(imapLogin(other.port('imap'), 'ann@example.com', 'ann-password'), /ECONNREFUSED/);
      const members = (await admin.get('/api/admin/cluster')).body.members as { id: string }[];
      assert.equal(members.some((m) => m.id === 'node-other'), false);
      assert.equal((await admin.post('/api/admin/nodes/node-other/stop')).status, 404);
      assert.ok((await fetch(`${base}/healthz`)).ok, 'the other node is untouched');
    } finally {
      await other.close();
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  // (A plain `quill start` restarts in its own process instead: test/start-restart.test.ts.)
  it('restarts a node: `quill node` closes and exits with 75 for its supervisor', async () => {
    const { spawn } = await import('node:child_process');
    const listen = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
    const id = `restart-node-${process.pid}`;
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'node', '--id', id, ...storeArgs(), ...listen], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await until('the child node', async () => ((await server.store.listMembers()).some((m) => m.id === id) ? true : undefined), 30_000);
      assert.deepEqual((await admin.post(`/api/admin/nodes/${encodeURIComponent(id)}/restart`)).body, { ok: true });
      assert.equal(await exited, 75);
      assert.equal((await server.store.listMembers()).some((m) => m.id === id), false, 'it left the membership');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
