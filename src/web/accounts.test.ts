// Accounts over a real socket: login, logout, me, password change, CSRF, lockout, sign-up.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { WebClient } from './test-kit.js';

describe('web accounts', () => {
  let server: TestServer;
  let base: string;

  before(async () => {
    server = await startTestServer();
    base = `http://127.0.0.1:${server.port('http')}`;
    await server.addUser('ann@example.com', 'ann-password');
    await server.addUser('carl@example.com', 'carl-password');
  });
  after(async () => server.stop());

  it('logs in, says who is logged in, and logs out', async () => {
    const client = new WebClient(base);
    assert.equal((await client.get('/api/me')).status, 401);
    const login = await client.post('/api/login', { address: 'Ann@Example.com', password: 'ann-password' });
    assert.equal(login.status, 200);
    assert.equal(login.body.user.address, 'ann@example.com');
    assert.match(login.body.csrfToken, /^[\w-]{43}$/);
    const cookie = login.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^quill_session=[\w-]{43};/);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Lax/);
    assert.doesNotMatch(cookie, /Secure/, 'plain HTTP: no Secure flag');
    client.csrfToken = login.body.csrfToken;

    const me = await client.get('/api/me');
    assert.equal(me.status, 200);
    assert.deepEqual(me.body, { user: { address: 'ann@example.com', displayName: '', isAdmin: false, quotaBytes: 0, usedBytes: 0 }, csrfToken: client.csrfToken });
    assert.equal(me.headers.get('cache-control'), 'no-store');

    // Only the hash of the cookie's id is stored.
    const id = client.cookie.split('=')[1]!;
    assert.equal(await server.store.getSession(id), undefined);
    assert.equal((await server.store.getSession(createHash('sha256').update(id).digest('hex')))?.csrfToken, client.csrfToken);

    const logout = await client.post('/api/logout');
    assert.equal(logout.status, 200);
    assert.match(logout.headers.get('set-cookie') ?? '', /quill_session=;.*Expires=Thu, 01 Jan 1970/);
    assert.equal((await client.get('/api/me')).status, 401, 'the old cookie no longer works');
  });

  it('answers a wrong password or unknown user with 401', async () => {
    const client = new WebClient(base);
    const wrong = await client.post('/api/login', { address: 'carl@example.com', password: 'nope' });
    assert.equal(wrong.status, 401);
    assert.deepEqual(wrong.body, { error: 'wrong address or password' });
    assert.equal(wrong.headers.get('set-cookie'), null);
    assert.equal((await client.post('/api/login', { address: 'ghost@example.com', password: 'nope' })).status, 401);
  });

  it('refuses state-changing requests without the CSRF token', async () => {
    const client = new WebClient(base);
    await client.login('carl@example.com', 'carl-password');
    const missing = await client.post('/api/logout', {}, { csrf: false });
    assert.equal(missing.status, 403);
    assert.deepEqual(missing.body, { error: 'missing or wrong X-CSRF-Token header' });
    const wrong = await client.request('POST', '/api/logout', {}, { csrf: false, headers: { 'x-csrf-token': 'x'.repeat(43) } });
    assert.equal(wrong.status, 403);
    // Another session's token is not this session's.
    const other = new WebClient(base);
    await other.login('carl@example.com', 'carl-password');
    assert.equal((await client.request('POST', '/api/logout', {}, { csrf: false, headers: { 'x-csrf-token': other.csrfToken } })).status, 403);
    assert.equal((await client.get('/api/me')).status, 200, 'still logged in');
  });

  it('takes JSON only, validated: a form post or unknown keys are refused', async () => {
    const form = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"address":"ann@example.com","password":"ann-password"}' });
    assert.equal(form.status, 415);
    const client = new WebClient(base);
    const extra = await client.post('/api/login', { address: 'ann@example.com', password: 'ann-password', admin: true });
    assert.equal(extra.status, 400);
    assert.match(extra.body.error, /additional properties/);
    const missing = await client.post('/api/login', { address: 'ann@example.com' });
    assert.equal(missing.status, 400);
    assert.match(missing.body.error, /password/);
  });

  it('changes the password: the old one stops working, other sessions end, this one stays', async () => {
    await server.addUser('dora@example.com', 'dora-password');
    const mine = new WebClient(base);
    const other = new WebClient(base);
    await mine.login('dora@example.com', 'dora-password');
    await other.login('dora@example.com', 'dora-password');
    assert.equal((await mine.post('/api/password', { currentPassword: 'wrong', newPassword: 'new-dora-password' })).status, 403);
    assert.equal((await mine.post('/api/password', { currentPassword: 'dora-password', newPassword: 'short' })).status, 400);
    assert.equal((await mine.post('/api/password', { currentPassword: 'dora-password', newPassword: 'new-dora-password' })).status, 200);
    assert.equal((await mine.get('/api/me')).status, 200);
    assert.equal((await other.get('/api/me')).status, 401);
    assert.equal((await new WebClient(base).post('/api/login', { address: 'dora@example.com', password: 'dora-password' })).status, 401);
    await new WebClient(base).login('dora@example.com', 'new-dora-password');
  });

  it('has sign-up closed by default', async () => {
    assert.deepEqual((await new WebClient(base).get('/api/config')).body, { signup: 'closed' });
    const reply = await new WebClient(base).post('/api/signup', { address: 'new@example.com', password: 'a-long-password' });
    assert.equal(reply.status, 403);
    assert.equal(await server.store.getUser('new@example.com'), undefined);
  });
});

