// Outbound benchmark: M messages handed in over SMTP for a remote domain, relayed to one local sink
// (an smtp-server that accepts and counts), by Quillmail's queue worker and by a private Postfix with
// relayhost set to the sink, in the same run.
//   node --import tsx bench/outbound.ts [--messages 2000] [--connections 10] [--size 10240]
// Reports end-to-end messages/s (first message handed in until the sink has them all).
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import { arg, fmt, sleep, startQuill } from './lib.js';
import { postfixMissing, startPostfix } from './postfix.js';

const DOMAIN = 'bench.test';
const SENDER = `sender@${DOMAIN}`;
const PASSWORD = 'bench-password';
const messages = arg('messages', 2000);
const connections = arg('connections', 10);
const size = arg('size', 10240);

/** The receiving end: accepts everything, keeps nothing, counts. */
class Sink {
  received = 0;
  private server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    // No PTR lookups per connection: the machine has no DNS, and a sink should cost nothing.
    disableReverseLookup: true,
    logger: false,
    size: 50 * 1024 * 1024,
    onData: (stream, _session, callback) => {
      stream.on('data', () => undefined);
      stream.on('end', () => {
        this.received++;
        callback();
      });
    },
  });
  port = 0;

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.port = ((this.server as unknown as { server: { address(): AddressInfo } }).server.address()).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function body(n: number): string {
  const head = `From: ${SENDER}\r\nTo: rcpt${n}@sink.test\r\nSubject: outbound ${n}\r\nMessage-ID: <out-${n}@${DOMAIN}>\r\nDate: Wed, 25 Nov 2026 08:00:00 +0000\r\n\r\n`;
  const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n';
  return head + line.repeat(Math.max(1, Math.ceil((size - head.length) / line.length)));
}

async function run(name: string, port: number, auth: boolean, sink: Sink): Promise<{ rate: number; injectRate: number }> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: connections,
    maxMessages: Infinity,
    ...(auth ? { auth: { user: SENDER, pass: PASSWORD } } : {}),
  });
  const before = sink.received;
  const start = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next < messages) {
        const n = next++;
        await transport.sendMail({ envelope: { from: SENDER, to: [`rcpt${n}@sink.test`] }, raw: body(n) });
      }
    }),
  );
  const injected = performance.now();
  transport.close();
  const deadline = Date.now() + 180_000;
  while (sink.received - before < messages) {
    if (Date.now() > deadline) throw new Error(`${name}: only ${sink.received - before} of ${messages} reached the sink in time`);
    await sleep(20);
  }
  const done = performance.now();
  const rate = messages / ((done - start) / 1000);
  const injectRate = messages / ((injected - start) / 1000);
  console.log(`${name}: ${messages} messages of ${size} bytes relayed in ${fmt((done - start) / 1000, 2)} s: ${fmt(rate)} msg/s end to end (handed in at ${fmt(injectRate)} msg/s)`);
  return { rate, injectRate };
}

async function main(): Promise<void> {
  const sink = new Sink();
  await sink.listen();
  console.log(`outbound: ${messages} messages, ${connections} connections, ${size} bytes, sink on 127.0.0.1:${sink.port}`);

  const quill = await startQuill({
    domain: DOMAIN,
    users: [SENDER],
    password: PASSWORD,
    outbound: ['  enabled: true', '  pollIntervalMs: 100', '  concurrency: 20', '  perDomainConcurrency: 20', '  routes:', `    sink.test: 127.0.0.1:${sink.port}`],
  });
  let ours: { rate: number } | undefined;
  try {
    // Through submission, as a user sends: stored durably in the queue, then relayed by the worker.
    ours = await run('Quillmail', quill.ports.submission, true, sink);
  } finally {
    await quill.stop();
  }

  const missing = postfixMissing();
  if (missing) {
    console.log(`Postfix skipped: ${missing}`);
    return;
  }
  const postfix = await startPostfix(DOMAIN, [SENDER], [
    `relayhost = [127.0.0.1]:${sink.port}`,
    'default_destination_concurrency_limit = 20',
    'smtp_destination_concurrency_limit = 20',
  ]);
  try {
    const theirs = await run('Postfix', postfix.port, false, sink);
    console.log(`ratio Quillmail / Postfix, end-to-end throughput: ${fmt(ours.rate / theirs.rate, 2)}x`);
  } finally {
    await postfix.stop();
    await sink.close();
  }
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(error);
    process.exit(1);
  },
);
