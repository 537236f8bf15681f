// The selected mailbox as one session sees it (RFC 3501 2.3.1): the sequence-number <-> UID
// map, and the changes made elsewhere that are still to be announced. EXISTS and FETCH
// FLAGS can go out after any command; EXPUNGE is held back while a command that works on
// sequence numbers runs (RFC 3501 7.4.1), and until then expunged messages keep their slots.
import type { Mailbox } from '../store/types.js';
import { bad } from './errors.js';
import type { MailboxIndex } from './mailbox-index.js';
import { formatSet, resolveSet, type SequenceSet } from './message/sequence.js';
import { atom, type ImapValue } from './value.js';

export const SYSTEM_FLAGS = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];

export interface SyncOptions {
  allowExpunge: boolean;
  condstore: boolean;
  qresync: boolean;
  /** Claims \Recent for new messages up to a UID (store.claimRecent); absent on a read-only view. */
  claimRecent?: (upTo: number) => Promise<number>;
}

/** Ranges of \\Recent UIDs a view holds before it drops the ones that show nothing any more. */
const COMPACT_RANGES = 32;

export class SelectedMailbox {
  readonly id: number;
  readonly name: string;
  readonly uidvalidity: number;
  /** Ascending UIDs: index + 1 is the sequence number. */
  uids: number[];
  /** Highest mod-sequence whose flag changes this session has announced. */
  knownModseq: number;
  /** The hub's change generation this view must catch up with; 0 when up to date. */
  dirtySince = 0;
  /** The index's expunge and load generations this view has caught up with. */
  private expungeGen: number;
  private loadGen: number;
  /** UIDs expunged but not yet announced. */
  private readonly gone = new Set<number>();
  /** Flag changes this session announced itself (its own STORE): UID -> modseq. */
  readonly reported = new Map<number, number>();
  /**
   * UID ranges [lo, hi] that are \Recent in this session: what it claimed from the store's
   * watermark (RFC 3501 2.3.2: a message is recent in one session only). A read-only view
   * shows what is above the watermark without claiming it.
   */
  private readonly recent: [number, number][];
  /** Keywords this session has been told of in FLAGS: a FETCH may name only these (RFC 3501 7.2.6). */
  private readonly keywords = new Set<string>();

  constructor(
    mailbox: Mailbox,
    /** The process's shared index of the mailbox (fresh when the view is made); the view starts as its copy. */
    readonly index: MailboxIndex,
    readonly readOnly: boolean,
    /** The recent watermark before this view claimed: UIDs above it (up to `claimedUpTo`) are \Recent here. */
    recentAbove: number,
    claimedUpTo = Infinity,
  ) {
    this.id = mailbox.id;
    this.name = mailbox.name;
    this.uidvalidity = mailbox.uidvalidity;
    this.uids = index.uids;
    this.knownModseq = index.modseq;
    this.expungeGen = index.expungeGen;
    this.loadGen = index.loadGen;
    this.recent = recentAbove < claimedUpTo ? [[recentAbove + 1, claimedUpTo]] : [];
  }

  get exists(): number {
    return this.uids.length;
  }

  get maxUid(): number {
    return this.uids.length > 0 ? this.uids[this.uids.length - 1]! : 0;
  }

  /** How many of the view's UIDs are \Recent here, once counted: then kept as UIDs come and go. */
  private recentInView: number | undefined;

  recentCount(): number {
    if (this.recentInView === undefined) {
      this.compactRecent();
      let count = 0;
      for (const [lo, hi] of this.recent) count += lowerBound(this.uids, hi + 1) - lowerBound(this.uids, lo);
      this.recentInView = count;
    }
    return this.recentInView;
  }

  /**
   * Sessions that take turns claiming new mail each hold many ranges, most of them soon covering
   * only expunged UIDs. A range below the view's highest UID can gain no message (UIDs only grow),
   * so one showing none is dropped, and two with no message of the view between them become one.
   */
  private compactRecent(): void {
    const recent = this.recent;
    const uids = this.uids;
    const max = this.maxUid;
    let kept = 0;
    for (const range of recent) {
      const from = lowerBound(uids, range[0]);
      if (range[1] <= max && from === lowerBound(uids, range[1] + 1)) continue;
      const last = kept > 0 ? recent[kept - 1]! : undefined;
      if (last && range[1] <= max && lowerBound(uids, last[1] + 1) === from) last[1] = range[1];
      else recent[kept++] = range;
    }
    recent.length = kept;
  }