describe('web accounts: lockout', () => {
  it('locks the address out after repeated failures with 429, even for the right password', async () => {
    const server = await startTestServer({ overrides: { limits: { authFailuresPerIp: 3, lockoutSeconds: 60 } } });
    try {
      await server.addUser('eve@example.com', 'eve-password');
      const client = new WebClient(`http://127.0.0.1:${server.port('http')}`);
      for (let i = 0; i < 3; i++) assert.equal((await client.post('/api/login', { address: 'eve@example.com', password: `wrong-${i}` })).status, 401);
      const locked = await client.post('/api/login', { address: 'eve@example.com', password: 'eve-password' });
      assert.equal(locked.status, 429);
      assert.match(locked.body.error, /too many failed logins/);
    } finally {
      await server.stop();
    }
  });
});

describe('web accounts: sign-up', () => {
  it('open: anyone gets an account on one of our domains and is logged in', async () => {
    const server = await startTestServer({ overrides: { web: { signup: 'open' } } });
    try {
      const client = new WebClient(`http://127.0.0.1:${server.port('http')}`);
      assert.deepEqual((await client.get('/api/config')).body, { signup: 'open' });
      const created = await client.post('/api/signup', { address: 'Newbie@Example.com', password: 'a-long-password' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.user.address, 'newbie@example.com');
      client.csrfToken = created.body.csrfToken;
      assert.equal((await client.get('/api/me')).body.user.address, 'newbie@example.com');
      assert.equal((await client.get('/api/mailboxes')).body.mailboxes.length, 6, 'default mailboxes');
      const again = await new WebClient(client.base).post('/api/signup', { address: 'newbie@example.com', password: 'another-password' });
      assert.equal(again.status, 409);
      assert.equal((await new WebClient(client.base).post('/api/signup', { address: 'x@elsewhere.test', password: 'a-long-password' })).status, 400);
      assert.equal((await new WebClient(client.base).post('/api/signup', { address: 'bad address@example.com', password: 'a-long-password' })).status, 400);
      await new WebClient(client.base).login('newbie@example.com', 'a-long-password');
    } finally {
      await server.stop();
    }
  });

  it('invite: only with a known code', async () => {
    const server = await startTestServer({ overrides: { web: { signup: 'invite', inviteCodes: ['welcome-2026'] } } });
    try {
      const base = `http://127.0.0.1:${server.port('http')}`;
      assert.equal((await new WebClient(base).post('/api/signup', { address: 'a@example.com', password: 'a-long-password' })).status, 403);
      assert.equal((await new WebClient(base).post('/api/signup', { address: 'a@example.com', password: 'a-long-password', inviteCode: 'welcome-2025' })).status, 403);
      assert.equal((await new WebClient(base).post('/api/signup', { address: 'a@example.com', password: 'a-long-password', inviteCode: 'welcome-2026' })).status, 201);
    } finally {
      await server.stop();
    }
  });
});
