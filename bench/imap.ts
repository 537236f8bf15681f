// IMAP benchmark: command throughput and latency with many concurrent clients, a large mailbox, and memory of
// many IDLE sessions plus the time until one APPEND wakes them all; Quillmail from this tree and a private
// Dovecot (Maildir, passwd-file) in the same run, both loaded with the same messages by APPEND over IMAP.
//   node --import tsx bench/imap.ts [--clients 16] [--messages 2000] [--seconds 4] [--large 20000] [--large-tries 3] [--idle 1000]
//        [--only quill|dovecot] [--skip-throughput] [--skip-large] [--skip-idle] [--phase TEXT] [--maildir-load] [--stores sqlite,postgres]
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { arg, flag, fmt, quillEntry, ROOT, sleep, startQuill, summarize, tempDir, treeMemory } from './lib.js';
import { dovecotMissing, startDovecot } from './dovecot.js';
import { startBenchStore, storeKinds } from './pg-stores.js';

const DOMAIN = 'bench.test';
const PASSWORD = 'bench-password';
const USERS = [`load@${DOMAIN}`, `big@${DOMAIN}`, `idle@${DOMAIN}`];
const clients = arg('clients', 16);
const messages = arg('messages', 2000);
const seconds = arg('seconds', 4);
const large = arg('large', 20000);
/** Tries of each large-mailbox command: the median is reported, and the first try apart. */
const largeTries = arg('large-tries', 3);
const idleSessions = arg('idle', 1000);
const onlyIndex = process.argv.indexOf('--only');
const only = onlyIndex >= 0 ? process.argv[onlyIndex + 1] : undefined;

interface Reply {
  status: string;
  untagged: string[];
}

/** A minimal IMAP client over a raw socket: one command at a time, literals in responses skipped by count. */
class ImapClient {
  private buf: Buffer = Buffer.alloc(0);
  private literal = 0;
  private line = '';
  private tag = 0;
  private pending: { tag: string; untagged: string[]; done: (r: Reply) => void } | undefined;
  private continuation: (() => void) | undefined;
  onUntagged: ((line: string) => void) | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.feed(chunk));
  }

  static async open(port: number): Promise<ImapClient> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((done, fail) => {
      socket.once('connect', done);
      socket.once('error', fail);
    });
    socket.on('error', () => undefined);
    const client = new ImapClient(socket);
    await new Promise<void>((done) => {
      client.onUntagged = () => done();
    });
    client.onUntagged = undefined;
    return client;
  }

  static async login(port: number, user: string): Promise<ImapClient> {
    const client = await ImapClient.open(port);
    await client.ok(`LOGIN "${user}" "${PASSWORD}"`);
    return client;
  }

  private feed(chunk: Buffer): void {
    this.buf = this.buf.length > 0 ? Buffer.concat([this.buf, chunk]) : chunk;
    let pos = 0;
    for (;;) {
      if (this.literal > 0) {
        const take = Math.min(this.literal, this.buf.length - pos);
        this.literal -= take;
        pos += take;
        if (this.literal > 0) break;
        continue;
      }
      const end = this.buf.indexOf('\r\n', pos);
      if (end < 0) break;
      const piece = this.buf.toString('latin1', pos, end);
      pos = end + 2;
      const size = /\{(\d+)\+?\}$/.exec(piece);
      if (size) {
        this.line += piece;
        this.literal = Number(size[1]);
        continue;
      }
      const line = this.line + piece;
      this.line = '';
      this.dispatch(line);
    }
    this.buf = pos >= this.buf.length ? Buffer.alloc(0) : this.buf.subarray(pos);
  }

  private dispatch(line: string): void {
    if (line.startsWith('+')) {
      const go = this.continuation;
      this.continuation = undefined;
      go?.();
      return;
    }
    const pending = this.pending;
    if (pending && line.startsWith(pending.tag + ' ')) {
      this.pending = undefined;
      pending.done({ status: line.slice(pending.tag.length + 1), untagged: pending.untagged });
      return;
    }
    if (pending) pending.untagged.push(line);
    this.onUntagged?.(line);
  }

  async command(text: string, literal?: Buffer): Promise<Reply> {
    const tag = `a${++this.tag}`;
    const reply = new Promise<Reply>((done) => {
      this.pending = { tag, untagged: [], done };
    });
    if (literal) {
      const go = new Promise<void>((done) => {
        this.continuation = done;
      });
      this.socket.write(`${tag} ${text} {${literal.length}}\r\n`);
      await go;
      this.socket.write(Buffer.concat([literal, Buffer.from('\r\n')]));
    } else this.socket.write(`${tag} ${text}\r\n`);
    return reply;
  }

  async ok(text: string, literal?: Buffer): Promise<Reply> {
    const reply = await this.command(text, literal);
    if (!reply.status.startsWith('OK')) throw new Error(`${text.slice(0, 60)}: ${reply.status}`);
    return reply;
  }

  /** Starts IDLE; resolves once the server sent its continuation. */
  async idle(): Promise<void> {
    const tag = `a${++this.tag}`;
    this.pending = { tag, untagged: [], done: () => undefined };
    const go = new Promise<void>((done) => {
      this.continuation = done;
    });
    this.socket.write(`${tag} IDLE\r\n`);
    await go;
  }

  close(): void {
    this.socket.end('z LOGOUT\r\n');
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}

