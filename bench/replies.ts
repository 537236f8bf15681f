// Per-command latency of multi-line replies (issue 19): POP3 RETR and TOP, IMAP UID FETCH BODY[],
// one client issuing one command at a time, Quillmail from this tree and a private Dovecot in the same
// run, both loaded with the same messages by IMAP APPEND. A reply that leaves in pieces, its last one
// held by Nagle until the client's delayed ACK, shows as ~40 ms per command here.
//   node --import tsx bench/replies.ts [--messages 100] [--commands 300] [--size 4096] [--only quill|dovecot]
import { connect, type Socket } from 'node:net';
import { arg, fmt, startQuill, summarize } from './lib.js';
import { dovecotMissing, startDovecot } from './dovecot.js';

const DOMAIN = 'bench.test';
const USER = `reader@${DOMAIN}`;
const PASSWORD = 'bench-password';
const messages = arg('messages', 100);
const commands = arg('commands', 300);
const size = arg('size', 4096);
const onlyIndex = process.argv.indexOf('--only');
const only = onlyIndex >= 0 ? process.argv[onlyIndex + 1] : undefined;

/** A line-and-byte reader over a socket: waits until a predicate holds on what came so far. */
class Conn {
  private buffer: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.waiter?.();
    });
  }

  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' }, () => resolve(new Conn(socket)));
      socket.once('error', reject);
    });
  }

  /** Waits until `end(buffer)` gives the length of a complete reply; returns and consumes it. */
  async until(end: (buffer: Buffer) => number): Promise<Buffer> {
    for (;;) {
      const n = end(this.buffer);
      if (n > 0) {
        const reply = this.buffer.subarray(0, n);
        this.buffer = this.buffer.subarray(n);
        return reply;
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = undefined;
    }
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }
}

const lineEnd = (buffer: Buffer) => {
  const i = buffer.indexOf('\r\n');
  return i < 0 ? 0 : i + 2;
};
const multiEnd = (buffer: Buffer) => {
  const i = buffer.indexOf('\r\n.\r\n');
  return i < 0 ? 0 : i + 5;
};
const taggedEnd = (tag: string) => (buffer: Buffer) => {
  const i = buffer.indexOf(`\r\n${tag} `);
  if (i < 0) return buffer.subarray(0, tag.length + 1).toString() === `${tag} ` ? lineEnd(buffer) : 0;
  const end = buffer.indexOf('\r\n', i + 2);
  return end < 0 ? 0 : end + 2;
};

function message(n: number): Buffer {
  const head = `From: <sender@example.org>\r\nTo: <${USER}>\r\nSubject: reply bench ${n}\r\nMessage-ID: <reply-${n}@example.org>\r\n\r\n`;
  const line = 'Body text of a message read back one command at a time, POP3 and IMAP alike. 01\r\n';
  let body = '';
  while (head.length + body.length + line.length <= size) body += line;
  return Buffer.from(head + body, 'latin1');
}

async function imapLogin(port: number): Promise<{ conn: Conn; command(text: string): Promise<Buffer> }> {
  const conn = await Conn.open(port);
  await conn.until(lineEnd);
  let n = 0;
  const command = async (text: string) => {
    const tag = `a${++n}`;
    conn.write(`${tag} ${text}\r\n`);
    const reply = await conn.until(taggedEnd(tag));
    if (!/\r\n?a\d+ OK|^a\d+ OK/.test(reply.toString('latin1'))) throw new Error(`${text}: ${reply.toString('latin1').slice(-200)}`);
    return reply;
  };
  await command(`LOGIN ${USER} ${PASSWORD}`);
  return { conn, command };
}

async function load(port: number): Promise<void> {
  const { conn, command } = await imapLogin(port);
  for (let i = 0; i < messages; i++) {
    const raw = message(i);
    const tag = `ap${i}`;
    conn.write(`${tag} APPEND INBOX {${raw.length}}\r\n`);
    await conn.until(lineEnd); // the continuation
    conn.write(Buffer.concat([raw, Buffer.from('\r\n')]));
    await conn.until(taggedEnd(tag));
  }
  await command('LOGOUT').catch(() => undefined);
  conn.socket.destroy();
}

