// Memory of the IMAP mailbox index per message held: loads an index of N messages in this process
// and reports heap and RSS growth per message after a full GC, first the index alone (metadata),
// then with every message's header summary filled in (what SEARCH SUBJECT leaves behind).
//   node --expose-gc --import tsx bench/index-memory.ts [--messages 10000,100000]
// The store here is a stand-in that answers the two reads an index load makes (the mailbox row and
// its message list), so only the index's own memory is measured; the messages are the ones
// bench/imap.ts's large mode writes (1 KB, distinct subjects, 50 senders).
import { createHash } from 'node:crypto';
import type { MessageMeta, Store } from '../src/store/types.js';
import { MailboxIndex } from '../src/imap/mailbox-index.js';
import { parseMessage, summaryOf } from '../src/imap/message/parsed.js';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const counts = arg('messages', '10000,100000').split(',').map(Number);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

function makeMessage(n: number): Buffer {
  const head =
    `From: Sender ${n % 50} <sender${n % 50}@example.org>\r\nTo: <load@example.com>\r\nSubject: topic ${n % 100} message ${n}\r\n` +
    `Date: Tue, 24 Nov 2026 10:${String(n % 60).padStart(2, '0')}:00 +0000\r\nMessage-ID: <m${n}@example.org>\r\n` +
    'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n';
  return Buffer.from(`${head}Line of body text for message ${n}.\r\n`, 'latin1');
}

function metas(n: number): MessageMeta[] {
  const out: MessageMeta[] = [];
  for (let i = 1; i <= n; i++) {
    const hash = createHash('sha256').update(String(i)).digest('hex');
    out.push({ id: i, mailboxId: 1, uid: i, blobHash: hash, size: 1024, internalDate: new Date(1_790_000_000_000 + i * 1000), flags: i % 3 === 0 ? ['\\Seen'] : [], modseq: i });
  }
  return out;
}

function used(): { heap: number; rss: number } {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.arrayBuffers, rss: m.rss };
}

/** As loadSummaries does: set on the entries; every parse but the summary is garbage then. */
function fillSummaries(index: MailboxIndex): void {
  const entries = index.all();
  for (let i = 0; i < entries.length; i++) entries[i]!.summary = summaryOf(parseMessage(makeMessage(i + 1)));
}

const per = (bytes: number, n: number): string => `${Math.round(bytes / n)} B`;

for (const n of counts) {
  const store = {
    getMailboxById: async () => ({ id: 1, highestModseq: n, uidnext: n + 1, recentUid: 0 }),
    // Made after the baseline, as a store read makes them: what the index keeps of them counts.
    listMessages: async () => metas(n),
  } as unknown as Store;
  const index = new MailboxIndex(1, store);
  const base = used();
  const t0 = performance.now();
  await index.fresh();
  index.all(); // the entry views, made on first use and kept with the index
  const loadMs = performance.now() - t0;
  const loaded = used();
  fillSummaries(index);
  const withSummaries = used();
  console.log(
    `${n} messages: index ${per(loaded.heap - base.heap, n)}/msg heap (${per(loaded.rss - base.rss, n)} RSS), ` +
      `summaries ${per(withSummaries.heap - loaded.heap, n)}/msg heap (${per(withSummaries.rss - loaded.rss, n)} RSS), ` +
      `total ${per(withSummaries.heap - base.heap, n)}/msg heap, ${((withSummaries.heap - base.heap) / 1048576).toFixed(1)} MB; load ${loadMs.toFixed(0)} ms`,
  );
  if (index.size !== n) throw new Error('index lost messages');
}
