// The in-memory index of a mailbox, shared by every session of the process that has it open:
// UIDs, flags, modseq, size, internal date and content hash of each message, plus the header
// summary SEARCH, SORT and THREAD need once something asked for it. Loaded with one query, then
// kept current from the store's change feed: a change marks the index stale and the next user
// catches it up with three small reads (the mailbox's highest modseq, the messages changed and
// the UIDs expunged since the index's modseq). Changes from other processes arrive through the
// same feed (SQLite change polling, PostgreSQL NOTIFY), so the index is never fresher or staler
// than what a store read at that moment would give.
//
// The messages are held column-wise (typed arrays of UIDs' modseqs, sizes, dates, ids, flag-set
// numbers and binary content hashes), not as an object each: about 100 bytes a message instead of
// ~300, and the header summaries as one packed string each (the folded fields SEARCH compares, then
// the envelope and References as JSON) instead of ~1.3 KB of small objects. Callers still get
// IndexEntry objects: small views made per call that read the columns.
//
// Sessions keep their own sequence map (expunges are announced later, RFC 3501 7.4.1) but start
// from the index's UID array, which is replaced rather than changed, so idle sessions share it.
import type { ChangeEvent, FlagUpdate, MailboxDelta, MailboxStatus, Mailstore, MessageMeta } from '../store/types.js';
import type { MimePart } from '../mime/mime.js';
import { summaryOf, type HeaderSummary, type MessageCache } from './message/parsed.js';
import { foldedField, SEARCH_FIELDS } from './message/search.js';
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

/** Bytes of a SHA-256 content hash, kept binary; other hash shapes are kept as strings by UID. */
const HASH_BYTES = 32;
const HEX_HASH = /^[0-9a-f]{64}$/;

/**
 * The distinct flag lists of a mailbox, numbered: a message keeps the number of its list, so any
 * number of keywords costs 4 bytes a message, and messages with the same flags share one array
 * (FETCH formats each distinct list once).
 */
class FlagSets {
  readonly lists: string[][] = [];
  /** Per list: whether it holds \Seen. */
  readonly seen: boolean[] = [];
  /** Per list: its flags joined, the key it is numbered by. */
  readonly keys: string[] = [];
  private readonly numbers = new Map<string, number>();

  /** `key`: the flags joined with spaces, when the caller has it already. */
  numberOf(flags: readonly string[], key = flags.join(' ')): number {
    let n = this.numbers.get(key);
    if (n === undefined) {
      n = this.lists.length;
      this.numbers.set(key, n);
      this.lists.push(flags.slice());
      this.seen.push(isSeen(flags));
      this.keys.push(key);
    }
    return n;
  }
}

/**
 * The per-message columns, position i for the index's i-th UID. Flags, modseqs and summaries
 * change in place and the arrays grow in place; when messages leave, a new Columns replaces this
 * one, so entries made before keep reading the messages they were made for.
 */
class Columns {
  n = 0;
  ids: Float64Array;
  modseqs: Float64Array;
  sizes: Float64Array;
  dates: Float64Array;
  flags: Uint32Array;
  hashes: Buffer;
  /** Packed header summaries (see packSummary), undefined until a search or SORT needs one. */
  summaries: (string | undefined)[];
  /** Content hashes that are not 64 lowercase hex digits, by UID (other stores' hashes). */
  readonly oddHashes = new Map<number, string>();

  constructor(
    private cap: number,
    readonly flagSets: FlagSets,
  ) {
    this.ids = new Float64Array(cap);
    this.modseqs = new Float64Array(cap);
    this.sizes = new Float64Array(cap);
    this.dates = new Float64Array(cap);
    this.flags = new Uint32Array(cap);
    this.hashes = Buffer.alloc(cap * HASH_BYTES);
    this.summaries = new Array<string | undefined>(cap).fill(undefined);
  }