interface Row {
  server: string;
  command: string;
  p50: number;
  p99: number;
  mean: number;
}

async function timeEach(name: string, server: string, run: (i: number) => Promise<void>): Promise<Row> {
  for (let i = 0; i < 20; i++) await run(i); // warm-up
  const times: number[] = [];
  for (let i = 0; i < commands; i++) {
    const start = process.hrtime.bigint();
    await run(i);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  const s = summarize(times);
  return { server, command: name, p50: s.p50, p99: s.p99, mean: times.reduce((a, b) => a + b, 0) / times.length };
}

async function measure(server: string, imapPort: number, pop3Port: number): Promise<Row[]> {
  await load(imapPort);
  const rows: Row[] = [];
  const pop = await Conn.open(pop3Port);
  await pop.until(lineEnd);
  for (const line of [`USER ${USER}`, `PASS ${PASSWORD}`]) {
    pop.write(`${line}\r\n`);
    const reply = (await pop.until(lineEnd)).toString();
    if (!reply.startsWith('+OK')) throw new Error(`${server} POP3 ${line.split(' ')[0]}: ${reply}`);
  }
  rows.push(
    await timeEach('POP3 RETR', server, async (i) => {
      pop.write(`RETR ${(i % messages) + 1}\r\n`);
      await pop.until(multiEnd);
    }),
  );
  rows.push(
    await timeEach('POP3 TOP n 5', server, async (i) => {
      pop.write(`TOP ${(i % messages) + 1} 5\r\n`);
      await pop.until(multiEnd);
    }),
  );
  pop.write('QUIT\r\n');
  pop.socket.end();
  const { conn, command } = await imapLogin(imapPort);
  await command('SELECT INBOX');
  rows.push(await timeEach('IMAP UID FETCH BODY[]', server, (i) => command(`FETCH ${(i % messages) + 1} BODY.PEEK[]`).then(() => undefined)));
  rows.push(await timeEach('IMAP FETCH FLAGS', server, (i) => command(`FETCH ${(i % messages) + 1} (FLAGS)`).then(() => undefined)));
  await command('LOGOUT').catch(() => undefined);
  conn.socket.destroy();
  return rows;
}

async function main(): Promise<void> {
  console.log(`Per-command replies: ${messages} messages of ${size} bytes, ${commands} commands each, one at a time, client 127.0.0.2`);
  const rows: Row[] = [];
  if (only !== 'dovecot') {
    const quill = await startQuill({ domain: DOMAIN, users: [USER], password: PASSWORD });
    try {
      rows.push(...(await measure('quillmail', quill.ports.imap, quill.ports.pop3)));
    } finally {
      await quill.stop();
    }
  }
  if (only !== 'quill') {
    const missing = dovecotMissing();
    if (missing) console.log(`Dovecot skipped: ${missing}`);
    else {
      const dovecot = await startDovecot([USER], PASSWORD, { pop3: true });
      try {
        rows.push(...(await measure('dovecot', dovecot.port, dovecot.pop3Port!)));
      } finally {
        await dovecot.stop();
      }
    }
  }
  console.log('\n| command | server | p50 ms | p99 ms | mean ms |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.command} | ${r.server} | ${fmt(r.p50, 3)} | ${fmt(r.p99, 3)} | ${fmt(r.mean, 3)} |`);
  for (const q of rows.filter((r) => r.server === 'quillmail')) {
    const d = rows.find((r) => r.server === 'dovecot' && r.command === q.command);
    if (d) console.log(`ratio ${q.command} quillmail/dovecot: p50 ${fmt(q.p50 / d.p50, 2)}x, mean ${fmt(q.mean / d.mean, 2)}x`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
