// Webmail API latency on a large mailbox: Quillmail from this tree (a child process, embedded SQLite),
// N messages imported with `quill import maildir`, then one logged-in HTTP client times the calls the
// web app makes when a user opens the mailbox, pages through it, searches it and opens a message.
//   node --import tsx bench/webmail.ts [--messages 10000] [--tries 20]
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { arg, fmt, quillEntry, ROOT, startQuill, summarize, tempDir, treeMemory } from './lib.js';

const count = arg('messages', 10000);
const tries = arg('tries', 20);
const USER = 'big@bench.test';
const PASSWORD = 'bench-password';

/** A 1 KB text message with its own subject and sender, dated n minutes after a base. */
function message(n: number): string {
  const date = new Date(Date.UTC(2026, 0, 1) + n * 60_000).toUTCString().replace('GMT', '+0000');
  const body = `Message ${n} of the webmail benchmark.\r\n`.repeat(20);
  return `From: Sender ${n % 97} <sender${n % 97}@example.org>\r\nTo: ${USER}\r\nSubject: message ${n} about topic ${n % 31}\r\nDate: ${date}\r\nMessage-ID: <${n}@bench.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}`;
}

interface Reply {
  status: number;
  body: string;
  cookie?: string;
}

function request(port: number, method: string, path: string, cookie?: string, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      { host: '127.0.0.1', port, method, path, agent: keepAlive, headers: { ...(cookie ? { cookie } : {}), ...(data ? { 'content-type': 'application/json' } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), cookie: res.headers['set-cookie']?.[0]?.split(';')[0] }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });

async function main(): Promise<void> {
  const quill = await startQuill({ domain: 'bench.test', users: [USER], password: PASSWORD });
  try {
    const source = join(tempDir('webmail-bench-'), 'Maildir');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(source, sub), { recursive: true });
    for (let n = 0; n < count; n++) writeFileSync(join(source, 'cur', `${1_700_000_000 + n}.M${n}P1.bench:2,${n % 3 === 0 ? 'S' : ''}`), message(n));
    const start = performance.now();
    const imported = spawnSync(process.execPath, [quillEntry(), 'import', 'maildir', USER, source, '-c', join(quill.dir, 'quill.yaml')], { cwd: ROOT, encoding: 'utf8' });
    if (imported.status !== 0) throw new Error(`quill import failed: ${imported.stderr || imported.stdout}`);
    console.log(`${count} messages of ~1 KB imported in ${fmt((performance.now() - start) / 1000, 1)} s`);

    const login = await request(quill.ports.http, 'POST', '/api/login', undefined, { address: USER, password: PASSWORD });
    if (login.status !== 200 || !login.cookie) throw new Error(`login failed: ${login.status} ${login.body}`);
    const cookie = login.cookie;
    const list = JSON.parse((await request(quill.ports.http, 'GET', '/api/mailboxes/INBOX/messages?limit=50', cookie)).body) as { total: number; messages: { uid: number }[] };
    if (list.total !== count) throw new Error(`INBOX holds ${list.total} messages, expected ${count}`);
    const uid = list.messages[7]!.uid;

    const calls: Array<[string, string]> = [
      ['mailbox list with counts', '/api/mailboxes'],
      ['INBOX, newest 50', '/api/mailboxes/INBOX/messages?limit=50'],
      ['INBOX, 50 from the middle', `/api/mailboxes/INBOX/messages?limit=50&offset=${Math.floor(count / 2)}`],
      ['INBOX, 50 largest first', '/api/mailboxes/INBOX/messages?limit=50&sort=-size'],
      ['search "topic 7"', `/api/mailboxes/INBOX/messages?limit=50&q=${encodeURIComponent('topic 7')}`],
      ['open a message', `/api/messages/INBOX/${uid}`],
    ];
    console.log(`\n| call (${count} messages, ${tries} tries) | first ms | p50 ms | p99 ms | bytes |`);
    console.log('|---|---|---|---|---|');
    for (const [name, path] of calls) {
      const times: number[] = [];
      let bytes = 0;
      for (let i = 0; i < tries; i++) {
        const t = performance.now();
        const reply = await request(quill.ports.http, 'GET', path, cookie);
        times.push(performance.now() - t);
        if (reply.status !== 200) throw new Error(`${path}: ${reply.status} ${reply.body.slice(0, 200)}`);
        bytes = reply.body.length;
      }
      const sum = summarize([...times].sort((a, b) => a - b));
      console.log(`| ${name} | ${fmt(times[0]!, 1)} | ${fmt(sum.p50, 1)} | ${fmt(sum.p99, 1)} | ${bytes} |`);
    }
    console.log(`\nserver PSS after: ${fmt(treeMemory(quill.pid).pssKb / 1024, 1)} MB`);
  } finally {
    keepAlive.destroy();
    await quill.stop();
  }
}

await main();
