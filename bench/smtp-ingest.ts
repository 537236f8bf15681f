// SMTP ingest benchmark: N concurrent connections deliver M messages of --size bytes to local users, against
// Quillmail from this tree and a private Postfix (Maildir) in the same run.
//   node --import tsx bench/smtp-ingest.ts [--connections 20] [--messages 4000] [--size 10240] [--only quill|postfix]
//        [--stores sqlite,postgres,groups2]   (Quillmail on each store: embedded, one PostgreSQL, two groups on two servers)
// Reports messages/s, p50/p99 latency from the end of DATA to the 250, and peak server memory.
// Quillmail runs twice on the embedded store: as shipped ('quillmail-defaults': SPF, DKIM and DMARC
// checks and reverse lookups on, through its resolver asking the test DNS server of
// test/dns-server.ts, which answers after --dns-latency ms and drops --dns-drop of the queries), and
// with verification off ('quillmail'). Messages are DKIM-signed by a key that server publishes;
// clients connect from 127.0.0.2 to 127.0.0.9, never the server's own address.
import { generateKeyPairSync } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { dkimSignature } from '../src/mailauth/sign.js';
import { startDnsServer, type TestDnsServer } from '../test/dns-server.js';
import { arg, fmt, memorySampler, sleep, startQuill, summarize } from './lib.js';
import { startBenchStore, storeKinds } from './pg-stores.js';
import { postfixMissing, startPostfix } from './postfix.js';

const DOMAIN = 'bench.test';
const USERS = Array.from({ length: 10 }, (_, i) => `user${i}@${DOMAIN}`);

const connections = arg('connections', 20);
const messages = arg('messages', 4000);
const size = arg('size', 10240);
/** Unmeasured messages first, so JIT, caches and process pools are warm on both sides. */
const WARMUP = Math.min(200, Math.ceil(messages / 10));
const dnsLatency = process.argv.includes('--dns-latency') ? Number(process.argv[process.argv.indexOf('--dns-latency') + 1]) : 20;
const dnsDrop = process.argv.includes('--dns-drop') ? Number(process.argv[process.argv.indexOf('--dns-drop') + 1]) : 0.02;
const onlyIndex = process.argv.indexOf('--only');
const only = onlyIndex >= 0 ? process.argv[onlyIndex + 1] : undefined;

/** A minimal SMTP client over a raw socket: replies are read in order, multi-line replies joined. */
class SmtpClient {
  private buffer = '';
  private lines: string[] = [];
  private waiting: Array<(reply: string) => void> = [];
  private replies: string[] = [];

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
  }

  static async open(port: number, localAddress: string): Promise<SmtpClient> {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    await new Promise<void>((done, fail) => {
      socket.once('connect', done);
      socket.once('error', fail);
    });
    socket.on('error', () => undefined);
    const client = new SmtpClient(socket);
    client.expect(await client.reply(), '220');
    return client;
  }

  reply(): Promise<string> {
    const ready = this.replies.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((done) => this.waiting.push(done));
  }

  expect(reply: string, code: string): void {
    if (!reply.startsWith(code)) throw new Error(`expected ${code}, got: ${reply}`);
  }

  write(text: string | Buffer): void {
    this.socket.write(text);
  }

  async command(line: string, code: string): Promise<void> {
    this.write(`${line}\r\n`);
    this.expect(await this.reply(), code);
  }

  close(): void {
    this.socket.end('QUIT\r\n');
  }
}

/** The sender domain's key, published by the test DNS server; messages are signed with it. */
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const KEY = { domain: 'example.org', selector: 'bench', privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };

