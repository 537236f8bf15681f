// Issue 17 row 7: web sign-up refuses role names (postmaster, abuse, ...), gives every new
// account a quota (never 0 = unlimited), limits accounts per client address, and counts wrong
// invite codes as failed logins, so they get throttled like password guesses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startTestServer } from '../helpers.js';
import { httpPost as post } from './auth-kit.js';

describe('web sign-up (open)', () => {
  it('refuses role names, gives the default quota, and limits accounts per address', async () => {
    const server = await startTestServer({ overrides: { web: { signup: 'open' } } });
    try {
      const port = server.port('http');
      for (const [i, address] of ['postmaster@example.com', 'Abuse@example.com', 'no.reply@example.com', 'mailer-daemon@example.com', 'admin+x@example.com'].entries()) {
        const reply = await post(port, `127.0.1.${i + 1}`, '/api/signup', { address, password: 'a-long-password' });
        assert.equal(reply.status, 403, address);
        assert.match(reply.body.error ?? '', /reserved name/);
        assert.equal(await server.store.getUser(address), undefined);
      }

      const created = await post(port, '127.0.0.2', '/api/signup', { address: 'newbie@example.com', password: 'a-long-password' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal((await server.store.getUser('newbie@example.com'))!.quotaBytes, 1024 ** 3, 'a sign-up gets the default quota, not unlimited');

      for (const name of ['second', 'third']) assert.equal((await post(port, '127.0.0.2', '/api/signup', { address: `${name}@example.com`, password: 'a-long-password' })).status, 201);
      const fourth = await post(port, '127.0.0.2', '/api/signup', { address: 'fourth@example.com', password: 'a-long-password' });
      assert.equal(fourth.status, 429);
      assert.match(fourth.body.error ?? '', /too many accounts/);
      assert.equal(await server.store.getUser('fourth@example.com'), undefined);
      // Another address is not held back.
      assert.equal((await post(port, '127.0.0.3', '/api/signup', { address: 'fourth@example.com', password: 'a-long-password' })).status, 201);
    } finally {
      await server.stop();
    }
  });

  it('takes the reserved list and the quota from the config', async () => {
    const server = await startTestServer({ overrides: { web: { signup: 'open', reservedNames: ['ceo'], signupQuota: 10 * 1024 * 1024 } } });
    try {
      const port = server.port('http');
      assert.equal((await post(port, '127.0.0.2', '/api/signup', { address: 'c.e.o@example.com', password: 'a-long-password' })).status, 403);
      assert.equal((await post(port, '127.0.0.2', '/api/signup', { address: 'postmaster@example.com', password: 'a-long-password' })).status, 201);
      assert.equal((await server.store.getUser('postmaster@example.com'))!.quotaBytes, 10 * 1024 * 1024);
    } finally {
      await server.stop();
    }
  });
});

describe('web sign-up (invite)', () => {
  it('counts wrong invite codes as failed logins: the guessing address is throttled, even with the right code', async () => {
    const server = await startTestServer({ overrides: { web: { signup: 'invite', inviteCodes: ['welcome-2026'] } } });
    try {
      const port = server.port('http');
      for (let i = 0; i < 10; i++) {
        const guess = await post(port, '127.0.0.2', '/api/signup', { address: `g${i}@example.com`, password: 'a-long-password', inviteCode: `guess-${i}-code` });
        assert.equal(guess.status, 403);
      }
      const right = await post(port, '127.0.0.2', '/api/signup', { address: 'late@example.com', password: 'a-long-password', inviteCode: 'welcome-2026' });
      assert.equal(right.status, 429);
      assert.equal(await server.store.getUser('late@example.com'), undefined);
      assert.equal((await post(port, '127.0.0.3', '/api/signup', { address: 'late@example.com', password: 'a-long-password', inviteCode: 'welcome-2026' })).status, 201);
    } finally {
      await server.stop();
    }
  });
});