  /** Room for `more` messages after the last. */
  reserve(more: number): void {
    if (this.n + more <= this.cap) return;
    const cap = Math.max(this.n + more, Math.ceil(this.cap * 1.5), 16);
    const grow = <T extends Float64Array | Uint32Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a.subarray(0, this.n));
      return b;
    };
    this.ids = grow(this.ids, (k) => new Float64Array(k));
    this.modseqs = grow(this.modseqs, (k) => new Float64Array(k));
    this.sizes = grow(this.sizes, (k) => new Float64Array(k));
    this.dates = grow(this.dates, (k) => new Float64Array(k));
    this.flags = grow(this.flags, (k) => new Uint32Array(k));
    const hashes = Buffer.alloc(cap * HASH_BYTES);
    this.hashes.copy(hashes, 0, 0, this.n * HASH_BYTES);
    this.hashes = hashes;
    const summaries = new Array<string | undefined>(cap).fill(undefined);
    for (let i = 0; i < this.n; i++) summaries[i] = this.summaries[i];
    this.summaries = summaries;
    this.cap = cap;
  }

  /** Appends a message (room reserved first). */
  push(meta: MessageMeta): void {
    const i = this.n++;
    this.ids[i] = meta.id;
    this.modseqs[i] = meta.modseq;
    this.sizes[i] = meta.size;
    this.dates[i] = meta.internalDate.getTime();
    this.flags[i] = this.flagSets.numberOf(meta.flags);
    if (HEX_HASH.test(meta.blobHash)) this.hashes.write(meta.blobHash, i * HASH_BYTES, HASH_BYTES, 'hex');
    else this.oddHashes.set(meta.uid, meta.blobHash);
  }

  hashAt(i: number, uid: number): string {
    if (this.oddHashes.size > 0) {
      const odd = this.oddHashes.get(uid);
      if (odd !== undefined) return odd;
    }
    return this.hashes.toString('hex', i * HASH_BYTES, (i + 1) * HASH_BYTES);
  }

  /** A copy holding only the positions `keep` accepts, with a flag table of the lists still used. */
  filter(uids: readonly number[], keep: (i: number) => boolean): { columns: Columns; uids: number[] } {
    let count = 0;
    for (let i = 0; i < this.n; i++) if (keep(i)) count++;
    const out = new Columns(Math.max(count, 16), new FlagSets());
    const kept: number[] = [];
    // Each distinct flag list numbered once in the new table, not once per message.
    const renumbered = new Int32Array(this.flagSets.lists.length).fill(-1);
    for (let i = 0; i < this.n; i++) {
      if (!keep(i)) continue;
      const j = out.n++;
      out.ids[j] = this.ids[i]!;
      out.modseqs[j] = this.modseqs[i]!;
      out.sizes[j] = this.sizes[i]!;
      out.dates[j] = this.dates[i]!;
      const was = this.flags[i]!;
      let flags = renumbered[was]!;
      if (flags < 0) renumbered[was] = flags = out.flagSets.numberOf(this.flagSets.lists[was]!, this.flagSets.keys[was]);
      out.flags[j] = flags;
      this.hashes.copy(out.hashes, j * HASH_BYTES, i * HASH_BYTES, (i + 1) * HASH_BYTES);
      out.summaries[j] = this.summaries[i];
      const uid = uids[i]!;
      const odd = this.oddHashes.get(uid);
      if (odd !== undefined) out.oddHashes.set(uid, odd);
      kept.push(uid);
    }
    return { columns: out, uids: kept };
  }
}

/**
 * A header summary as the index keeps it: the five fields SEARCH compares, decoded and folded,
 * separated by \x01, then \x02 and the envelope and References as JSON. JSON escapes control
 * characters, and the folded fields have theirs replaced, so the separators are unambiguous.
 */
function packSummary(summary: HeaderSummary): string {
  if (summary instanceof PackedSummary) return summary.packed;
  const root = summary.root;
  const fields = SEARCH_FIELDS.map((f) => foldedField(root, f).replace(/[\x01\x02]/g, ' '));
  // One join: a flat string (a template literal would leave a rope of three).
  fields.push(JSON.stringify([root.envelope ?? null, summary.references]));
  return [fields.slice(0, -1).join('\x01'), fields[fields.length - 1]].join('\x02');
}

/** A packed summary read back: the folded fields straight from the string, the envelope parsed on first use. */
class PackedSummary implements HeaderSummary {
  private decoded: { root: Pick<MimePart, 'envelope'>; references: string | null } | undefined;

  constructor(readonly packed: string) {}

  get root(): Pick<MimePart, 'envelope'> {
    return this.decode().root;
  }

  get references(): string | null {
    return this.decode().references;
  }

  /** SEARCH reads summary.folded[field]: this object answers with the stored text. */
  get folded(): Record<(typeof SEARCH_FIELDS)[number], string> {
    return this;
  }

  get subject(): string {
    return this.field(0);
  }
  get from(): string {
    return this.field(1);
  }
  get to(): string {
    return this.field(2);
  }
  get cc(): string {
    return this.field(3);
  }
  get bcc(): string {
    return this.field(4);
  }

  private field(k: number): string {
    const p = this.packed;
    let start = 0;
    for (let i = 0; i < k; i++) start = p.indexOf('\x01', start) + 1;
    const end = k === SEARCH_FIELDS.length - 1 ? p.indexOf('\x02', start) : p.indexOf('\x01', start);
    return p.slice(start, end);
  }