/** The sender domain's records: SPF for the clients' addresses, the DKIM key, a DMARC policy. */
async function startBenchDns(): Promise<TestDnsServer> {
  return startDnsServer({
    zones: ['example.org'],
    latencyMs: dnsLatency,
    dropRate: dnsDrop,
    records: [
      { name: 'example.org', type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
      { name: 'bench._domainkey.example.org', type: 'TXT', data: `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}` },
      { name: '_dmarc.example.org', type: 'TXT', data: 'v=DMARC1; p=reject' },
      { name: 'example.org', type: 'MX', data: '10 mx.example.org' },
      { name: 'mx.example.org', type: 'A', data: '192.0.2.25' },
    ],
  });
}

/** Signed messages, a few per recipient, made once and sent over and over (signing is the sender's cost). */
const signedMessages = new Map<string, Buffer>();
async function prepareMessages(): Promise<void> {
  for (const [i, to] of USERS.entries()) {
    for (let v = 0; v < 4; v++) {
      const raw = makeMessage(to, i * 4 + v, size);
      const signature = await dkimSignature(raw, KEY);
      if ('error' in signature) throw new Error(signature.error);
      signedMessages.set(`${to} ${v}`, Buffer.concat([Buffer.from(signature.header), raw]));
    }
  }
}

/** A message of about `bytes` bytes: headers and 76-column text lines (none starts with a dot). */
function makeMessage(to: string, n: number, bytes: number): Buffer {
  const head =
    `From: Bench Sender <sender@example.org>\r\nTo: <${to}>\r\nSubject: bench message ${n}\r\n` +
    `Date: ${new Date().toUTCString()}\r\nMessage-ID: <bench-${n}-${process.pid}@example.org>\r\n` +
    'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n';
  const line = 'The quick brown fox jumps over the lazy dog, message body text for ingest. 0123\r\n';
  let body = '';
  while (head.length + body.length + line.length <= bytes) body += line;
  body += 'x'.repeat(Math.max(0, bytes - head.length - body.length - 2)) + '\r\n';
  return Buffer.from(head + body, 'latin1');
}

interface Result {
  name: string;
  seconds: number;
  rate: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  peakRssMb: number;
  peakPssMb: number;
  processes: number;
  note?: string;
}

async function load(name: string, port: number, pid: () => number | undefined, total = messages): Promise<Result> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const sampler = memorySampler(pid);
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      const client = await SmtpClient.open(port, `127.0.0.${2 + (c % 8)}`);
      await client.command('EHLO bench.client.example', '250');
      for (;;) {
        const n = next++;
        if (n >= total) break;
        const to = USERS[n % USERS.length]!;
        // RFC 2920 pipelining: MAIL, RCPT and DATA in one write, then the three replies.
        client.write(`MAIL FROM:<sender@example.org> SIZE=${size}\r\nRCPT TO:<${to}>\r\nDATA\r\n`);
        const replies = [await client.reply(), await client.reply(), await client.reply()];
        if (!replies[0]!.startsWith('250') || !replies[1]!.startsWith('250') || !replies[2]!.startsWith('354')) {
          errors++;
          if (errors <= 3) console.error(`${name}: ${replies.join(' | ')}`);
          if (replies[2]!.startsWith('354')) client.write('.\r\n'), await client.reply();
          await client.command('RSET', '250');
          continue;
        }
        client.write(signedMessages.get(`${to} ${Math.floor(n / USERS.length) % 4}`)!);
        const sent = process.hrtime.bigint();
        client.write('.\r\n');
        const reply = await client.reply();
        const ms = Number(process.hrtime.bigint() - sent) / 1e6;
        if (reply.startsWith('250')) latencies.push(ms);
        else {
          errors++;
          if (errors <= 3) console.error(`${name}: ${reply}`);
        }
      }
      client.close();
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const peak = sampler.stop();
  const s = summarize(latencies);
  return {
    name,
    seconds,
    rate: s.count / seconds,
    p50: s.p50,
    p99: s.p99,
    max: s.max,
    errors,
    peakRssMb: peak.rssKb / 1024,
    peakPssMb: peak.pssKb / 1024,
    processes: peak.processes,
  };
}

