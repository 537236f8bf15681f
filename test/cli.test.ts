// Drives the `quill` binary as a user would: bin/quill.js after `npm run build`.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { tempDir } from './helpers.js';

const BIN = path.resolve('bin/quill.js');
const run = promisify(execFile);

async function quill(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin!.end(input ?? '');
  });
}

/** Starts `quill start` on free ports and waits until it logs its listeners. */
async function startQuill(data: string): Promise<{ child: ChildProcess; ports: Record<string, number>; output: () => string }> {
  const child = spawn(
    process.execPath,
    [BIN, 'start', '--data', data, '--smtp', '127.0.0.1:0', '--submission', '127.0.0.1:0', '--pop3', '127.0.0.1:0', '--imap', '127.0.0.1:0', '--http', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  const ports: Record<string, number> = {};
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`quill start did not come up:\n${text}`)), 20_000);
    child.on('exit', (code) => reject(new Error(`quill start exited with ${code}:\n${text}`)));
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      for (const line of text.split('\n')) {
        const match = /"protocol":"(\w+)".*"port":(\d+)/.exec(line);
        if (match) ports[match[1]!] = Number(match[2]);
      }
      if (ports.http) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
  });
  child.removeAllListeners('exit');
  return { child, ports, output: () => text };
}

describe('quill command line', () => {
  let data: string;
  before(() => {
    assert.ok(existsSync('dist/cli/main.js'), 'run `npm run build` first (npm test does)');
    data = tempDir('quill-cli-');
  });

  it('describes every command and exits 0 for --help', async () => {
    const top = await quill(['--help']);
    assert.equal(top.code, 0);
    for (const cmd of ['start', 'domain', 'user', 'queue']) assert.match(top.stdout, new RegExp(`\\b${cmd}\\b`));
    const start = await quill(['start', '--help']);
    for (const flag of ['--config', '--data', '--hostname', '--smtp', '--submission', '--pop3', '--imap', '--http']) assert.ok(start.stdout.includes(flag), flag);
    const user = await quill(['user', 'add', '--help']);
    for (const flag of ['--password', '--password-stdin', '--quota']) assert.ok(user.stdout.includes(flag), flag);
  });

  it('exits 2 with a clear message on wrong usage', async () => {
    const unknown = await quill(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command/);
    const missing = await quill(['user', 'add', 'a@example.com', '--data', data]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /password/);
    const badQuota = await quill(['user', 'add', 'a@example.com', '--password', 'x', '--quota', 'lots', '--data', data]);
    assert.equal(badQuota.code, 2);
    assert.match(badQuota.stderr, /--quota/);
  });

  it('rejects a bad config file with one line naming the key, exit 2', async () => {
    const file = path.join(data, 'bad.yaml');
    writeFileSync(file, 'limits:\n  recipients: 10\n  recipeints: 5\n');
    const unknownKey = await quill(['start', '--config', file]);
    assert.equal(unknownKey.code, 2);
    assert.match(unknownKey.stderr, /unknown key limits\.recipeints/);
    assert.equal(unknownKey.stderr.trim().split('\n').length, 1);
    writeFileSync(file, 'listen:\n  imap: "127.0.0.1:99999"\n');
    const badPort = await quill(['start', '--config', file]);
    assert.equal(badPort.code, 2);
    assert.match(badPort.stderr, /listen\.imap/);
    writeFileSync(file, 'tls:\n  cert: /nonexistent/cert.pem\n  key: /nonexistent/key.pem\n');
    const missingFile = await quill(['start', '--config', file]);
    assert.equal(missingFile.code, 2);
    assert.match(missingFile.stderr, /tls\.cert/);
  });

  it('manages domains and users, also while the server runs, and stops cleanly on SIGTERM', async () => {
    assert.equal((await quill(['domain', 'add', 'Example.com', '--data', data])).code, 0);
    assert.equal((await quill(['user', 'add', 'alice@example.com', '--password', 'pw1', '--quota', '10MB', '--data', data])).code, 0);
    const server = await startQuill(data);
    try {
      const health = await run('curl', ['-s', '-w', '%{http_code}', `http://127.0.0.1:${server.ports.http}/healthz`]);
      assert.match(health.stdout, /"status":"ok".*200$/);
      assert.equal((await quill(['user', 'add', 'bob@example.com', '--password-stdin', '--data', data], 'secret\n')).code, 0);
      const list = await quill(['user', 'list', '--data', data]);
      assert.match(list.stdout, /alice@example\.com\s+0B\/10M/);
      assert.match(list.stdout, /bob@example\.com/);
      assert.equal((await quill(['user', 'passwd', 'bob@example.com', '--password', 'new', '--data', data])).code, 0);
      const domains = await quill(['domain', 'list', '--data', data]);
      assert.equal(domains.stdout, 'example.com\n');
      const inUse = await quill(['domain', 'remove', 'example.com', '--data', data]);
      assert.equal(inUse.code, 1);
      assert.match(inUse.stderr, /still has 2 user/);
      assert.equal((await quill(['queue', 'list', '--data', data])).stdout, 'queue is empty\n');
    } finally {
      server.child.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((resolve) => server.child.on('exit', (c) => resolve(c)));
    assert.equal(code, 0, server.output());
    assert.equal((await quill(['user', 'remove', 'bob@example.com', '--data', data])).code, 0);
    assert.doesNotMatch((await quill(['user', 'list', '--data', data])).stdout, /bob/);
  });

  after(() => rmSync(data, { recursive: true, force: true }));
});