  private decode(): { root: Pick<MimePart, 'envelope'>; references: string | null } {
    if (!this.decoded) {
      const [envelope, references] = JSON.parse(this.packed.slice(this.packed.indexOf('\x02') + 1)) as [MimePart['envelope'] | null, string | null];
      this.decoded = { root: envelope ? { envelope } : {}, references };
    }
    return this.decoded;
  }
}

/**
 * One message of an index as callers see it: a view reading the columns it was made from (5
 * fields, kept by the index for every message while the columns stand, so FETCH 1:* makes none).
 */
class Entry implements IndexEntry {
  constructor(
    private readonly owner: MailboxIndex,
    private readonly columns: Columns,
    private readonly i: number,
    readonly uid: number,
  ) {}

  get id(): number {
    return this.columns.ids[this.i]!;
  }
  get mailboxId(): number {
    return this.owner.mailboxId;
  }
  get blobHash(): string {
    return this.columns.hashAt(this.i, this.uid);
  }
  get size(): number {
    return this.columns.sizes[this.i]!;
  }
  get internalDate(): Date {
    return new Date(this.columns.dates[this.i]!);
  }
  get flags(): string[] {
    return this.columns.flagSets.lists[this.columns.flags[this.i]!]!;
  }
  get modseq(): number {
    return this.columns.modseqs[this.i]!;
  }

  /** Read from its packed form each time: nothing of it stays with the entry. */
  get summary(): HeaderSummary | undefined {
    const packed = this.columns.summaries[this.i];
    return packed === undefined ? undefined : new PackedSummary(packed);
  }

  /** Kept packed in the index (and in the columns this entry reads, should they be older). */
  set summary(summary: HeaderSummary | undefined) {
    if (!summary) return;
    const packed = packSummary(summary);
    this.columns.summaries[this.i] = packed;
    this.owner.keepSummary(this.uid, packed);
  }
}

export class MailboxIndex {
  /** Ascending UIDs. Replaced, never changed in place: sessions share the array. */
  uids: number[] = [];
  /** The messages' metadata and summaries, position i for uids[i]. */
  private columns = new Columns(16, new FlagSets());
  /** The entries of `columns`, made on first use (see all()). */
  private view: { columns: Columns; entries: IndexEntry[] } | undefined;
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
   * claim UIDs at or below it (RFC 3501 2.3.2, Mailstore.claimRecent), so after one session has
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
    private readonly store: Mailstore,
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

  /**
   * Follows a write of this process from what it did, without reading it back: only when it is the
   * very next change (its modseq one above the index's, which is the mailbox's highest as last read
   * or followed) and nothing else is pending. False: the caller marks the index stale instead.
   */
  follow(delta: MailboxDelta): boolean {
    if (!this.loaded || this.running || this.clean < this.dirty || delta.modseq !== this.modseq + 1) return false;
    // A flag change of a message the index lacks, or an append not above every UID, cannot be the next change.
    for (const update of delta.flags ?? []) if (this.uids[lowerBound(this.uids, update.uid)] !== update.uid) return false;
    for (const meta of delta.appended ?? []) if (meta.uid <= this.maxUid) return false;
    this.apply(delta.appended ? [...(delta.flags ?? []), ...delta.appended] : (delta.flags ?? []), delta.expunged ?? []);
    this.modseq = delta.modseq;
    if (delta.uidnext !== undefined) this.uidNext = Math.max(this.uidNext, delta.uidnext);
    return true;
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
    return this.uids[i] === uid ? this.all()[i] : undefined;
  }

  /** The entries of ascending UIDs that are still in the index. */
  pick(uids: number[]): IndexEntry[] {
    const out: IndexEntry[] = [];
    const all = this.uids;
    const entries = this.all();
    let i = 0;
    for (const uid of uids) {
      // The next one is usually right here (a range); else a binary search over what is left.
      if (all[i] !== undefined && all[i]! < uid) i = all[i + 1] === uid ? i + 1 : lowerBoundFrom(all, uid, i + 1);
      if (all[i] === uid) out.push(entries[i]!);
    }
    return out;
  }

