// The in-memory index of a mailbox, shared by every session of the process that has it open:
// UIDs, flags, modseq, size, internal date and content hash of each message, plus the header
// summary SEARCH, SORT and THREAD need once something asked for it. Loaded with one query, then
// kept current from the store's change feed: a change marks the index stale and the next user
// catches it up with three small reads (the mailbox's highest modseq, the messages changed and
// the UIDs expunged since the index's modseq). Changes from other processes arrive through the
// same feed (SQLite change polling, PostgreSQL NOTIFY), so the index is never fresher or staler
// than what a store read at that moment would give.
//
// Sessions keep their own sequence map (expunges are announced later, RFC 3501 7.4.1) but start
// from the index's UID array, which is replaced rather than changed, so idle sessions share it.
import type { ChangeEvent, MailboxStatus, MessageMeta, Store } from '../store/types.js';
import { summaryOf, type HeaderSummary, type MessageCache } from './message/parsed.js';
import { lowerBound } from './selected.js';

/** One message as the index holds it: the store's metadata plus, once loaded, its header summary. */
export interface IndexEntry extends MessageMeta {
  summary?: HeaderSummary;
}

/** UIDs whose metadata changed (or that arrived) in one catch-up, with the modseqs seen. */
interface ChangeBatch {
  maxModseq: number;
  uids: number[];
}

/** Batches kept for sessions to catch up without scanning the mailbox. */
const LOG_BATCHES = 256;

export class MailboxIndex {
  /** Ascending UIDs. Replaced, never changed in place: sessions share the array. */
  uids: number[] = [];
  /** Entries parallel to `uids`. */
  private entries: IndexEntry[] = [];
  /** Every change up to this modseq is applied. */
  modseq = 0;
  private counted: { uids: number[]; modseq: number; loadGen: number; unseen: number; size: number } | undefined;
  /**
   * The mailbox's UIDNEXT read with `modseq`: every UID below it is in the index or was
   * expunged, so SELECT's UIDNEXT agrees with its EXISTS (a gateway carrying the session to
   * another node relies on that; imap-view.ts).
   */
  uidNext = 1;
  /**
   * The mailbox's \Recent watermark as last seen (it only grows): a session need not try to
   * claim UIDs at or below it (RFC 3501 2.3.2, Store.claimRecent), so after one session has
   * claimed new mail the others skip the store round trip.
   */
  recentUid = 0;
  /** Bumped whenever messages leave the index (expunge or reload): sessions then diff their map. */
  expungeGen = 0;
  /** Bumped on every full load: sessions holding changes from before it rescan. */
  loadGen = 0;
  /** Changes since `logFloor`, oldest first. */
  private log: ChangeBatch[] = [];
  private logFloor = 0;
  /** Change-feed generations: the index is fresh while clean >= dirty. */
  private dirty = 1;
  private clean = 0;
  private loaded = false;
  private running: Promise<void> | undefined;
  /** Sessions and commands using the index now; the manager evicts only unused indexes. */
  users = 0;

  constructor(
    readonly mailboxId: number,
    private readonly store: Store,
  ) {}

  get size(): number {
    return this.uids.length;
  }

  get maxUid(): number {
    return this.uids.length > 0 ? this.uids[this.uids.length - 1]! : 0;
  }

  /** A change to the mailbox was committed somewhere: the next fresh() catches up. */
  markStale(): void {
    this.dirty++;
  }

  /** Forgets everything: the next fresh() loads the mailbox again (mailbox renamed or deleted). */
  invalidate(): void {
    this.loaded = false;
    this.dirty++;
  }

  /** Catches up with every change committed before the call. */
  async fresh(): Promise<void> {
    while (this.clean < this.dirty) {
      this.running ??= this.runOnce();
      await this.running;
    }
  }

  private async runOnce(): Promise<void> {
    const target = this.dirty;
    try {
      await (this.loaded ? this.catchUp() : this.load());
      this.clean = Math.max(this.clean, target);
    } finally {
      this.running = undefined;
    }
  }

  /** The watermark is known to be at least `uid` (read from the store, or just claimed up to it). */
  noteRecent(uid: number): void {
    if (uid > this.recentUid) this.recentUid = uid;
  }

  get(uid: number): IndexEntry | undefined {
    const i = lowerBound(this.uids, uid);
    return this.uids[i] === uid ? this.entries[i] : undefined;
  }