function makeMessage(n: number, bytes: number): Buffer {
  const head =
    `From: Sender ${n % 50} <sender${n % 50}@example.org>\r\nTo: <load@${DOMAIN}>\r\nSubject: topic ${n % 100} message ${n}\r\n` +
    `Date: Tue, 24 Nov 2026 10:${String(n % 60).padStart(2, '0')}:00 +0000\r\nMessage-ID: <m${n}@example.org>\r\n` +
    'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n';
  const line = `Line of body text for message ${n}, with some words to search for: alpha beta gamma.\r\n`;
  let body = '';
  while (head.length + body.length + line.length <= bytes) body += line;
  return Buffer.from(head + body, 'latin1');
}

/** Appends `count` messages to user's INBOX over `parallel` connections; returns messages/s. */
async function loadMailbox(port: number, user: string, count: number, parallel: number, size: (n: number) => number): Promise<number> {
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      const client = await ImapClient.login(port, user);
      for (;;) {
        const n = next++;
        if (n >= count) break;
        await client.ok('APPEND INBOX', makeMessage(n, size(n)));
      }
      client.close();
    }),
  );
  return count / ((performance.now() - start) / 1000);
}

interface PhaseResult {
  phase: string;
  ops: number;
  rate: number;
  p50: number;
  p99: number;
  errors: number;
}

const random = (n: number) => Math.floor(Math.random() * n);

async function throughput(port: number): Promise<PhaseResult[]> {
  const sessions = await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = await ImapClient.login(port, USERS[0]!);
      await client.ok('SELECT INBOX');
      return { client, appended: [] as number[] };
    }),
  );
  const all = await sessions[0]!.client.ok('UID SEARCH ALL');
  const uids = (all.untagged.find((l) => l.startsWith('* SEARCH')) ?? '').split(' ').slice(2).map(Number);
  const pick = () => uids[random(uids.length)]!;
  const phases: Array<[string, (s: (typeof sessions)[number]) => Promise<Reply | undefined>]> = [
    ['SELECT INBOX', (s) => s.client.command('SELECT INBOX')],
    ['FETCH 1:* (FLAGS UID)', (s) => s.client.command('FETCH 1:* (FLAGS UID)')],
    ['UID FETCH 10 x BODY.PEEK[HEADER]', (s) => {
      const i = random(Math.max(1, uids.length - 10));
      return s.client.command(`UID FETCH ${uids[i]}:${uids[i + 9] ?? uids[i]} (UID BODY.PEEK[HEADER])`);
    }],
    ['UID FETCH BODY.PEEK[]', (s) => s.client.command(`UID FETCH ${pick()} (UID BODY.PEEK[])`)],
    ['UID SEARCH SUBJECT', (s) => s.client.command(`UID SEARCH SUBJECT "topic ${random(100)} "`)],
    ['UID SEARCH UNSEEN FLAGGED', (s) => s.client.command('UID SEARCH UNSEEN FLAGGED')],
    ['UID STORE +/-FLAGS', (s) => s.client.command(`UID STORE ${pick()} ${Math.random() < 0.5 ? '+' : '-'}FLAGS.SILENT (\\Flagged)`)],
    ['APPEND (4 KB)', async (s) => {
      const reply = await s.client.command('APPEND INBOX', makeMessage(100000 + random(1000), 4096));
      const uid = /APPENDUID \d+ (\d+)/.exec(reply.status);
      if (uid) s.appended.push(Number(uid[1]));
      return reply;
    }],
    ['UID STORE \\Deleted + UID EXPUNGE', async (s) => {
      const uid = s.appended.pop();
      if (uid === undefined) return undefined;
      await s.client.command(`UID STORE ${uid} +FLAGS.SILENT (\\Deleted)`);
      return s.client.command(`UID EXPUNGE ${uid}`);
    }],
  ];
  const results: PhaseResult[] = [];
  // --phase TEXT: only the phases whose name contains TEXT (profiling one command kind).
  const phaseIndex = process.argv.indexOf('--phase');
  const wanted = phaseIndex >= 0 ? process.argv[phaseIndex + 1] : undefined;
  for (const [phase, op] of phases) {
    if (wanted && !phase.includes(wanted)) continue;
    const latencies: number[] = [];
    let errors = 0;
    const end = performance.now() + seconds * 1000;
    const start = performance.now();
    await Promise.all(
      sessions.map(async (s) => {
        while (performance.now() < end) {
          const t = performance.now();
          const reply = await op(s);
          if (reply === undefined) break;
          if (reply.status.startsWith('OK')) latencies.push(performance.now() - t);
          else if (++errors <= 3) console.error(`${phase}: ${reply.status}`);
        }
      }),
    );
    const elapsed = (performance.now() - start) / 1000;
    const sum = summarize(latencies);
    results.push({ phase, ops: sum.count, rate: sum.count / elapsed, p50: sum.p50, p99: sum.p99, errors });
  }
  for (const s of sessions) s.client.close();
  return results;
}

