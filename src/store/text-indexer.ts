// Full-text indexing after the commit (issue 19). Reading a 10 KB message's words costs about as
// much as storing it, so a write that stores a blob only queues its hash in text_pending
// (migration 012), and this indexer adds the words later in transactions of its own: a few blobs
// a round, when the process has written nothing for a moment (and one round a second at least
// under steady load), so deliveries keep the CPU and no turn of the event loop runs long.
// A search first indexes what is still queued for its mailbox, so mail delivered a moment ago is
// found. A queue row is deleted in the transaction that adds the words: after a crash it is
// still there, and the next start indexes it. Each process runs one; where several share a
// PostgreSQL store, the DELETE ... RETURNING decides which of them writes a blob's words.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.js';
import type { messageText } from './text-index.js';

/** The indexing side, with its MIME and charset modules, loaded at the first round. */
const textIndex = () => import('./text-index.js');

/** Blobs a round reads at most. */
const BATCH = 32;
/** Parsing a round does at most (ms); what is left waits for the next round. */
const ROUND_BUDGET_MS = 8;
/** Bytes of blobs read at once (a round reads its blobs a few at a time, not all 32 together). */
const READ_BYTES = 4 * 1024 * 1024;
/** Writes a search's catch-up keeps in flight while it reads on. */
const MAX_WRITES = 4;
/** Longest the indexer waits for a quiet moment under steady load (ms). */
const MAX_DEFER_MS = 1000;
/** A look at the queue now and then, for rows whose write was not seen here (another process's, or a failed round's). */
const SWEEP_MS = 30_000;

type Words = ReturnType<typeof messageText>;

export interface TextIndexerHost {
  readonly db: Kysely<Database>;
  dialect(): 'sqlite' | 'postgres';
  /** Runs fn in a write transaction of the store (its group commit and durability). */
  write(fn: (tx: Transaction<Database>) => Promise<void>): Promise<void>;
}

export interface TextIndexerOptions {
  /** How long the process must have queued nothing before the indexer starts a round (ms). */
  idleMs?: number;
}

export class TextIndexer {
  private idleMs = 100;
  private started = false;
  private timer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private lastWrite = 0;
  private lastRound = 0;

  constructor(private readonly host: TextIndexerHost) {}

  /** Starts indexing in the background, beginning with whatever an earlier run left queued. */
  start(options: TextIndexerOptions = {}): void {
    this.idleMs = options.idleMs ?? this.idleMs;
    this.started = true;
    this.lastRound = Date.now();
    this.schedule(this.idleMs);
    this.sweepTimer = setInterval(() => this.schedule(0), SWEEP_MS);
    this.sweepTimer.unref();
  }

  /** Waits for a round under way; nothing more runs. */
  async stop(): Promise<void> {
    this.started = false;
    clearTimeout(this.timer);
    clearInterval(this.sweepTimer);
    this.timer = this.sweepTimer = undefined;
    await this.running;
  }

  /** A write queued blobs: they are indexed once the process has been quiet for a moment. */
  noteWrite(): void {
    this.lastWrite = Date.now();
    this.schedule(this.idleMs);
  }

  /** Indexes now the queued blobs of a mailbox's messages: a search of it must find them. */
  async catchUp(mailboxId: number): Promise<void> {
    const { rows } = await sql<{ hash: string }>`select distinct p.hash from text_pending p join messages m on m.blob_hash = p.hash
      where m.mailbox_id = ${mailboxId}`.execute(this.host.db);
    const queue = rows.map((row) => row.hash);
    // The next words are read while earlier ones are written (a few writes at a time): they share
    // commits and fsyncs, and the search waits on parsing rather than on the disk.
    const writing = new Set<Promise<void>>();
    let failure: unknown;
    while (queue.length > 0 && failure === undefined) {
      const { texts, left } = await this.prepare(queue.splice(0, BATCH));
      queue.unshift(...left);
      const write: Promise<void> = this.store(texts)
        .catch((error: unknown) => void (failure ??= error))
        .finally(() => writing.delete(write));
      writing.add(write);
      if (writing.size >= MAX_WRITES) await Promise.race(writing);
      if (queue.length > 0) await nextTurn();
    }
    await Promise.all(writing);
    if (failure !== undefined) throw failure;
  }

