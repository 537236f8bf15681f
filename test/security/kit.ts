// For the hostile-input tests (issue 17): a real `quill start` in its own process, so its
// memory can be read from /proc, and a second, well-behaved client whose NOOPs are timed while
// the hostile one does its worst.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../src/config/config.js';
import { ImapWire } from '../../src/imap/test-client.js';
import { openStore } from '../../src/server.js';
import type { Store } from '../../src/store/types.js';
import { hashPassword } from '../../src/util/password.js';
import { tempDir } from '../helpers.js';

const BIN = path.resolve('bin/quill.js');
export const USER = 'mallory@example.com';
export const PASSWORD = 'pw-mallory';

/** What the issue allows: RSS within 200 MB of its start, another client's NOOP within 100 ms. */
export const RSS_GROWTH_LIMIT = 200 * 1024 * 1024;
export const NOOP_LIMIT_MS = 100;

export interface QuillProcess {
  child: ChildProcess;
  data: string;
  imapPort: number;
  /** The server's resident set size now, in bytes (/proc/PID/status VmRSS). */
  rss(): number;
  stop(): Promise<void>;
}

/**
 * `quill start` on free ports with a fresh data directory holding one user; `imapYaml` is the
 * body of the config file's imap section, if any. `prepare` may add to the store first.
 */
export async function startQuill(options: { imapYaml?: string; prepare?: (store: Store, userId: number) => Promise<void> } = {}): Promise<QuillProcess> {
  assert.ok(existsSync('dist/cli/main.js'), 'run `npm run build` first (npm test does)');
  const data = tempDir('quill-hostile-');
  const store = await openStore(configSchema.parse({ data }));
  await store.addDomain('example.com');
  const user = await store.addUser({ address: USER, passwordHash: await hashPassword(PASSWORD) });
  await options.prepare?.(store, user.id);
  await store.close();
  const configFile = path.join(data, 'quill.yaml');
  writeFileSync(configFile, `limits:\n  authFailureDelayMs: 10\n${options.imapYaml ? `imap:\n${options.imapYaml}\n` : ''}`);
  const child = spawn(
    process.execPath,
    [BIN, 'start', '--config', configFile, '--data', data, '--smtp', '127.0.0.1:0', '--submission', '127.0.0.1:0', '--pop3', '127.0.0.1:0', '--imap', '127.0.0.1:0', '--http', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  const ports: Record<string, number> = {};
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`quill start did not come up:\n${text}`)), 20_000);
    child.once('exit', (code) => reject(new Error(`quill start exited with ${code}:\n${text}`)));
    const onData = (chunk: Buffer): void => {
      if (text.length < 100_000) text += chunk.toString();
      for (const match of text.matchAll(/"protocol":"(\w+)".*?"port":(\d+)/g)) ports[match[1]!] = Number(match[2]);
      if (ports.http && ports.imap) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
  });
  child.removeAllListeners('exit');
  return {
    child,
    data,
    imapPort: ports.imap!,
    rss() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = /^VmRSS:\s+(\d+) kB/m.exec(status);
      assert.ok(kb, 'no VmRSS in /proc/PID/status');
      return Number(kb[1]) * 1024;
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(data, { recursive: true, force: true });
    },
  };
}

export async function login(port: number): Promise<ImapWire> {
  const { client } = await ImapWire.connect(port);
  await client.login(USER, PASSWORD);
  return client;
}

/**
 * A logged-in bystander that sends NOOP every 20 ms until stopped, and the slowest answer it
 * got; a NOOP still unanswered when stopped counts with its time so far. `baselineMs` is the
 * slowest of the NOOPs it sent before (300 ms, the node idle): on a loaded test machine a NOOP
 * may take a while whatever the server does, so tests allow NOOP_LIMIT_MS on top of it.
 */
export async function bystander(port: number): Promise<{ baselineMs: number; stop(): Promise<{ slowestMs: number; noops: number }> }> {
  const client = await login(port);
  let baselineMs = 0;
  for (const until = performance.now() + 300; performance.now() < until; ) {
    const started = performance.now();
    await client.command('NOOP');
    baselineMs = Math.max(baselineMs, performance.now() - started);
    await sleep(20);
  }
  let running = true;
  let slowest = 0;
  let noops = 0;
  let pendingSince = 0;
  const loop = (async () => {
    while (running) {
      pendingSince = performance.now();
      const reply = await client.command('NOOP');
      assert.match(reply.tagged, / OK /);
      slowest = Math.max(slowest, performance.now() - pendingSince);
      pendingSince = 0;
      noops++;
      await sleep(20);
    }
  })();
  return {
    baselineMs,
    async stop() {
      running = false;
      const waited = pendingSince ? performance.now() - pendingSince : 0;
      await Promise.race([loop, sleep(3000)]);
      client.close();
      return { slowestMs: Math.max(slowest, waited), noops };
    },
  };
}

/** Samples a process's RSS every 25 ms; the highest seen. */
export function rssSampler(proc: QuillProcess): { stop(): number } {
  let peak = proc.rss();
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, proc.rss());
    } catch {
      // the process is gone
    }
  }, 25);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

export const MB = 1024 * 1024;

/** The bystander's slowest NOOP was within NOOP_LIMIT_MS (on top of what it took on the idle node). */
export function assertNoopPrompt(slowestMs: number, baselineMs: number): void {
  assert.ok(slowestMs < NOOP_LIMIT_MS + baselineMs, `another session's NOOP took ${Math.round(slowestMs)} ms (idle: ${Math.round(baselineMs)} ms)`);
}