interface LargeResult {
  loadRate: number;
  timings: Array<[string, number]>;
  memoryMb: number;
}

/** Loader of the large mailbox other than APPEND (Dovecot: Maildir files written directly); returns messages/s. */
type LargeLoader = (count: number) => Promise<number>;

async function largeMailbox(port: number, pid: number, loader?: LargeLoader): Promise<LargeResult> {
  const loadRate = loader ? await loader(large) : await loadMailbox(port, USERS[1]!, large, 8, () => 1024);
  const client = await ImapClient.login(port, USERS[1]!);
  // The first run of each command is printed too: it includes building indexes and caches.
  const median = async (text: string) => {
    const times: number[] = [];
    for (let i = 0; i < largeTries; i++) {
      const t = performance.now();
      await client.ok(text);
      times.push(performance.now() - t);
    }
    console.log(`  ${text}: first ${fmt(times[0]!, 1)} ms, then ${times.slice(1).map((t) => fmt(t, 1)).join(', ')} ms`);
    return [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
  };
  const timings: Array<[string, number]> = [];
  for (const text of [
    'SELECT INBOX',
    'FETCH 1:* (FLAGS UID)',
    'UID SEARCH UNSEEN',
    'UID SEARCH SUBJECT "message 12345"',
    `FETCH ${large - 49}:* (UID FLAGS ENVELOPE)`,
    'STATUS INBOX (MESSAGES UNSEEN UIDNEXT)',
  ])
    timings.push([text, await median(text)]);
  const memoryMb = treeMemory(pid).pssKb / 1024;
  client.close();
  return { loadRate, timings, memoryMb };
}

interface IdleResult {
  sessions: number;
  perSessionKb: number;
  baseMb: number;
  wakeAllMs: number;
  wakeP50Ms: number;
  woken: number;
}

async function idleMemory(port: number, pid: number): Promise<IdleResult> {
  await sleep(1000);
  const before = treeMemory(pid).pssKb;
  const sessions: ImapClient[] = [];
  let woken = 0;
  let appendedAt = 0;
  const wakeTimes: number[] = [];
  let wakeDone: (() => void) | undefined;
  let next = 0;
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next++ < idleSessions) {
        const client = await ImapClient.login(port, USERS[2]!);
        await client.ok('SELECT INBOX');
        await client.idle();
        let seen = false;
        client.onUntagged = (line) => {
          if (!seen && / EXISTS$/.test(line)) {
            seen = true;
            wakeTimes.push(performance.now() - appendedAt);
            if (++woken === sessions.length) wakeDone?.();
          }
        };
        sessions.push(client);
      }
    }),
  );
  await sleep(2000);
  const after = treeMemory(pid).pssKb;
  const writer = await ImapClient.login(port, USERS[2]!);
  const allWoken = new Promise<void>((done) => {
    wakeDone = done;
  });
  const t = performance.now();
  appendedAt = t;
  await writer.ok('APPEND INBOX', makeMessage(1, 2048));
  await Promise.race([allWoken, sleep(30_000)]);
  const wakeAllMs = performance.now() - t;
  writer.close();
  for (const s of sessions) s.close();
  await sleep(500);
  const wake = summarize(wakeTimes);
  return { sessions: sessions.length, perSessionKb: (after - before) / sessions.length, baseMb: before / 1024, wakeAllMs, wakeP50Ms: wake.p50, woken };
}

