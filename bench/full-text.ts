// Full-text search (issue 21) on a large mailbox: N messages of ~1.5 KB text delivered into one
// INBOX through the store (group commit, as SMTP does), then
//   - Store.searchText for a rare word (10 messages), a word in ~1% and one in ~30% of them;
//   - IMAP SEARCH BODY for the rare word through a real IMAP connection, with the index, and
//     as an OR of the same key twice, which the index does not serve (the scan of before).
// The store is SQLite; with QUILL_TEST_STORE=postgres, a throwaway PostgreSQL 15 (test/pg-server.ts).
//   node --import tsx bench/full-text.ts [--messages 100000] [--tries 5]
import { performance } from 'node:perf_hooks';
import { ImapFlow } from 'imapflow';
import { startTestServer } from '../test/helpers.js';
import { messageText } from '../src/store/text-index.js';
import { arg, fmt, summarize } from './lib.js';

const count = arg('messages', 100_000);
const tries = arg('tries', 5);
const USER = 'big@example.com';
const PASSWORD = 'bench-password';

// A vocabulary with a few very common words and a long tail, like text.
const VOCABULARY = Array.from({ length: 5000 }, (_, i) => `w${i.toString(36)}x`);
let seed = 42;
const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
const word = () => VOCABULARY[Math.floor(VOCABULARY.length * random() ** 3)]!;

function message(n: number): Buffer {
  const words: string[] = [];
  for (let i = 0; i < 200; i++) words.push(word());
  if (n % 100 === 7) words.push('pelican'); // ~1%
  if (n % 3 === 1) words.push('harbour'); // ~33%
  if (n % Math.floor(count / 10) === 5) words.push('zeppelin'); // 10 messages
  const body = words.join(' ').replace(/(.{72}) /g, '$1\r\n');
  return Buffer.from(`From: Sender ${n % 97} <sender${n % 97}@example.org>\r\nTo: ${USER}\r\nSubject: message ${n}\r\nMessage-ID: <${n}@bench.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`);
}

async function time<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { ms: performance.now() - start, value };
}

const server = await startTestServer();
try {
  const userId = await server.addUser(USER, PASSWORD);
  const inbox = (await server.store.getMailbox(userId, 'INBOX'))!;
  console.log(`store: ${server.store.kind}, ${count} messages`);

  // Text extraction alone: the CPU the index adds to each delivery.
  const sample = Array.from({ length: 2000 }, (_, i) => message(i));
  const extract = await time(async () => sample.forEach((raw) => messageText(raw).text));
  console.log(`text extraction: ${fmt((extract.ms * 1000) / sample.length, 1)} µs per message`);

  const ingest = await time(async () => {
    const inFlight = 256;
    for (let n = 0; n < count; n += inFlight) {
      await Promise.all(Array.from({ length: Math.min(inFlight, count - n) }, (_, i) => server.store.deliver(message(n + i), [{ userId }])));
    }
  });
  console.log(`ingest with the index: ${fmt((count / ingest.ms) * 1000, 0)} msgs/s (${fmt(ingest.ms / 1000, 1)} s)`);

  for (const [label, query] of [
    ['rare (10)', 'zeppelin'],
    ['1%', 'pelican'],
    ['33%', 'harbour'],
    ['two words', 'harbour pelican'],
  ] as const) {
    const runs: number[] = [];
    let hits = 0;
    for (let t = 0; t < tries; t++) {
      const { ms, value } = await time(() => server.store.searchText(inbox.id, query));
      runs.push(ms);
      hits = value.length;
    }
    const s = summarize(runs);
    console.log(`searchText ${label.padEnd(9)} "${query}": ${hits} hits, p50 ${fmt(s.p50, 1)} ms, max ${fmt(s.max, 1)} ms`);
  }

  const imap = new ImapFlow({ host: '127.0.0.1', port: server.port('imap'), secure: false, auth: { user: USER, pass: PASSWORD }, logger: false, tls: { rejectUnauthorized: false } });
  await imap.connect();
  await imap.mailboxOpen('INBOX');
  const imapSearch = async (label: string, n: number, query: Parameters<typeof imap.search>[0]) => {
    const runs: number[] = [];
    let hits = 0;
    for (let t = 0; t < n; t++) {
      const { ms, value } = await time(async () => (await imap.search(query, { uid: true })) || []);
      runs.push(ms);
      hits = value.length;
    }
    const s = summarize(runs);
    console.log(`IMAP SEARCH ${label}: ${hits} hits, p50 ${fmt(s.p50, 1)} ms, max ${fmt(s.max, 1)} ms (${n} runs)`);
    return s.p50;
  };
  const indexed = await imapSearch('with the index', tries, { body: 'zeppelin' });
  // OR BODY x BODY x is the same search, but the index is only used for keys every match
  // must satisfy: so this one reads and decodes every message, as every BODY search did before.
  const scanned = await imapSearch('without it (OR BODY x BODY x: a scan)', 2, { or: [{ body: 'zeppelin' }, { body: 'zeppelin' }] });
  console.log(`ratio scan / index: ${fmt(scanned / indexed, 0)}x`);
  await imap.logout();
} finally {
  await server.stop();
}
