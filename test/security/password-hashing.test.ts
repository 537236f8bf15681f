// Issue 17: passwords hashed at today's recommended cost (scrypt N=2^17, r=8, p=1), older
// hashes still accepted and rehashed at login, and a cache of verified credentials that a
// changed password bypasses at once. Counted in quill_password_checks_total (cached, scrypt).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, scryptSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { hashPassword } from '../../src/util/password.js';
import { startTestServer, type TestServer } from '../helpers.js';
import { succeeded, tryLogin } from './auth-kit.js';

const run = promisify(execFile);

async function checks(server: TestServer): Promise<{ cached: number; scrypt: number }> {
  const text = await (await fetch(`http://127.0.0.1:${server.port('http')}/metrics`)).text();
  const value = (result: string) => Number(new RegExp(`^quill_password_checks_total\\{result="${result}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { cached: value('cached'), scrypt: value('scrypt') };
}

describe('password hashing', () => {
  it('hashes new passwords with scrypt N=2^17, r=8, p=1 by default (a process outside the test suite)', async () => {
    const script = "import('./src/util/password.ts').then(async (m) => process.stdout.write(await m.hashPassword('pw')))";
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '-e', script], { env: { ...process.env, QUILL_TEST: '' }, timeout: 60_000 });
    assert.match(stdout, /^scrypt\$131072\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/);
  });
});

describe('password hashing: old hashes and the verified-credential cache', () => {
  let server: TestServer;
  let port: number;

  before(async () => {
    // A cost above the suite's default, so the suite's own hashes count as old ones.
    server = await startTestServer({ overrides: { limits: { passwordScryptN: 2 ** 15 } } });
    port = server.port('imap');
  });
  after(() => server.stop());

  it('accepts a hash made at the old cost and rehashes it at the configured cost on login', async () => {
    const salt = randomBytes(16);
    const key = scryptSync('old-pw', salt, 32, { N: 2 ** 14, r: 8, p: 1 });
    const old = ['scrypt', 16384, 8, 1, salt.toString('base64'), key.toString('base64')].join('$');
    await server.store.addUser({ address: 'olga@example.com', passwordHash: old });
    assert.ok(succeeded('imap', await tryLogin('imap', port, '127.0.0.2', 'olga@example.com', 'old-pw')));
    const rehashed = (await server.store.getUser('olga@example.com'))!.passwordHash;
    assert.match(rehashed, /^scrypt\$32768\$8\$1\$/);
    assert.ok(succeeded('imap', await tryLogin('imap', port, '127.0.0.2', 'olga@example.com', 'old-pw')));
    assert.match(await tryLogin('imap', port, '127.0.0.2', 'olga@example.com', 'wrong'), /^a NO \[AUTHENTICATIONFAILED\]/);
  });

  it('answers a repeated login from the cache, and a changed password at once', async () => {
    await server.addUser('cara@example.com', 'first-pw');
    assert.ok(succeeded('imap', await tryLogin('imap', port, '127.0.0.3', 'cara@example.com', 'first-pw')));
    const before = await checks(server);
    assert.ok(succeeded('imap', await tryLogin('imap', port, '127.0.0.3', 'cara@example.com', 'first-pw')));
    assert.ok(succeeded('pop3', await tryLogin('pop3', server.port('pop3'), '127.0.0.3', 'cara@example.com', 'first-pw')));
    const hit = await checks(server);
    assert.deepEqual(hit, { cached: before.cached + 2, scrypt: before.scrypt }, 'both logins answered without scrypt');

    // A wrong password is never answered from the cache.
    assert.match(await tryLogin('imap', port, '127.0.0.3', 'cara@example.com', 'first-pw!'), /^a NO \[AUTHENTICATIONFAILED\]/);
    assert.equal((await checks(server)).scrypt, hit.scrypt + 1);

    // The password changes (as `quill user passwd` does: a new stored hash).
    await server.store.setPassword('cara@example.com', await hashPassword('second-pw'));
    assert.match(await tryLogin('imap', port, '127.0.0.3', 'cara@example.com', 'first-pw'), /^a NO \[AUTHENTICATIONFAILED\]/);
    assert.ok(succeeded('imap', await tryLogin('imap', port, '127.0.0.3', 'cara@example.com', 'second-pw')));
  });
});