interface ServerResult {
  name: string;
  loadRate: number;
  phases: PhaseResult[];
  large?: LargeResult;
  idle?: IdleResult;
}

/**
 * --maildir-load: the large mailbox is written once as a Maildir (cur/, no flags) and loaded
 * from there, because APPEND into Dovecot runs at ~190 msg/s here (100,000 would take ~9
 * minutes): Quillmail imports it with `quill import maildir` (a second process on the same
 * store, deliveries in group commits), Dovecot gets the files copied into its Maildir and
 * indexes them when the mailbox is first opened (the first SELECT's time).
 */
function writeSourceMaildir(count: number): string {
  const root = join(tempDir('imap-bench-maildir-'), 'Maildir');
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(root, sub), { recursive: true });
  const base = Math.floor(Date.now() / 1000) - count;
  for (let n = 0; n < count; n++) writeFileSync(join(root, 'cur', `${base + n}.M${n}P1.bench:2,`), makeMessage(n, 1024));
  return root;
}

function quillImportLoader(configFile: string, source: string): LargeLoader {
  return async (count) => {
    const start = performance.now();
    const done = spawnSync(process.execPath, [quillEntry(), 'import', 'maildir', USERS[1]!, source, '-c', configFile], { cwd: ROOT, encoding: 'utf8' });
    if (done.status !== 0) throw new Error(`quill import failed: ${done.stderr || done.stdout}`);
    return count / ((performance.now() - start) / 1000);
  };
}

function maildirCopyLoader(maildir: string, source: string): LargeLoader {
  return async (count) => {
    const start = performance.now();
    cpSync(source, maildir, { recursive: true });
    spawnSync('chown', ['-R', '65534:65534', join(maildir, '..')]);
    return count / ((performance.now() - start) / 1000);
  };
}

async function runAgainst(name: string, port: number, pid: () => number, loader?: LargeLoader): Promise<ServerResult> {
  let loadRate = NaN;
  let phases: PhaseResult[] = [];
  if (!flag('skip-throughput')) {
    console.log(`${name}: loading ${messages} messages into ${USERS[0]}`);
    loadRate = await loadMailbox(port, USERS[0]!, messages, clients, (n) => 2048 + (n % 7) * 1024);
    console.log(`${name}: throughput phases, ${clients} clients, ${seconds} s each`);
    phases = await throughput(port);
  }
  let big: LargeResult | undefined;
  if (!flag('skip-large')) {
    console.log(`${name}: large mailbox, ${large} messages`);
    big = await largeMailbox(port, pid(), loader);
  }
  let idle: IdleResult | undefined;
  if (!flag('skip-idle')) {
    console.log(`${name}: ${idleSessions} IDLE sessions`);
    idle = await idleMemory(port, pid());
  }
  return { name, loadRate, phases, large: big, idle };
}

