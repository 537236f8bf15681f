// Gateway overhead benchmark (issue 5): SMTP ingest and IMAP FETCH throughput straight to a node,
// through `quill gateway`, and through HAProxy in TCP mode doing the same forwarding (PROXY v1
// header to the node), in one run; then the SMTP failover pause: the time from a node's SIGKILL
// to the next message accepted through the gateway, with messages lost or stored twice counted.
//   node --import tsx bench/gateway.ts [--connections 20] [--messages 2000] [--size 10240]
//        [--clients 16] [--seconds 5] [--rounds 3] [--failovers 3] [--no-scale] [--pin] [--pipe]
// The nodes run as shipped (inbound SPF/DKIM/DMARC checks and reverse lookups on), their resolver
// asking the test DNS server of test/dns-server.ts (20 ms, 2% of queries dropped); --checks-off
// turns both off, as before, for the row beside it.
// Clients connect from 127.0.0.2 so that the node, which trusts 127.0.0.1 (the gateway and
// HAProxy) to send a PROXY header, takes them as ordinary clients when they come straight.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.js';
import { openStore } from '../src/server.js';
import type { Store } from '../src/store/types.js';
import { startDnsServer } from '../test/dns-server.js';
import { arg, fmt, freePort, has, quillEntry, ROOT, sleep, summarize, tempDir, waitForPort } from './lib.js';

const DOMAIN = 'bench.test';
const PASSWORD = 'bench-password';
const USERS = Array.from({ length: 10 }, (_, i) => `user${i}@${DOMAIN}`);
const READER = `reader@${DOMAIN}`;
const CLIENT_ADDRESS = '127.0.0.2';

const connections = arg('connections', 20);
const messages = arg('messages', 2000);
const size = arg('size', 10240);
const clients = arg('clients', 16);
const seconds = arg('seconds', 5);
const rounds = arg('rounds', 3);
const failovers = arg('failovers', 3);
/** --no-scale skips the runs with 1, 2 and 3 nodes. */
const scale = !process.argv.includes('--no-scale');
const withPipe = process.argv.includes('--pipe');
const checksOff = process.argv.includes('--checks-off');

type Ports = Record<'smtp' | 'submission' | 'pop3' | 'imap' | 'http', number>;

async function freePorts(): Promise<Ports> {
  return { smtp: await freePort(), submission: await freePort(), pop3: await freePort(), imap: await freePort(), http: await freePort() };
}

function portArgs(ports: Ports): string[] {
  return Object.entries(ports).flatMap(([name, port]) => [`--${name}`, `127.0.0.1:${port}`]);
}

function quillCli(args: string[]): void {
  const result = spawnSync(process.execPath, [quillEntry(), ...args], { cwd: ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`quill ${args.join(' ')} failed: ${result.stderr || result.stdout}`);
}

class Proc {
  private exited = false;
  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.once('exit', () => (this.exited = true));
  }
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.exited) return;
    const done = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await done;
    clearTimeout(timer);
  }
}

/**
 * --pin: the load generator and the nodes on CPU 0, the gateway and HAProxy on CPU 1, as when the
 * forwarder has a machine of its own (on 2 cores the three processes otherwise take CPU from each other).
 */
const pin = process.argv.includes('--pin');
function pinned(cpu: number, command: string, args: string[]): [string, string[]] {
  return pin ? ['taskset', ['-c', String(cpu), command, ...args]] : [command, args];
}

/**
 * BENCH_PROFILE=NAME (e.g. gateway) writes a V8 CPU profile of that process (into BENCH_PROFILE_DIR or the
 * current directory); with BENCH_PERF=1 it runs with --perf-basic-prof instead, for `perf record -p PID`.
 */
