// A cluster for the chaos and rolling-upgrade tests: a gateway in this process, node processes
// sharing one embedded store, and the SMTP and POP3 clients that load it while faults strike.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import type { Config, ProtocolName } from '../src/config/config.js';
import { openStore } from '../src/server.js';
import type { Store } from '../src/store/types.js';
import { createLogger, silentLogger } from '../src/util/logger.js';
import { hashPassword } from '../src/util/password.js';
import { Pop3Client, Pop3Closed } from './clients/pop3.js';
import { tempDir, testConfig } from './helpers.js';

const run = promisify(execFile);
export const SENDERS = 3;
export const POP3_CLIENTS = 2;

/** What the clients saw. */
export interface Tally {
  acknowledged: string[];
  errors: string[];
  pop3Sessions: number;
  pop3Retrieved: number;
  /** POP3 sessions ended by -ERR [SYS/TEMP] and a close (RFC 3206: allowed, the client retries). */
  pop3TempErrors: number;
  imapFetches: number;
  imapDrops: number;
  /** The longest any one client operation (a delivery, a POP3 command, an IMAP fetch) took, and which. */
  longestStall: { ms: number; what: string };
  /** Operations that took over SLOW_MS: when they started (ms since the tally began), how long, which. */
  slow: { at: number; ms: number; what: string }[];
  started: number;
}

/** An operation this slow is listed by itself (the stall target is under 1 s). */
export const SLOW_MS = 700;

export function tally(): Tally {
  return { acknowledged: [], errors: [], pop3Sessions: 0, pop3Retrieved: 0, pop3TempErrors: 0, imapFetches: 0, imapDrops: 0, longestStall: { ms: 0, what: '' }, slow: [], started: Date.now() };
}

/** Counts an operation's time towards the longest stall. */
export function noteStall(seen: Tally, started: number, what: string): void {
  const ms = Date.now() - started;
  if (ms > seen.longestStall.ms) seen.longestStall = { ms, what };
  if (ms > SLOW_MS) seen.slow.push({ at: started - seen.started, ms, what });
}

/** The longest one client operation may take before the load counts it as hung (an error naming it). */
export const OP_LIMIT_MS = 20_000;

/** `work`, or an error saying what did not finish within `ms` (no wait in a chaos run is unbounded). */
export function bounded<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)));
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/** Waits for every named piece of work; past `ms`, an error naming those still running. */
export async function allWithin(ms: number, named: Record<string, Promise<unknown>[]>): Promise<void> {
  const running = new Set<string>();
  const all = Object.entries(named).flatMap(([name, works]) =>
    works.map((work, i) => {
      const label = works.length > 1 ? `${name}[${i}]` : name;
      running.add(label);
      return work.finally(() => running.delete(label));
    }),
  );
  await bounded(Promise.all(all), ms, 'the load').catch((error: Error) => {
    throw new Error(running.size > 0 ? `${[...running].join(', ')} did not finish within ${ms} ms` : error.message);
  });
}

/** Where the load's clients connect from: not the gateway's (or the nodes') own address. */
export const CLIENT_ADDRESSES = { smtp: '127.0.0.2', pop3: '127.0.0.3' };


export class Pop3Reply extends Error {
  constructor(
    readonly command: string,
    readonly reply: string,
  ) {
    super(`${command || 'greeting'}: ${reply}`);
  }
}

export interface ClusterOptions {
  /** Gateway settings over the kit's own (probes every 200 ms, 1 s to connect). */
  gateway?: Partial<Config['gateway']>;
  /** cluster.secret for the gateway and every node (QUILL_CLUSTER_SECRET). */
  secret?: string;
  /** More command-line arguments for every node (a --config file, say). */
  nodeArgs?: string[];
}

/** Whether `work` settled within `ms`; if not, says so on stderr and stops waiting. */
async function within(ms: number, what: string, work: Promise<unknown> | undefined): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const done = await Promise.race([Promise.resolve(work).then(() => true), late]);
  clearTimeout(timer);
  if (!done) process.stderr.write(`cluster-kit: ${what} did not finish within ${ms} ms\n`);
  return done;
}

export class TestCluster {
  readonly data = tempDir('quill-cluster-');
  readonly nodes = new Map<string, ChildProcess>();
  store!: Store;
  gateway!: RunningGateway;

  constructor(
    readonly ids: string[],
    private readonly protocols: ProtocolName[],
    private readonly options: ClusterOptions = {},
  ) {}