  /** The entries of ascending UIDs that are still in the index. */
  pick(uids: number[]): IndexEntry[] {
    const out: IndexEntry[] = [];
    const all = this.uids;
    let i = 0;
    for (const uid of uids) {
      // The next one is usually right here (a range); else a binary search over what is left.
      if (all[i] !== undefined && all[i]! < uid) i = all[i + 1] === uid ? i + 1 : lowerBoundFrom(all, uid, i + 1);
      if (all[i] === uid) out.push(this.entries[i]!);
    }
    return out;
  }

  /** All entries, ascending by UID (do not change them). */
  all(): readonly IndexEntry[] {
    return this.entries;
  }

  /** Messages whose metadata changed after a modseq: undefined when the log no longer reaches back that far. */
  changedSince(modseq: number, loadGen: number): IndexEntry[] | undefined {
    if (loadGen !== this.loadGen || modseq < this.logFloor) return undefined;
    const uids = new Set<number>();
    for (let i = this.log.length - 1; i >= 0 && this.log[i]!.maxModseq > modseq; i--) for (const uid of this.log[i]!.uids) uids.add(uid);
    const out: IndexEntry[] = [];
    for (const uid of [...uids].sort((a, b) => a - b)) {
      const entry = this.get(uid);
      if (entry && entry.modseq > modseq) out.push(entry);
    }
    return out;
  }

  /**
   * STATUS counts (RFC 3501 6.3.10) from the index, caught up first; undefined when this index
   * was never loaded (a STATUS alone does not load a whole mailbox). `recentUid` is the store's
   * watermark as the caller read it: the index's may lag behind claims made elsewhere.
   */
  async status(recentUid: number): Promise<Omit<MailboxStatus, 'uidvalidity'> | undefined> {
    if (!this.loaded) return undefined;
    await this.fresh();
    if (!this.loaded) return undefined;
    const { unseen, size } = this.counts();
    const recent = this.uids.length - lowerBound(this.uids, Math.max(recentUid, this.recentUid) + 1);
    return { messages: this.uids.length, unseen, recent, size, uidnext: this.uidNext, highestModseq: this.modseq };
  }

  /**
   * Unseen messages and total size, counted once per state of the index: every change to it
   * replaces `uids` or raises `modseq`, so repeated STATUS of a quiet mailbox costs nothing.
   */
  private counts(): { unseen: number; size: number } {
    const cached = this.counted;
    if (cached && cached.uids === this.uids && cached.modseq === this.modseq && cached.loadGen === this.loadGen) return cached;
    let unseen = 0;
    let size = 0;
    for (const entry of this.entries) {
      if (!isSeen(entry.flags)) unseen++;
      size += entry.size;
    }
    this.counted = { uids: this.uids, modseq: this.modseq, loadGen: this.loadGen, unseen, size };
    return this.counted;
  }

  private async load(): Promise<void> {
    // The modseq first: whatever commits meanwhile is either in the list or caught up later.
    const mailbox = await this.store.getMailboxById(this.mailboxId);
    const metas = mailbox ? await this.store.listMessages(this.mailboxId) : [];
    const interned = new Map<string, string[]>();
    this.entries = metas.map((m) => ({ ...m, flags: intern(interned, m.flags) }));
    this.uids = this.entries.map((e) => e.uid);
    this.modseq = mailbox?.highestModseq ?? 0;
    this.uidNext = mailbox?.uidnext ?? 1;
    this.noteRecent(mailbox?.recentUid ?? 0);
    this.log = [];
    this.logFloor = this.modseq;
    this.loaded = true;
    this.loadGen++;
    this.expungeGen++;
  }

  private async catchUp(): Promise<void> {
    const mailbox = await this.store.getMailboxById(this.mailboxId);
    if (!mailbox) {
      if (this.uids.length > 0) this.apply([], this.uids.slice());
      return;
    }
    const high = mailbox.highestModseq;
    this.noteRecent(mailbox.recentUid);
    if (high <= this.modseq) return;
    const changed = await this.store.listMessages(this.mailboxId, { changedSince: this.modseq });
    const vanished = await this.store.expungedSince(this.mailboxId, this.modseq);
    this.apply(changed, vanished);
    this.modseq = Math.max(this.modseq, high);
    this.uidNext = Math.max(this.uidNext, mailbox.uidnext);
  }