function quillProcess(name: string, args: string[]): Proc {
  const profile =
    process.env.BENCH_PROFILE !== name ? [] : process.env.BENCH_PERF ? ['--perf-basic-prof'] : ['--cpu-prof', '--cpu-prof-dir=' + (process.env.BENCH_PROFILE_DIR ?? process.cwd())];
  const [command, argv] = pinned(name === 'gateway' ? 1 : 0, process.execPath, [...profile, quillEntry(), ...args]);
  const child = spawn(command, argv, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  return new Proc(name, child);
}

/** A minimal SMTP client: replies read in order, multi-line replies joined. */
class SmtpClient {
  private buffer = '';
  private lines: string[] = [];
  private waiting: Array<(reply: string) => void> = [];
  private replies: string[] = [];
  closed = false;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('latin1');
      let end: number;
      while ((end = this.buffer.indexOf('\r\n')) >= 0) {
        const line = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        this.lines.push(line);
        if (line[3] !== '-') {
          const reply = this.lines.join('\n');
          this.lines = [];
          const waiter = this.waiting.shift();
          if (waiter) waiter(reply);
          else this.replies.push(reply);
        }
      }
    });
    socket.on('close', () => {
      this.closed = true;
      for (const waiter of this.waiting.splice(0)) waiter('closed');
    });
  }

  static async open(port: number): Promise<SmtpClient> {
    const socket = connect({ port, host: '127.0.0.1', localAddress: CLIENT_ADDRESS });
    await new Promise<void>((done, fail) => {
      socket.once('connect', done);
      socket.once('error', fail);
    });
    socket.on('error', () => undefined);
    const client = new SmtpClient(socket);
    expect(await client.reply(), '220');
    return client;
  }

  reply(): Promise<string> {
    const ready = this.replies.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve('closed');
    return new Promise((done) => this.waiting.push(done));
  }

  write(text: string | Buffer): void {
    this.socket.write(text);
  }

  async command(line: string, code: string): Promise<void> {
    this.write(`${line}\r\n`);
    expect(await this.reply(), code);
  }

  close(): void {
    this.socket.end('QUIT\r\n');
  }
}

function expect(reply: string, code: string): void {
  if (!reply.startsWith(code)) throw new Error(`expected ${code}, got: ${reply}`);
}

function makeMessage(to: string, subject: string, bytes: number): Buffer {
  const head = `From: <sender@example.org>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@example.org>\r\n\r\n`;
  const line = 'The quick brown fox jumps over the lazy dog, message body text for ingest. 0123\r\n';
  let body = '';
  while (head.length + body.length + line.length <= bytes) body += line;
  return Buffer.from(head + body, 'latin1');
}