  /** Store with bob and the POP3 readers' users, the nodes, and the gateway once all are up. */
  async start(): Promise<void> {
    const config = testConfig(this.data, {
      gateway: { probeIntervalMs: 200, connectTimeoutMs: 1000, ...this.options.gateway },
      cluster: this.options.secret ? { secret: this.options.secret } : {},
    });
    this.store = await openStore(config);
    await this.store.addDomain('example.com');
    for (const user of ['bob', ...Array.from({ length: POP3_CLIENTS }, (_, i) => `pop${i}`)]) {
      await this.store.addUser({ address: `${user}@example.com`, passwordHash: await hashPassword('pw') });
    }
    for (const id of this.ids) this.startNode(id);
    this.gateway = await startGateway(config, this.store, process.env.QUILL_TEST_LOG ? createLogger(process.env.QUILL_TEST_LOG, 'gateway') : silentLogger(), { id: `gw-${process.pid}`, protocols: this.protocols });
    for (const id of this.ids) await this.waitForNode(id, true);
  }

  async close(): Promise<void> {
    // Teardown is bounded: a gateway or node that does not finish within 15 s is reported on
    // stderr and (a node) killed, so a slow shutdown shows up as a line, not a file timeout.
    await within(15_000, 'gateway close', this.gateway?.close());
    for (const id of this.nodes.keys()) {
      const stopped = await within(15_000, `node ${id} after SIGTERM`, this.stopNode(id, 'SIGTERM'));
      if (!stopped) await this.stopNode(id, 'SIGKILL');
    }
    await this.store?.close();
  }