async function main(): Promise<void> {
  console.log(`SMTP ingest: ${connections} connections, ${messages} messages of ${size} bytes to ${USERS.length} users, 127.0.0.1`);
  const results: Result[] = [];
  await prepareMessages();

  if (only !== 'postfix') {
    // As shipped: every message's SPF, DKIM and DMARC lookups go through the node's resolver.
    const dns = await startBenchDns();
    try {
      const quill = await startQuill({ domain: DOMAIN, users: USERS, password: 'bench-password', dnsServers: [dns.address] });
      try {
        await load('warm-up', quill.ports.smtp, () => quill.pid, WARMUP);
        const asked = dns.totalQueries();
        const result = await load('quillmail-defaults', quill.ports.smtp, () => quill.pid);
        result.note = `inbound checks on; DNS ${dnsLatency} ms, ${dnsDrop * 100}% dropped; ${asked} DNS queries in the warm-up, ${dns.totalQueries() - asked} in the measured run`;
        results.push(result);
      } finally {
        await quill.stop();
      }
    } finally {
      await dns.close();
    }
  }

  const kinds = storeKinds(process.argv);
  for (const kind of only !== 'postfix' ? kinds : []) {
    const store = await startBenchStore(kind);
    try {
      const quill = await startQuill({ domain: DOMAIN, users: USERS, password: 'bench-password', store: store.url });
      try {
        await load('warm-up', quill.ports.smtp, () => quill.pid, WARMUP);
        const result = await load(kind === 'sqlite' ? 'quillmail' : `quillmail-${kind}`, quill.ports.smtp, () => quill.pid);
        // PostgreSQL's own processes do the storing: their memory counts too.
        if (kind !== 'sqlite') result.note = 'memory columns: the Quillmail process only (PostgreSQL servers not counted)';
        else result.note = 'inbound checks and reverse lookups off';
        results.push(result);
      } finally {
        await quill.stop();
      }
    } finally {
      await store.stop();
    }
  }

  if (only !== 'quill') {
    const missing = postfixMissing();
    if (missing) console.log(`Postfix skipped: ${missing}. Reporting Quillmail alone.`);
    else {
      const postfix = await startPostfix(DOMAIN, USERS);
      try {
        await load('warm-up', postfix.port, () => postfix.masterPid(), WARMUP);
        const result = await load('postfix', postfix.port, () => postfix.masterPid());
        // Postfix answers 250 once the queue file is fsynced; virtual(8) writes the Maildir afterwards.
        const drainStart = Date.now();
        while (postfix.delivered() < WARMUP + result.rate * result.seconds && Date.now() - drainStart < 60_000) await sleep(50);
        const drained = (Date.now() - drainStart) / 1000;
        result.note = `${postfix.delivered() - WARMUP} in Maildir ${fmt(drained, 2)} s after the last 250 (end-to-end ${fmt((postfix.delivered() - WARMUP) / (result.seconds + drained))} msg/s)`;
        results.push(result);
      } finally {
        await postfix.stop();
      }
    }
  }

  console.log('\n| server | msgs/s | p50 ms | p99 ms | max ms | errors | peak RSS MB (sum) | peak PSS MB | processes |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of results)
    console.log(`| ${r.name} | ${fmt(r.rate)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.max, 1)} | ${r.errors} | ${fmt(r.peakRssMb)} | ${fmt(r.peakPssMb)} | ${r.processes} |`);
  for (const r of results) if (r.note) console.log(`${r.name}: ${r.note}`);
  const q = results.find((r) => r.name === 'quillmail');
  const p = results.find((r) => r.name === 'postfix');
  for (const r of results.filter((r) => r.name.startsWith('quillmail-') && r.name !== 'quillmail-defaults'))
    if (q) console.log(`ratio ${r.name}/quillmail (sqlite): throughput ${fmt(r.rate / q.rate, 2)}x, p99 latency ${fmt(r.p99 / q.p99, 2)}x`);
  const one = results.find((r) => r.name === 'quillmail-postgres');
  const two = results.find((r) => r.name === 'quillmail-groups2');
  if (one && two) console.log(`ratio 2 groups / 1 group: throughput ${fmt(two.rate / one.rate, 2)}x`);
  if (q && p) console.log(`\nratio quillmail/postfix: throughput ${fmt(q.rate / p.rate, 2)}x, p99 latency ${fmt(q.p99 / p.p99, 2)}x, peak PSS ${fmt(q.peakPssMb / p.peakPssMb, 2)}x`);
  const d = results.find((r) => r.name === 'quillmail-defaults');
  if (d && p) console.log(`ratio quillmail-defaults/postfix: throughput ${fmt(d.rate / p.rate, 2)}x, p99 latency ${fmt(d.p99 / p.p99, 2)}x`);
  if (d && q) console.log(`ratio quillmail-defaults/quillmail (checks on/off): throughput ${fmt(d.rate / q.rate, 2)}x`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