async function main(): Promise<void> {
  const results: ServerResult[] = [];
  const source = flag('maildir-load') && !flag('skip-large') ? writeSourceMaildir(large) : undefined;
  for (const kind of only !== 'dovecot' ? storeKinds(process.argv) : []) {
    const store = await startBenchStore(kind);
    try {
      const quill = await startQuill({ domain: DOMAIN, users: USERS, password: PASSWORD, store: store.url });
      try {
        const loader = source ? quillImportLoader(join(quill.dir, 'quill.yaml'), source) : undefined;
        results.push(await runAgainst(kind === 'sqlite' ? 'quillmail' : `quillmail-${kind}`, quill.ports.imap, () => quill.pid, loader));
      } finally {
        await quill.stop();
      }
    } finally {
      await store.stop();
    }
  }
  if (only !== 'quill') {
    const missing = dovecotMissing();
    if (missing) console.log(`Dovecot skipped: ${missing}. Reporting Quillmail alone.`);
    else {
      const dovecot = await startDovecot(USERS, PASSWORD);
      try {
        const loader = source ? maildirCopyLoader(join(dovecot.dir, 'vmail', USERS[1]!.split('@')[0]!), source) : undefined;
        results.push(await runAgainst('dovecot', dovecot.port, () => dovecot.masterPid()!, loader));
      } finally {
        await dovecot.stop();
      }
    }
  }

  if (source) rmSync(join(source, '..'), { recursive: true, force: true });
  const q = results.find((r) => r.name === 'quillmail');
  const d = results.find((r) => r.name === 'dovecot');
  const names = results.map((r) => r.name);
  if (results.length > 0 && results[0]!.phases.length > 0) printThroughput(results, q, d, names);
  printRest(results, q, d, names);
}

function printThroughput(results: ServerResult[], q: ServerResult | undefined, d: ServerResult | undefined, names: string[]): void {
  console.log(`\nLoad by APPEND (${clients} connections): ${results.map((r) => `${r.name} ${fmt(r.loadRate)} msg/s`).join(', ')}`);
  console.log(`\n| command (${clients} clients, ${messages} messages) | ${names.map((n) => `${n} ops/s | p50 ms | p99 ms`).join(' | ')} |${q && d ? ' throughput ratio q/d |' : ''}`);
  console.log(`|---|${names.map(() => '---|---|---|').join('')}${q && d ? '---|' : ''}`);
  for (let i = 0; i < results[0]!.phases.length; i++) {
    const cells = results.map((r) => {
      const p = r.phases[i]!;
      return `${fmt(p.rate)}${p.errors ? ` (${p.errors} err)` : ''} | ${fmt(p.p50, 2)} | ${fmt(p.p99, 2)}`;
    });
    const ratio = q && d ? ` ${fmt(q.phases[i]!.rate / d.phases[i]!.rate, 2)}x |` : '';
    console.log(`| ${results[0]!.phases[i]!.phase} | ${cells.join(' | ')} |${ratio}`);
  }
}

function printRest(results: ServerResult[], q: ServerResult | undefined, d: ServerResult | undefined, names: string[]): void {
  if (results.length > 0 && results.every((r) => r.large)) {
    console.log(`\nLarge mailbox: ${large} messages of 1 KB (load ${results.map((r) => `${r.name} ${fmt(r.large!.loadRate)} msg/s`).join(', ')})`);
    console.log(`| command (median of ${largeTries}) | ${names.map((n) => `${n} ms`).join(' | ')} |${q && d ? ' ratio q/d |' : ''}`);
    console.log(`|---|${names.map(() => '---|').join('')}${q && d ? '---|' : ''}`);
    for (let i = 0; i < results[0]!.large!.timings.length; i++) {
      const ratio = q && d ? ` ${fmt(q.large!.timings[i]![1] / d.large!.timings[i]![1], 2)}x |` : '';
      console.log(`| ${results[0]!.large!.timings[i]![0]} | ${results.map((r) => fmt(r.large!.timings[i]![1], 1)).join(' | ')} |${ratio}`);
    }
    console.log(`| server PSS after, MB | ${results.map((r) => fmt(r.large!.memoryMb)).join(' | ')} |`);
  }
  if (results.length > 0 && results.every((r) => r.idle)) {
    console.log(`\n| IDLE | ${names.join(' | ')} |`);
    console.log(`|---|${names.map(() => '---|').join('')}`);
    console.log(`| sessions | ${results.map((r) => r.idle!.sessions).join(' | ')} |`);
    console.log(`| PSS per IDLE session, KB | ${results.map((r) => fmt(r.idle!.perSessionKb)).join(' | ')} |`);
    console.log(`| server PSS before, MB | ${results.map((r) => fmt(r.idle!.baseMb)).join(' | ')} |`);
    console.log(`| APPEND to half woken (p50), ms | ${results.map((r) => fmt(r.idle!.wakeP50Ms)).join(' | ')} |`);
    console.log(`| APPEND to all woken, ms | ${results.map((r) => `${fmt(r.idle!.wakeAllMs)} (${r.idle!.woken} woken)`).join(' | ')} |`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