  startNode(id: string): void {
    const ports = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
    const args = ['--import', 'tsx', 'src/cli/main.ts', 'node', '--id', id, '--data', this.data, '--trusted-gateway', '127.0.0.1', '--log-level', 'error', ...ports, ...(this.options.nodeArgs ?? [])];
    const env = { ...process.env, QUILL_CLUSTER_SECRET: this.options.secret ?? '' };
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], env });
    this.nodes.set(id, child);
  }

  /** Waits until the gateway offers (or no longer offers) the node for every protocol. */
  async waitForNode(id: string, listed: boolean): Promise<void> {
    const end = Date.now() + 60_000;
    for (;;) {
      await this.gateway.directory.refresh();
      const there = this.protocols.every((p) => this.gateway.directory.candidates(p).some((n) => n.id === id));
      if (there === listed) return;
      if (Date.now() > end) throw new Error(`node ${id} ${listed ? 'did not come up' : 'is still listed'}`);
      await sleep(50);
    }
  }

  async stopNode(id: string, signal: NodeJS.Signals): Promise<void> {
    const child = this.nodes.get(id)!;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  /** A node's listening address for a protocol, as it announced it. */
  async nodeAddress(id: string, protocol: ProtocolName): Promise<{ host: string; port: number }> {
    const member = (await this.store.listMembers()).find((m) => m.id === id);
    const address = member?.addresses[protocol];
    if (!address) throw new Error(`node ${id} has no ${protocol} address`);
    const at = address.lastIndexOf(':');
    return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
  }

  /** The quill CLI on this cluster's store. */
  async quill(...args: string[]): Promise<string> {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args, '--data', this.data], { timeout: 30_000 });
    return stdout;
  }

  /** Deliveries until `done()`; each message goes to bob and to one POP3 reader. */
  senders(seen: Tally, done: () => boolean, tag: string): Promise<void>[] {
    return Array.from({ length: SENDERS }, async (_, s) => {
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: this.gateway.port('smtp'), secure: false, ignoreTLS: true, pool: true, maxConnections: 1, localAddress: CLIENT_ADDRESSES.smtp });
      for (let i = 0; !done(); i++) {
        const id = `${tag}-${s}-${i}`;
        const started = Date.now();
        try {
          await bounded(
            transport.sendMail({
              envelope: { from: 'load@elsewhere.test', to: ['bob@example.com', `pop${i % POP3_CLIENTS}@example.com`] },
              raw: `From: load@elsewhere.test\r\nTo: bob@example.com\r\nSubject: ${id}\r\nMessage-ID: <${id}@elsewhere.test>\r\n\r\n${'x'.repeat(1000 + ((i * 7919) % 20_000))}\r\n`,
            }),
            OP_LIMIT_MS,
            'the delivery',
          );
          seen.acknowledged.push(id);
          noteStall(seen, started, `smtp ${id}`);
        } catch (error) {
          seen.errors.push(`smtp ${id}: ${(error as Error).message}`);
        }
      }
      transport.close();
    });
  }

  /** POP3 sessions of STAT, UIDL and RETR until `done()`; each reply is checked. */
  pop3Readers(seen: Tally, done: () => boolean): Promise<void>[] {
    return Array.from({ length: POP3_CLIENTS }, async (_, c) => {
      while (!done()) {
        let wire: Pop3Client | undefined;
        let last = 'connect';
        try {
          const started = Date.now();
          wire = await bounded(Pop3Client.connect(this.gateway.port('pop3'), { localAddress: CLIENT_ADDRESSES.pop3 }), OP_LIMIT_MS, 'a POP3 greeting');
          if (!/^\+OK /.test(wire.greeting)) throw new Pop3Reply('', wire.greeting);
          noteStall(seen, started, `pop${c} greeting`);
          const expect = async (line: string, pattern: RegExp) => {
            last = line;
            const started = Date.now();
            const reply = await bounded(wire!.command(line), OP_LIMIT_MS, 'a POP3 reply');
            if (!pattern.test(reply)) throw new Pop3Reply(line, reply);
            noteStall(seen, started, `pop${c} ${line}`);
            return reply;
          };
          await expect(`USER pop${c}@example.com`, /^\+OK/);
          await expect('PASS pw', /^\+OK maildrop locked/);
          seen.pop3Sessions++;
          for (let round = 0; round < 5 && !done(); round++) {
            const stat = await expect('STAT', /^\+OK \d+ \d+$/);
            const count = Number(stat.split(' ')[1]);
            last = 'UIDL';
            let started = Date.now();
            const uidl = await bounded(wire.multiline('UIDL'), OP_LIMIT_MS, 'a POP3 reply');
            noteStall(seen, started, `pop${c} UIDL`);
            if (!uidl.body) throw new Pop3Reply('UIDL', uidl.status);
            const listed = uidl.body.toString().split('\r\n').filter(Boolean);
            if (listed.length !== count) throw new Pop3Reply('UIDL', `${listed.length} entries for STAT ${count}`);
            if (count > 0) {
              const n = 1 + ((round * 31 + c) % count);
              last = `RETR ${n}`;
              started = Date.now();
              const message = await bounded(wire.multiline(`RETR ${n}`), OP_LIMIT_MS, 'a POP3 reply');
              noteStall(seen, started, `pop${c} RETR`);
              const octets = Number(/^\+OK (\d+) octets/.exec(message.status)?.[1] ?? -1);
              if (!message.body || message.body.length !== octets || !/\r\nSubject: \S+\r\n/.test(message.body.toString('latin1'))) {
                throw new Pop3Reply(`RETR ${n}`, `${message.status} with ${message.body?.length} bytes`);
              }
              seen.pop3Retrieved++;
            }
            await sleep(30);
          }
          await expect('QUIT', /^\+OK/);
        } catch (error) {
          if (error instanceof Pop3Reply && /^-ERR \[SYS\/TEMP\] /.test(error.reply)) seen.pop3TempErrors++;
          else if (error instanceof Pop3Closed) seen.errors.push(`pop${c}: connection closed after ${last}`);
          else seen.errors.push(`pop${c}: ${(error as Error).message}`);
          await sleep(100);
        } finally {
          wire?.destroy();
        }
      }
    });
  }

  async storedSubjects(address: string, pattern: RegExp): Promise<Map<string, number>> {
    const user = (await this.store.getUser(address))!;
    const inbox = (await this.store.getMailbox(user.id, 'INBOX'))!;
    const subjects = new Map<string, number>();
    for (const meta of await this.store.listMessages(inbox.id)) {
      const raw = (await this.store.getBlob(meta.blobHash))!.toString('latin1');
      const subject = pattern.exec(raw)?.[1];
      if (subject) subjects.set(subject, (subjects.get(subject) ?? 0) + 1);
    }
    return subjects;
  }

  async checkStoredOnce(acknowledged: string[], pattern: RegExp): Promise<void> {
    const subjects = await this.storedSubjects('bob@example.com', pattern);
    assert.deepEqual(acknowledged.filter((id) => !subjects.has(id)), [], 'every acknowledged message is stored');
    assert.deepEqual([...subjects].filter(([, n]) => n > 1).map(([id]) => id), [], 'none is stored twice');
  }
}