  /** Applies changed rows then expunged UIDs; safe to apply twice (reads may overlap). */
  private apply(changed: MessageMeta[], vanished: number[]): void {
    const interned = new Map<string, string[]>();
    const added: IndexEntry[] = [];
    const batch: ChangeBatch = { maxModseq: 0, uids: [] };
    for (const meta of changed) {
      const entry = this.get(meta.uid);
      if (entry) {
        if (entry.modseq >= meta.modseq) continue;
        entry.flags = intern(interned, meta.flags);
        entry.modseq = meta.modseq;
      } else if (meta.uid > this.maxUid) {
        added.push({ ...meta, flags: intern(interned, meta.flags) });
      } else continue; // an old UID the index lacks was expunged meanwhile: UIDs never come back
      batch.uids.push(meta.uid);
      batch.maxModseq = Math.max(batch.maxModseq, meta.modseq);
    }
    if (added.length > 0) {
      this.uids = this.uids.concat(added.map((e) => e.uid));
      for (const entry of added) this.entries.push(entry);
    }
    if (vanished.length > 0) {
      const drop = new Set(vanished);
      if (this.uids.some((uid) => drop.has(uid))) {
        const keep = this.entries.filter((e) => !drop.has(e.uid));
        this.entries = keep;
        this.uids = keep.map((e) => e.uid);
        this.expungeGen++;
      }
    }
    if (batch.uids.length > 0) {
      this.log.push(batch);
      if (this.log.length > LOG_BATCHES) {
        const dropped = this.log.splice(0, this.log.length - LOG_BATCHES / 2);
        for (const b of dropped) this.logFloor = Math.max(this.logFloor, b.maxModseq);
      }
    }
  }
}

/** Flags compare case-insensitively (RFC 3501 2.3.2). */
function isSeen(flags: string[]): boolean {
  for (const flag of flags) if (flag === '\\Seen' || (flag.length === 5 && flag.toLowerCase() === '\\seen')) return true;
  return false;
}

/** The first index at or after `from` whose value is >= n. */
function lowerBoundFrom(sorted: number[], n: number, from: number): number {
  let lo = from;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < n) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Shares one flags array among messages with the same flags. */
function intern(table: Map<string, string[]>, flags: string[]): string[] {
  const key = flags.join(' ');
  let shared = table.get(key);
  if (!shared) table.set(key, (shared = flags));
  return shared;
}

export interface IndexLimits {
  /** Messages kept in indexes no session uses, across the process. */
  idleMessages: number;
}

/**
 * The process's indexes by mailbox id: made on first use, told about every change, evicted
 * least recently used once the unused ones hold more than the limit.
 */
export class MailboxIndexes {
  private readonly indexes = new Map<number, MailboxIndex>();

  constructor(
    private readonly store: Store,
    private readonly limits: IndexLimits = { idleMessages: 200_000 },
  ) {}

  /** Takes an index for use (release it when done); fresh when it resolves. */
  async acquire(mailboxId: number): Promise<MailboxIndex> {
    let index = this.indexes.get(mailboxId);
    if (index) this.indexes.delete(mailboxId); // re-inserted below: most recent last
    else index = new MailboxIndex(mailboxId, this.store);
    this.indexes.set(mailboxId, index);
    index.users++;
    try {
      await index.fresh();
    } catch (error) {
      this.release(index);
      throw error;
    }
    return index;
  }

  release(index: MailboxIndex): void {
    index.users = Math.max(0, index.users - 1);
    if (index.users === 0) this.evict();
  }

  /** The index of a mailbox if this process holds one. */
  peek(mailboxId: number): MailboxIndex | undefined {
    return this.indexes.get(mailboxId);
  }

  changed(event: ChangeEvent): void {
    if (event.mailboxId === null || event.kind === 'mailbox') {
      // Renames and deletes: reload the user's indexes when next used. Rare.
      if (event.mailboxId !== null) this.indexes.get(event.mailboxId)?.invalidate();
      else for (const index of this.indexes.values()) index.markStale();
      return;
    }
    this.indexes.get(event.mailboxId)?.markStale();
  }

  private evict(): void {
    let idle = 0;
    for (const index of this.indexes.values()) if (index.users === 0) idle += index.size;
    for (const [id, index] of this.indexes) {
      if (idle <= this.limits.idleMessages) break;
      if (index.users > 0) continue;
      this.indexes.delete(id);
      idle -= index.size;
    }
  }
}

/** Fills in the header summaries entries lack, in batches (see MessageCache.parsedMany). */
export async function loadSummaries(entries: readonly IndexEntry[], cache: MessageCache): Promise<void> {
  const missing = entries.filter((e) => !e.summary);
  for (let i = 0; i < missing.length; i += 2000) {
    const slice = missing.slice(i, i + 2000);
    const parsed = await cache.parsedMany(
      slice.map((e) => e.blobHash),
      false,
    );
    for (const entry of slice) {
      const p = parsed.get(entry.blobHash);
      if (p) entry.summary = summaryOf(p);
    }
  }
}