  /**
   * Runs once per message in SEARCH and FETCH. The ranges ascend and do not overlap (each claim
   * starts above the last), and sessions that take turns claiming hold many: a binary search.
   */
  isRecent(uid: number): boolean {
    const recent = this.recent;
    let lo = 0;
    let hi = recent.length;
    // The first range whose top is >= uid.
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (recent[mid]![1] < uid) lo = mid + 1;
      else hi = mid;
    }
    return lo < recent.length && recent[lo]![0] <= uid;
  }

  /**
   * Adds UIDs lo..hi to what is \Recent here: joined to the last range when they follow it, and
   * ranges below the lowest UID still shown dropped, so a long session keeps a few ranges.
   */
  private addRecent(lo: number, hi: number): void {
    const recent = this.recent;
    // UIDs the view already shows (a claim that raced another session's): counted again when next asked.
    if (lo <= this.maxUid) this.recentInView = undefined;
    const last = recent[recent.length - 1];
    if (last && last[1] + 1 >= lo) last[1] = Math.max(last[1], hi);
    else if (recent.push([lo, hi]) > COMPACT_RANGES) this.compactRecent();
    const lowest = this.uids.length > 0 ? this.uids[0]! : Infinity;
    let drop = 0;
    while (drop < recent.length - 1 && recent[drop]![1] < lowest) drop++;
    if (drop > 0) recent.splice(0, drop);
  }

  isGone(uid: number): boolean {
    return this.gone.size > 0 && this.gone.has(uid);
  }

  /** The sequence number of a UID, 0 when it is not in the view. */
  seqOf(uid: number): number {
    const i = lowerBound(this.uids, uid);
    return this.uids[i] === uid ? i + 1 : 0;
  }

  /** UIDs of a sequence set or UID set, ascending, without duplicates. */
  resolve(set: SequenceSet, byUid: boolean): number[] {
    const uids = this.uids;
    // Each range as a span [from, to) of positions in the view, then the spans merged.
    const spans: [number, number][] = [];
    if (byUid) {
      for (const [lo, hi] of resolveSet(set, this.maxUid)) spans.push([lowerBound(uids, lo), lowerBound(uids, hi + 1)]);
    } else {
      const ranges = resolveSet(set, this.exists);
      // RFC 3501 9: a sequence number beyond the mailbox (other than "*") is an error.
      for (const [lo, hi] of ranges) if (hi > this.exists || lo < 1) throw bad('invalid message sequence number');
      for (const [lo, hi] of ranges) spans.push([lo - 1, hi]);
    }
    if (spans.length === 1) return uids.slice(spans[0]![0], spans[0]![1]);
    spans.sort((a, b) => a[0] - b[0]);
    const out: number[] = [];
    let end = 0;
    for (const [from, to] of spans) {
      for (let i = Math.max(from, end); i < to; i++) out.push(uids[i]!);
      end = Math.max(end, to);
    }
    return out;
  }

  /** Marks UIDs as expunged (by this session or found by a sync); announced by announceExpunges. */
  expunged(uids: number[]): void {
    for (const uid of uids) if (this.seqOf(uid) > 0) this.gone.add(uid);
  }

  /** Catches up with the store (through the shared index) and returns the untagged responses to send. */
  async sync(options: SyncOptions): Promise<ImapValue[][]> {
    const out: ImapValue[][] = [];
    const since = this.dirtySince;
    if (since > 0) {
      this.dirtySince = 0;
      const index = this.index;
      try {
        await index.fresh();
      } catch (error) {
        this.dirtySince = since; // still behind: the next sync tries again
        throw error;
      }
      const fresh = index.uids;
      const oldMax = this.maxUid;
      if (index.expungeGen !== this.expungeGen) {
        // Messages left the index: the ones this view still shows are expunged.
        this.expungeGen = index.expungeGen;
        let j = 0;
        for (const uid of this.uids) {
          while (j < fresh.length && fresh[j]! < uid) j++;
          if (fresh[j] !== uid) this.gone.add(uid);
        }
      }
      const added = fresh.slice(lowerBound(fresh, oldMax + 1));
      if (added.length > 0) {
        const top = added[added.length - 1]!;
        // Another session of this process claims them (or did): nothing is recent here, no round trip.
        // Noted before the claim, so sessions woken together leave it to the first one.
        if (options.claimRecent && index.recentUid < top) {
          index.noteRecent(top);
          const before = await options.claimRecent(top);
          if (before < top) this.addRecent(before + 1, top);
        }
        // The same messages as the index: share its array instead of copying.
        if (this.recentInView !== undefined) for (const uid of added) if (this.isRecent(uid)) this.recentInView++;
        this.uids = this.gone.size === 0 && this.uids.length + added.length === fresh.length ? fresh : this.uids.concat(added);
        out.push([this.exists, atom('EXISTS')]);
        // RFC 3501 7.3.2: RECENT goes with every change of the mailbox size.
        out.push([this.recentCount(), atom('RECENT')]);
      }
      let changed = index.changedSince(this.knownModseq, this.loadGen);
      if (!changed) {
        // The index was reloaded or its change log no longer reaches back: scan it.
        const known = this.knownModseq;
        changed = index.all().filter((e) => e.modseq > known);
        this.loadGen = index.loadGen;
      }
      let newKeywords = false;
      const fetches: ImapValue[][] = [];
      for (const meta of changed) {
        if (meta.uid > oldMax || (this.reported.get(meta.uid) ?? 0) >= meta.modseq || this.gone.has(meta.uid)) continue;
        const seq = this.seqOf(meta.uid);
        if (seq === 0) continue;
        if (this.learnKeywords(meta.flags)) newKeywords = true;
        const data: ImapValue[] = [atom('UID'), meta.uid, atom('FLAGS'), this.flagsOf(meta)];
        if (options.condstore) data.push(atom('MODSEQ'), [meta.modseq]);
        fetches.push([seq, atom('FETCH'), data]);
      }
      // RFC 3501 7.2.6: FLAGS names every new keyword before any FETCH uses it.
      if (newKeywords) out.push(...this.flagsResponses());
      out.push(...fetches);
      this.knownModseq = Math.max(this.knownModseq, index.modseq);
      this.reported.clear();
    }
    if (options.allowExpunge) out.push(...this.announceExpunges(options.qresync));
    return out;
  }

  /** EXPUNGE (or VANISHED with QRESYNC, RFC 7162 3.2.10) for expunged messages, leaving the view without them. */
  announceExpunges(qresync: boolean): ImapValue[][] {
    if (this.gone.size === 0) return [];
    const gone = [...this.gone].sort((a, b) => a - b);
    this.gone.clear();
    const out: ImapValue[][] = [];
    if (qresync) out.push([atom('VANISHED'), atom(formatSet(gone))]);
    else {
      // Ascending, each number as it is after the previous removals.
      gone.forEach((uid, k) => {
        const seq = this.seqOf(uid);
        if (seq > 0) out.push([seq - k, atom('EXPUNGE')]);
      });
    }
    const drop = new Set(gone);
    if (this.recentInView !== undefined) for (const uid of drop) if (this.isRecent(uid) && this.seqOf(uid) > 0) this.recentInView--;
    this.uids = this.uids.filter((uid) => !drop.has(uid));
    return out;
  }

  /** Learns the keywords among flags; true when one was new, so FLAGS must go out again before they are used. */
  learnKeywords(flags: readonly string[]): boolean {
    let added = false;
    for (let i = 0; i < flags.length; i++) {
      const flag = flags[i]!;
      if (flag.charCodeAt(0) !== 0x5c && !this.keywords.has(flag)) {
        this.keywords.add(flag);
        added = true;
      }
    }
    return added;
  }

  /** FLAGS and OK [PERMANENTFLAGS] naming the system flags and every keyword learnt (RFC 3501 7.2.6, 7.1). */
  flagsResponses(): ImapValue[][] {
    const flags = [...SYSTEM_FLAGS, ...this.keywords];
    const permanent = this.readOnly ? '' : `${flags.join(' ')} \\*`;
    return [
      [atom('FLAGS'), flags.map(atom)],
      [atom('OK'), atom(`[PERMANENTFLAGS (${permanent})]`), atom('flags permitted')],
    ];
  }

  /** Flags as sent to this session: \Recent added for messages recent here. */
  flagsOf(meta: { uid: number; flags: string[] }): ImapValue[] {
    const flags: ImapValue[] = meta.flags.map((f) => atom(f));
    if (this.isRecent(meta.uid)) flags.push(atom('\\Recent'));
    return flags;
  }
}

/** The first index whose value is >= n. */
export function lowerBound(sorted: number[], n: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < n) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