  /**
   * All entries, ascending by UID (do not change the array). Kept while the columns stand:
   * appends extend it, an expunge makes a new one (whoever holds the old one keeps reading it).
   */
  all(): readonly IndexEntry[] {
    const view = this.view;
    const uids = this.uids;
    if (view && view.columns === this.columns && view.entries.length <= uids.length) {
      for (let i = view.entries.length; i < uids.length; i++) view.entries.push(new Entry(this, this.columns, i, uids[i]!));
      return view.entries;
    }
    const entries = new Array<IndexEntry>(uids.length);
    for (let i = 0; i < entries.length; i++) entries[i] = new Entry(this, this.columns, i, uids[i]!);
    this.view = { columns: this.columns, entries };
    return entries;
  }

  /** The distinct flag lists messages have now (SELECT's FLAGS names every keyword in use). */
  flagListsInUse(): string[][] {
    const { n, flags, flagSets } = this.columns;
    const used = new Uint8Array(flagSets.lists.length);
    for (let i = 0; i < n; i++) used[flags[i]!] = 1;
    return flagSets.lists.filter((_, k) => used[k] === 1);
  }

  /** The lowest UID without \\Seen, or 0. */
  firstUnseenUid(): number {
    const { n, flags, flagSets } = this.columns;
    for (let i = 0; i < n; i++) if (!flagSets.seen[flags[i]!]) return this.uids[i]!;
    return 0;
  }

  /** UIDs of the messages flagged \\Deleted (EXPUNGE), ascending. */
  deletedUids(): number[] {
    const { n, flags, flagSets } = this.columns;
    const deleted = flagSets.lists.map((list) => list.some((f) => f === '\\Deleted' || f.toLowerCase() === '\\deleted'));
    const out: number[] = [];
    for (let i = 0; i < n; i++) if (deleted[flags[i]!]) out.push(this.uids[i]!);
    return out;
  }

  /** Keeps a message's packed header summary while the message is in the index. */
  keepSummary(uid: number, packed: string): void {
    const i = lowerBound(this.uids, uid);
    if (this.uids[i] === uid) this.columns.summaries[i] = packed;
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
    const { n, flags, sizes, flagSets } = this.columns;
    for (let i = 0; i < n; i++) {
      if (!flagSets.seen[flags[i]!]) unseen++;
      size += sizes[i]!;
    }
    this.counted = { uids: this.uids, modseq: this.modseq, loadGen: this.loadGen, unseen, size };
    return this.counted;
  }

  private async load(): Promise<void> {
    // The modseq first: whatever commits meanwhile is either in the list or caught up later.
    const mailbox = await this.store.getMailboxById(this.mailboxId);
    const metas = mailbox ? await this.store.listMessages(this.mailboxId) : [];
    const columns = new Columns(Math.max(metas.length, 16), new FlagSets());
    for (const meta of metas) columns.push(meta);
    this.columns = columns;
    this.uids = metas.map((m) => m.uid);
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

  /** Applies changed rows (or flag updates) then expunged UIDs; safe to apply twice (reads may overlap). */
  private apply(changed: readonly (MessageMeta | FlagUpdate)[], vanished: readonly number[]): void {
    const added: MessageMeta[] = [];
    const batch: ChangeBatch = { maxModseq: 0, uids: [] };
    const columns = this.columns;
    for (const meta of changed) {
      const i = lowerBound(this.uids, meta.uid);
      if (this.uids[i] === meta.uid) {
        if (columns.modseqs[i]! >= meta.modseq) continue;
        columns.flags[i] = columns.flagSets.numberOf(meta.flags);
        columns.modseqs[i] = meta.modseq;
      } else if (meta.uid > this.maxUid && 'blobHash' in meta) {
        added.push(meta);
      } else continue; // an old UID the index lacks was expunged meanwhile: UIDs never come back
      batch.uids.push(meta.uid);
      batch.maxModseq = Math.max(batch.maxModseq, meta.modseq);
    }
    if (added.length > 0) {
      columns.reserve(added.length);
      for (const meta of added) columns.push(meta);
      this.uids = this.uids.concat(added.map((e) => e.uid));
    }
    if (vanished.length > 0) {
      const drop = new Set(vanished);
      const uids = this.uids;
      if (uids.some((uid) => drop.has(uid))) {
        const kept = this.columns.filter(uids, (i) => !drop.has(uids[i]!));
        this.columns = kept.columns;
        this.uids = kept.uids;
        this.expungeGen++;
      }
    }
    // Flag lists no message has any more (keywords churned): renumbered once they outnumber the messages.
    if (this.columns.flagSets.lists.length > 64 + 2 * this.columns.n) {
      this.columns = this.columns.filter(this.uids, () => true).columns;
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
function isSeen(flags: readonly string[]): boolean {
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
    private readonly store: Mailstore,
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
    const index = this.indexes.get(event.mailboxId);
    if (index && !(event.delta && index.follow(event.delta))) index.markStale();
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