  private schedule(delayMs: number): void {
    if (!this.started || this.timer || this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.tick();
    }, delayMs);
    this.timer.unref();
  }

  private tick(): void {
    if (!this.started || this.running) return;
    const now = Date.now();
    const quietFor = now - this.lastWrite;
    const sinceRound = now - this.lastRound;
    if (quietFor < this.idleMs && sinceRound < MAX_DEFER_MS) {
      this.schedule(Math.min(this.idleMs - quietFor, MAX_DEFER_MS - sinceRound));
      return;
    }
    this.lastRound = now;
    this.running = this.round().then(
      ({ more }) => {
        this.running = undefined;
        // Queued while the round ran, perhaps after it read the queue: look again once quiet.
        if (more) this.schedule(0);
        else if (this.lastWrite >= now) this.schedule(this.idleMs);
      },
      () => {
        // The store is unavailable: the sweep tries again.
        this.running = undefined;
      },
    );
  }

  /** One round of the background indexer; `more`: whether the queue may hold more. */
  private async round(): Promise<{ more: boolean }> {
    const { texts, more } = await this.prepare();
    await this.store(texts);
    return { more };
  }

  /**
   * Reads up to BATCH queued blobs (of `hashes` when given) and their words, for at most
   * ROUND_BUDGET_MS. `left`: the ones read but not reached; `more`: whether the queue may hold more.
   */
  private async prepare(hashes?: string[]): Promise<{ texts: Map<string, Words | null>; left: string[]; more: boolean }> {
    const texts = new Map<string, Words | null>();
    const left: string[] = [];
    if (hashes?.length === 0) return { texts, left, more: false };
    // Sizes first; a blob already indexed (stored twice) or gone has no bytes to read: its row is only dropped.
    const { rows } = await sql<{ hash: string; size: number | string | null }>`select p.hash, case when t.hash is null then b.size end as size
      from text_pending p left join blobs b on b.hash = p.hash left join blob_text t on t.hash = p.hash
      ${hashes ? sql`where p.hash in (${sql.join(hashes)})` : sql``} limit ${BATCH}`.execute(this.host.db);
    // An empty queue (most starts, and every CLI command) loads no MIME module.
    if (rows.length === 0) return { texts, left, more: false };
    const { messageText } = await textIndex();
    const began = performance.now();
    const overBudget = () => texts.size > 0 && performance.now() - began > ROUND_BUDGET_MS;
    for (let i = 0; i < rows.length && !overBudget(); ) {
      // The bytes of the next few blobs, READ_BYTES at most unless one alone is larger.
      const group: string[] = [];
      for (let bytes = 0; i < rows.length && (group.length === 0 || bytes + Number(rows[i]!.size ?? 0) <= READ_BYTES); i++) {
        const row = rows[i]!;
        if (row.size === null) texts.set(row.hash, null);
        else {
          group.push(row.hash);
          bytes += Number(row.size);
        }
      }
      if (group.length === 0) continue;
      const data = await this.host.db.selectFrom('blobs').select(['hash', 'data']).where('hash', 'in', group).execute();
      const byHash = new Map(data.map((row) => [row.hash, row.data]));
      for (const hash of group) {
        const raw = byHash.get(hash);
        if (overBudget()) left.push(hash);
        else texts.set(hash, raw ? messageText(Buffer.isBuffer(raw) ? raw : Buffer.from(raw)) : null);
      }
    }
    for (const row of rows) if (!texts.has(row.hash) && !left.includes(row.hash)) left.push(row.hash);
    return { texts, left, more: rows.length === BATCH || left.length > 0 };
  }

  /** Indexes prepared words; one blob the engine refuses must not hold up the queue. */
  private async store(texts: Map<string, Words | null>): Promise<void> {
    if (texts.size === 0) return;
    try {
      await this.index(texts);
    } catch {
      // Each alone, and one refused alone is kept as text too long to index (IMAP SEARCH reads it; text-index.ts).
      for (const [hash, text] of texts) {
        await this.index(new Map([[hash, text]])).catch(() => this.index(new Map([[hash, text && { text: '', partial: true }]])));
      }
    }
  }

  /** Takes blobs off the queue and adds their words, in one transaction (null: nothing to add). */
  private async index(texts: Map<string, Words | null>): Promise<void> {
    const { insertBlobText } = await textIndex();
    await this.host.write(async (tx) => {
      const taken = await tx.deleteFrom('text_pending').where('hash', 'in', [...texts.keys()]).returning('hash').execute();
      for (const { hash } of taken) {
        const text = texts.get(hash);
        if (text) await insertBlobText(tx, this.host.dialect(), hash, text);
      }
    });
  }
}