/** Messages/s over `connections` pipelining connections (RFC 2920). */
async function smtpIngest(port: number, total: number, tag: string, watch: Proc[] = []): Promise<{ rate: number; p99: number; errors: number; cpu: string }> {
  const meter = cpuMeter(watch);
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      const client = await SmtpClient.open(port);
      await client.command('EHLO bench.client.example', '250');
      for (;;) {
        const n = next++;
        if (n >= total) break;
        const to = USERS[n % USERS.length]!;
        client.write(`MAIL FROM:<sender@example.org>\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
        const replies = [await client.reply(), await client.reply(), await client.reply()];
        if (!replies[0]!.startsWith('250') || !replies[1]!.startsWith('250') || !replies[2]!.startsWith('354')) {
          if (++errors <= 3) console.error(`smtp ${tag}: ${replies.join(' | ')}`);
          if (client.closed) return;
          if (replies[2]!.startsWith('354')) client.write('.\r\n'), await client.reply();
          await client.command('RSET', '250');
          continue;
        }
        client.write(makeMessage(to, `${tag}-${n}`, size));
        const sent = performance.now();
        client.write('.\r\n');
        const reply = await client.reply();
        if (reply.startsWith('250')) latencies.push(performance.now() - sent);
        else if (++errors <= 3) console.error(`smtp ${tag}: ${reply}`);
      }
      client.close();
    }),
  );
  const rate = latencies.length / ((performance.now() - start) / 1000);
  const cpu = meter(latencies.length);
  const s = summarize(latencies);
  return { rate, p99: s.p99, errors, cpu };
}

/** A minimal IMAP client: one command at a time, literals skipped by their count. */
class ImapClient {
  private buffer: Buffer = Buffer.alloc(0);
  private tag = 0;
  private pending: { tag: string; done: (status: string) => void } | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.parse();
    });
    socket.on('close', () => this.pending?.done('closed'));
  }

  private literal = 0;
  private greeted: (() => void) | undefined;

  private parse(): void {
    for (;;) {
      if (this.literal > 0) {
        const take = Math.min(this.literal, this.buffer.length);
        this.buffer = this.buffer.subarray(take);
        this.literal -= take;
        if (this.literal > 0) return;
      }
      const end = this.buffer.indexOf('\r\n');
      if (end < 0) return;
      const line = this.buffer.subarray(0, end).toString('latin1');
      this.buffer = this.buffer.subarray(end + 2);
      const literal = /\{(\d+)\}$/.exec(line);
      if (literal) this.literal = Number(literal[1]);
      if (this.greeted && line.startsWith('* ')) {
        const greeted = this.greeted;
        this.greeted = undefined;
        greeted();
      } else if (this.pending && line.startsWith(`${this.pending.tag} `)) {
        const pending = this.pending;
        this.pending = undefined;
        pending.done(line.slice(pending.tag.length + 1));
      }
    }
  }

  static async login(port: number, user: string): Promise<ImapClient> {
    const socket = connect({ port, host: '127.0.0.1', localAddress: CLIENT_ADDRESS });
    await new Promise<void>((done, fail) => {
      socket.once('connect', done);
      socket.once('error', fail);
    });
    socket.on('error', () => undefined);
    const client = new ImapClient(socket);
    await new Promise<void>((done) => (client.greeted = done));
    await client.ok(`LOGIN ${user} ${PASSWORD}`);
    return client;
  }

  command(line: string | [string, Buffer]): Promise<string> {
    const tag = `a${++this.tag}`;
    return new Promise((done) => {
      this.pending = { tag, done };
      if (typeof line === 'string') this.socket.write(`${tag} ${line}\r\n`);
      else this.socket.write(Buffer.concat([Buffer.from(`${tag} ${line[0]} {${line[1].length}+}\r\n`), line[1], Buffer.from('\r\n')]));
    });
  }

  async ok(line: string | [string, Buffer]): Promise<string> {
    const status = await this.command(line);
    if (!status.startsWith('OK')) throw new Error(`${typeof line === 'string' ? line : line[0]}: ${status}`);
    return status;
  }

  close(): void {
    this.socket.end('z LOGOUT\r\n');
  }
}

/** CPU time (ms) a process has used so far, in user and system mode; zeros when it cannot be read (not Linux). */
function cpuMs(pid: number | undefined): { user: number; system: number } {
  try {
    // /proc/PID/stat: fields 14 and 15 are utime and stime in clock ticks (100 a second on Linux).
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
    return { user: Number(fields[11]) * 10, system: Number(fields[12]) * 10 };
  } catch {
    return { user: 0, system: 0 };
  }
}

/**
 * Starts counting the CPU of this process (the load generator) and of each watched process; the
 * result gives each one's CPU per 1,000 operations: what each hop costs, apart from the machine's share.
 */
function cpuMeter(watch: Proc[]): (operations: number) => string {
  const before = watch.map((p) => cpuMs(p.child.pid));
  const load = process.cpuUsage();
  return (operations) => {
    const perThousand = (ms: number) => fmt((ms / Math.max(1, operations)) * 1000);
    // Total and the part in the kernel (the socket reads and writes, on loopback the receiver's TCP work too).
    const both = (user: number, system: number) => `${perThousand(user + system)} ms (sys ${perThousand(system)})`;
    const used = process.cpuUsage(load);
    // The load generator's own share too: on shared cores, what the machine has left for the hops.
    return [
      `load ${both(used.user / 1000, used.system / 1000)}`,
      ...watch.map((p, i) => {
        const now = cpuMs(p.child.pid);
        return `${p.name} ${both(now.user - before[i]!.user, now.system - before[i]!.system)}`;
      }),
    ].join(', ');
  };
}

/** UID FETCH BODY.PEEK[] of random messages by `clients` sessions for `seconds`: fetches/s. */
async function imapFetch(port: number, uids: number[], forSeconds = seconds, watch: Proc[] = []): Promise<{ rate: number; p99: number; errors: number; cpu: string }> {
  const sessions = await Promise.all(Array.from({ length: clients }, () => ImapClient.login(port, READER)));
  for (const s of sessions) await s.ok('SELECT INBOX');
  const meter = cpuMeter(watch);
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + forSeconds * 1000;
  await Promise.all(
    sessions.map(async (s) => {
      while (performance.now() < end) {
        const t = performance.now();
        const status = await s.command(`UID FETCH ${uids[Math.floor(Math.random() * uids.length)]} (UID BODY.PEEK[])`);
        if (status.startsWith('OK')) latencies.push(performance.now() - t);
        else if (++errors <= 3) console.error(`imap: ${status}`);
        if (status === 'closed') return;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const cpu = meter(latencies.length);
  for (const s of sessions) s.close();
  const sum = summarize(latencies);
  return { rate: sum.count / elapsed, p99: sum.p99, errors, cpu };
}

function haproxyConfig(dir: string, routes: Array<{ name: string; listen: number; node: number }>): string {
  const file = join(dir, 'haproxy.cfg');
  const lines = ['global', '  maxconn 4000', 'defaults', '  mode tcp', '  timeout connect 2s', '  timeout client 60s', '  timeout server 60s'];
  for (const route of routes) {
    lines.push(`listen ${route.name}`, `  bind 127.0.0.1:${route.listen}`, `  server node 127.0.0.1:${route.node} send-proxy`);
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** Waits for fresh heartbeats of the nodes, from processes started after `since`. */
async function waitForMembers(store: Store, ids: string[], since = new Date(0)): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const members = await store.listMembers();
    const up = (id: string) => members.some((m) => m.id === id && m.state === 'active' && Date.now() - m.beatAt.getTime() < 3000 && m.startedAt >= since);
    if (ids.every(up)) return;
    if (Date.now() > deadline) throw new Error(`nodes ${ids.join(', ')} did not come up`);
    await sleep(200);
  }
}

async function main(): Promise<void> {
  // This process is the load generator: with --pin it shares CPU 0 with the nodes (every thread of it).
  if (pin && spawnSync('taskset', ['-a', '-pc', '0', String(process.pid)]).status !== 0) throw new Error('--pin needs taskset (util-linux)');
  if (!has('haproxy')) throw new Error('haproxy is not installed (apt-get install -y haproxy)');
  const dir = tempDir('quill-bench-gw-');
  const data = join(dir, 'data');
  const configFile = join(dir, 'quill.yaml');
  const dns = checksOff
    ? undefined
    : await startDnsServer({
        zones: ['example.org'],
        latencyMs: 20,
        dropRate: 0.02,
        records: [
          { name: 'example.org', type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
          { name: '_dmarc.example.org', type: 'TXT', data: 'v=DMARC1; p=none' },
        ],
      });
  console.log(dns ? `nodes as shipped: inbound checks on, DNS ${dns.address} (20 ms, 2% dropped)` : 'nodes with inbound checks and reverse lookups off');
  writeFileSync(
    configFile,
    [
      'hostname: bench.local',
      `data: ${data}`,
      'log:',
      '  level: warn',
      ...(dns ? ['dns:', `  servers: [${dns.address}]`] : ['smtp:', '  reverseLookup: false', 'inbound:', '  verify: false']),
      'outbound:',
      '  enabled: false',
      'trustedGateways: [127.0.0.1]',
      'gateway:',
      '  probeIntervalMs: 250',
      '  connectTimeoutMs: 1000',
      '  sessionsPerIp: 20000',
      '  connectsPerIpPerMinute: 1000000',
      'limits:',
      '  connectionsPerIp: 20000',
      '  connections: 20000',
      '  imapConnectionsPerUser: 20000',
      '  imapCommandsPerSecond: 1000000',
      '',
    ].join('\n'),
  );
  const common = ['-c', configFile];
  quillCli(['domain', 'add', DOMAIN, ...common]);
  for (const user of [...USERS, READER]) quillCli(['user', 'add', user, '--password', PASSWORD, ...common]);
  const store = await openStore(loadConfig(configFile));
  const procs: Proc[] = [];
  try {
    const nodePorts = await freePorts();
    const node = quillProcess('node', ['node', '--id', 'bench-n1', ...common, ...portArgs(nodePorts)]);
    procs.push(node);
    const gatewayPorts = await freePorts();
    const gateway = quillProcess('gateway', ['gateway', '--id', 'bench-gw', ...common, ...portArgs(gatewayPorts)]);
    procs.push(gateway);
    const haPorts = { smtp: await freePort(), imap: await freePort() };
    const haproxy = new Proc(
      'haproxy',
      spawn(...pinned(1, 'haproxy', ['-db', '-f', haproxyConfig(dir, [{ name: 'smtp', listen: haPorts.smtp, node: nodePorts.smtp }, { name: 'imap', listen: haPorts.imap, node: nodePorts.imap }])]), {
        stdio: ['ignore', 'ignore', 'inherit'],
      }),
    );
    procs.push(haproxy);
    // --pipe: also a bare Node.js pipe (bench/pipe-forwarder.ts), the floor for any forwarder written in Node.
    const pipePorts = { smtp: await freePort(), imap: await freePort() };
    if (withPipe) {
      const [command, argv] = pinned(1, process.execPath, ['--import', 'tsx', join(ROOT, 'bench/pipe-forwarder.ts'), String(pipePorts.smtp), String(nodePorts.smtp), String(pipePorts.imap), String(nodePorts.imap)]);
      procs.push(new Proc('node pipe', spawn(command, argv, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })));
    }
    await waitForMembers(store, ['bench-n1']);
    for (const port of [nodePorts.smtp, gatewayPorts.smtp, gatewayPorts.imap, haPorts.smtp, haPorts.imap, ...(withPipe ? [pipePorts.smtp, pipePorts.imap] : [])]) await waitForPort(port);
    await sleep(1000); // the gateway's first probes

    const paths = [
      { name: 'direct', smtp: nodePorts.smtp, imap: nodePorts.imap, watch: [node] },
      { name: 'quill gateway', smtp: gatewayPorts.smtp, imap: gatewayPorts.imap, watch: [node, gateway] },
      { name: 'haproxy', smtp: haPorts.smtp, imap: haPorts.imap, watch: [node, haproxy] },
      ...(withPipe ? [{ name: 'node pipe', smtp: pipePorts.smtp, imap: pipePorts.imap, watch: [node, procs.at(-1)!] }] : []),
    ];
    console.log(`Gateway overhead: SMTP ${connections} connections x ${messages} messages of ${size} B; IMAP ${clients} sessions x ${seconds} s of UID FETCH BODY.PEEK[] (4 KB); ${rounds} rounds`);

    // The reader's mailbox, loaded straight on the node.
    const loader = await ImapClient.login(nodePorts.imap, READER);
    const uids: number[] = [];
    for (let i = 0; i < 500; i++) {
      const status = await loader.ok(['APPEND INBOX', makeMessage(READER, `fetch-${i}`, 4096)]);
      const uid = /APPENDUID \d+ (\d+)/.exec(status);
      if (uid) uids.push(Number(uid[1]));
    }
    loader.close();
    for (const path of paths) {
      await smtpIngest(path.smtp, 200, `warm-${path.name.replace(/\W/g, '')}`);
      await imapFetch(path.imap, uids, 1);
    }

    const smtp = new Map<string, number[]>();
    const imap = new Map<string, number[]>();
    for (let round = 1; round <= rounds; round++) {
      // Each round starts with another path, so none always runs first (or last) on a busy machine.
      for (const path of [...paths.slice((round - 1) % paths.length), ...paths.slice(0, (round - 1) % paths.length)]) {
        const s = await smtpIngest(path.smtp, messages, `r${round}-${path.name.replace(/\W/g, '')}`, path.watch);
        const i = await imapFetch(path.imap, uids, seconds, path.watch);
        smtp.set(path.name, [...(smtp.get(path.name) ?? []), s.rate]);
        imap.set(path.name, [...(imap.get(path.name) ?? []), i.rate]);
        console.log(
          `round ${round}  ${path.name.padEnd(14)} SMTP ${fmt(s.rate)} msg/s (p99 ${fmt(s.p99, 2)} ms, ${s.errors} errors; CPU per 1,000: ${s.cpu})   IMAP FETCH ${fmt(i.rate)} /s (p99 ${fmt(i.p99, 2)} ms, ${i.errors} errors; CPU per 1,000: ${i.cpu})`,
        );
      }
    }
    const total = (values: number[]) => values.reduce((a, b) => a + b, 0);
    const direct = { smtp: total(smtp.get('direct')!), imap: total(imap.get('direct')!) };
    for (const path of paths.slice(1)) {
      console.log(
        `${path.name} / direct: SMTP ${fmt(total(smtp.get(path.name)!) / direct.smtp, 2)}x   IMAP FETCH ${fmt(total(imap.get(path.name)!) / direct.imap, 2)}x   (per round: SMTP ${smtp
          .get(path.name)!
          .map((v, r) => fmt(v / smtp.get('direct')![r]!, 2))
          .join(', ')}; IMAP ${imap
          .get(path.name)!
          .map((v, r) => fmt(v / imap.get('direct')![r]!, 2))
          .join(', ')})`,
      );
    }

    // Scaling: the same loads through the gateway with 1, 2 and 3 nodes on this machine (all
    // sharing the one SQLite store); the extra nodes leave again before the failover part.
    if (scale) {
      const extra: Proc[] = [];
      for (let count = 1; count <= 3; count++) {
        if (count > 1) {
          const id = `bench-s${count}`;
          const proc = quillProcess(id, ['node', '--id', id, ...common, ...portArgs(await freePorts())]);
          extra.push(proc);
          procs.push(proc);
          await waitForMembers(store, ['bench-n1', ...extra.map((p) => p.name)]);
          await sleep(1000); // the gateway's probes find the new node
        }
        const s = await smtpIngest(gatewayPorts.smtp, messages, `scale${count}`);
        const i = await imapFetch(gatewayPorts.imap, uids);
        console.log(`scaling  ${count} node${count > 1 ? 's' : ' '} through the gateway  SMTP ${fmt(s.rate)} msg/s (p99 ${fmt(s.p99, 2)} ms, ${s.errors} errors)   IMAP FETCH ${fmt(i.rate)} /s (p99 ${fmt(i.p99, 2)} ms, ${i.errors} errors)`);
      }
      for (const proc of extra) await proc.stop();
      await sleep(1500);
    }

    // Failover: a second node; one sender through the gateway, one message at a time; the node
    // its session is on is killed, and the pause is the time from the kill to the next 250.
    const secondPorts = await freePorts();
    const standby = quillProcess('node-2', ['node', '--id', 'bench-n2', ...common, ...portArgs(secondPorts)]);
    procs.push(standby);
    await waitForMembers(store, ['bench-n1', 'bench-n2']);
    await sleep(1000);
    const nodes = new Map<string, { proc: Proc; ports: Ports }>([
      ['bench-n1', { proc: node, ports: nodePorts }],
      ['bench-n2', { proc: standby, ports: secondPorts }],
    ]);
    const acked: string[] = [];
    const pauses: number[] = [];
    let sending = true;
    let lastAck = 0;
    const ackTimes: number[] = [];
    const sender = (async () => {
      const client = await SmtpClient.open(gatewayPorts.smtp);
      await client.command('EHLO failover.example', '250');
      for (let n = 0; sending; n++) {
        const subject = `failover-${n}`;
        client.write(`MAIL FROM:<sender@example.org>\r\nRCPT TO:<${USERS[0]}>\r\nDATA\r\n`);
        const replies = [await client.reply(), await client.reply(), await client.reply()];
        if (!replies.every((r, i) => r.startsWith(i === 2 ? '354' : '250'))) throw new Error(`failover sender: ${replies.join(' | ')}`);
        client.write(makeMessage(USERS[0]!, subject, 2048));
        client.write('.\r\n');
        const reply = await client.reply();
        if (!reply.startsWith('250')) throw new Error(`failover sender: ${reply}`);
        acked.push(subject);
        lastAck = performance.now();
        ackTimes.push(lastAck);
      }
      client.close();
    })();
    // A failed sender ends the run through the cleanup below, not as an unhandled rejection.
    let senderError: unknown;
    const senderDone = sender.catch((error: unknown) => {
      senderError = error;
    });
    for (let f = 0; f < failovers && !senderError; f++) {
      await sleep(1500);
      // The node with the open SMTP session, from the heartbeats' connection counts.
      let victim: string | undefined;
      for (let tries = 0; tries < 30 && !victim; tries++) {
        const members = await store.listMembers();
        victim = members.find((m) => nodes.has(m.id) && (m.load.connections.smtp ?? 0) > 0)?.id;
        if (!victim) await sleep(200);
      }
      if (!victim) throw new Error('no node reports the SMTP session');
      const { proc, ports } = nodes.get(victim)!;
      const killedAt = performance.now();
      await proc.stop('SIGKILL');
      while (!ackTimes.some((t) => t > killedAt) && !senderError) await sleep(1);
      if (senderError) break;
      pauses.push(ackTimes.find((t) => t > killedAt)! - killedAt);
      const restartedAt = new Date();
      const restarted = quillProcess(victim, ['node', '--id', victim, ...common, ...portArgs(ports)]);
      procs.push(restarted);
      nodes.set(victim, { proc: restarted, ports });
      await waitForMembers(store, [victim], restartedAt);
      await waitForPort(ports.smtp);
    }
    sending = false;
    await senderDone;
    if (senderError) throw senderError;
    const stored = new Map<string, number>();
    const user = (await store.getUser(USERS[0]!))!;
    const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
    for (const meta of await store.listMessages(inbox.id)) {
      const subject = /\r\nSubject: (failover-\d+)\r\n/.exec(`\r\n${(await store.getBlob(meta.blobHash))!.toString('latin1')}`)?.[1];
      if (subject) stored.set(subject, (stored.get(subject) ?? 0) + 1);
    }
    const lost = acked.filter((s) => !stored.has(s)).length;
    const twice = [...stored.values()].filter((n) => n > 1).length;
    const gaps = ackTimes.slice(1).map((t, i) => t - ackTimes[i]!);
    console.log(
      `SMTP failover through the gateway: ${failovers} SIGKILLs, pause from kill to next 250: ${pauses.map((p) => fmt(p, 0)).join(', ')} ms (max ${fmt(Math.max(...pauses), 0)} ms); ` +
        `longest gap between 250s ${fmt(Math.max(...gaps), 0)} ms; typical ${fmt(summarize(gaps).p50, 1)} ms; ${acked.length} messages acknowledged, ${lost} lost, ${twice} stored twice`,
    );
  } finally {
    for (const proc of procs.reverse()) await proc.stop();
    await store.close();
    await dns?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
