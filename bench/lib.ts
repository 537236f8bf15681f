// Shared pieces of the benchmarks: starting Quillmail from this tree, process memory, ports, percentiles.
// Benchmarks only touch 127.0.0.1 and clean up their temp dirs and processes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755); // peers drop privileges (nobody, dovenull) and must traverse it
  return dir;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

/** Ports handed out by this process: each once, since the processes given them bind later. */
const handedOut = new Set<number>();

export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((done, fail) => {
      const server = createServer();
      server.once('error', fail);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => done(port));
      });
    });
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

export async function waitForPort(port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((done) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        done(true);
      });
      socket.once('error', () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function summarize(latenciesMs: number[]): { count: number; p50: number; p99: number; max: number } {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return { count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN };
}

/** Every descendant of pid (and pid itself), from /proc. */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(entry));
      parents.set(ppid, list);
    } catch {
      // the process ended while we looked
    }
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const next = todo.pop()!;
    out.push(next);
    todo.push(...(parents.get(next) ?? []));
  }
  return out;
}

/**
 * Memory of a process tree in KB: rss sums every process's RSS (counts shared pages once per process);
 * pss sums proportional set size (shared pages split between sharers), the fairer number for multi-process servers.
 */
export function treeMemory(pid: number): { rssKb: number; pssKb: number; processes: number } {
  let rssKb = 0;
  let pssKb = 0;
  let processes = 0;
  for (const p of processTree(pid)) {
    try {
      const rollup = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      rssKb += Number(/^Rss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
      pssKb += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
      processes++;
    } catch {
      // gone
    }
  }
  return { rssKb, pssKb, processes };
}

/** Samples treeMemory every intervalMs; stop() returns the peak. */
export function memorySampler(pid: () => number | undefined, intervalMs = 250) {
  let peak = { rssKb: 0, pssKb: 0, processes: 0 };
  const timer = setInterval(() => {
    const p = pid();
    if (p === undefined) return;
    const now = treeMemory(p);
    if (now.rssKb > peak.rssKb) peak = { ...now, pssKb: Math.max(now.pssKb, peak.pssKb) };
    else peak.pssKb = Math.max(now.pssKb, peak.pssKb);
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

export interface Quill {
  pid: number;
  ports: { smtp: number; submission: number; pop3: number; imap: number; http: number };
  dir: string;
  stop(): Promise<void>;
}

export interface QuillOptions {
  domain: string;
  users: string[];
  password: string;
  /** imap.processes (default: the config's default). */
  imapProcesses?: number;
  /** YAML lines for the outbound section (default: the worker off). */
  outbound?: string[];
  /** store.url: a postgres:// URL instead of the embedded store (bench/pg-stores.ts). */
  store?: string;
  /**
   * Run as shipped: inbound SPF/DKIM/DMARC checks and reverse lookups on, through the node's
   * resolver asking these DNS servers (dns.servers, e.g. the test DNS server of test/dns-server.ts).
   * Without it both are off (no network).
   */
  dnsServers?: string[];
  /** With dnsServers: inbound.workers (0 judges on the main thread, as before the judge pool). */
  inboundWorkers?: number;
}

/** The newest modification time of a .ts file under dir (0 if none). */
function newestTs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestTs(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

let built = false;

/**
 * The compiled CLI, as `npx quill` runs it (not tsx, whose loader and compile time would count against the
 * server): dist/ is rebuilt first when it is missing or any file under src/ is newer.
 */
export function quillEntry(): string {
  const entry = join(ROOT, 'dist/cli/main.js');
  if (!built) {
    const stale = !existsSync(entry) || newestTs(join(ROOT, 'src')) > statSync(entry).mtimeMs;
    if (stale) {
      const result = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`building dist/ failed: ${result.stdout}${result.stderr}`);
      utimesSync(entry, new Date(), new Date());
    }
    built = true;
  }
  return entry;
}

function quillCli(args: string[]): void {
  const result = spawnSync(process.execPath, [quillEntry(), ...args], { cwd: ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`quill ${args.join(' ')} failed: ${result.stderr || result.stdout}`);
}

/**
 * Quillmail from this tree (dist/, rebuilt first when src/ is newer), on a fresh data dir with the shipped
 * durability (SQLite WAL, synchronous=FULL). The config only lifts per-IP/per-user connection caps and the
 * per-session command rate (one loopback client opens every connection) and, unless options.dnsServers
 * names a DNS server to ask, turns off inbound SPF/DKIM/DMARC DNS checks and reverse lookups (no network).
 */
export async function startQuill(options: QuillOptions): Promise<Quill> {
  const dir = tempDir('quill-bench-');
  const data = join(dir, 'data');
  const ports = { smtp: await freePort(), submission: await freePort(), pop3: await freePort(), imap: await freePort(), http: await freePort() };
  const config = join(dir, 'quill.yaml');
  writeFileSync(
    config,
    [
      'hostname: bench.local',
      `data: ${data}`,
      'log:',
      '  level: warn',
      ...(options.dnsServers
        ? ['dns:', `  servers: [${options.dnsServers.join(', ')}]`, ...(options.inboundWorkers === undefined ? [] : ['inbound:', `  workers: ${options.inboundWorkers}`])]
        : ['smtp:', '  reverseLookup: false', 'inbound:', '  verify: false']),
      'outbound:',
      ...(options.outbound ?? ['  enabled: false']),
      ...(options.store ? ['store:', `  url: ${options.store}`] : []),
      ...(options.imapProcesses === undefined ? [] : ['imap:', `  processes: ${options.imapProcesses}`]),
      'limits:',
      '  connectionsPerIp: 20000',
      '  connections: 20000',
      '  imapConnectionsPerUser: 20000',
      '  imapCommandsPerSecond: 1000000',
      // The protocols are measured, not password hashing (Dovecot here keeps PLAIN passwords).
      '  passwordScryptN: 16384',
      '',
    ].join('\n'),
  );
  const common = ['-c', config];
  quillCli(['domain', 'add', options.domain, ...common]);
  for (const user of options.users) quillCli(['user', 'add', user, '--password', options.password, ...common]);
  const child: ChildProcess = spawn(
    process.execPath,
    [
      // QUILL_NODE_ARGS: extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
      ...(process.env.QUILL_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      quillEntry(),
      'start',
      ...common,
      '--smtp',
      `127.0.0.1:${ports.smtp}`,
      '--submission',
      `127.0.0.1:${ports.submission}`,
      '--pop3',
      `127.0.0.1:${ports.pop3}`,
      '--imap',
      `127.0.0.1:${ports.imap}`,
      '--http',
      `127.0.0.1:${ports.http}`,
    ],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  await waitForPort(ports.smtp);
  await waitForPort(ports.imap);
  return {
    pid: child.pid!,
    ports,
    dir,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const deadline = Date.now() + 15_000;
        while (!exited && Date.now() < deadline) await sleep(100);
        if (!exited) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function has(binary: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${binary}`]).status === 0;
}

export function run(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr}${result.stdout}`);
  return result.stdout;
}

export function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} needs a positive number`);
  return value;
}

export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

export function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a';
}
