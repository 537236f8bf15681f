// Runs a search key over a mailbox's messages, loading content only where metadata
// cannot decide (see matches() in search.ts): first metadata, then the header summaries
// (kept with the shared index), then the parse and bytes, each loaded in batches only for
// the messages still undecided.
import type { MessageMeta } from '../../store/types.js';
import { loadSummaries, type IndexEntry } from '../mailbox-index.js';
import type { MessageCache } from './parsed.js';
import { keyNeeds, matches, NEED_RAW, type SearchKey, type SearchMessage, type SearchScope } from './search.js';

export interface Candidate {
  seq: number;
  /** The index entry (its header summary is filled in and kept when a key needs it). */
  meta: MessageMeta | IndexEntry;
  recent: boolean;
}

export function toSearchMessage(c: Candidate): SearchMessage {
  const { meta } = c;
  return { seq: c.seq, uid: meta.uid, flags: meta.flags, recent: c.recent, size: meta.size, internalDate: meta.internalDate, modseq: meta.modseq };
}

/** Messages whose content is loaded at once for keys the summary cannot answer. */
const CONTENT_PAGE = 200;

/** The candidates the key matches, in the order given. */
export async function runSearch(key: SearchKey, candidates: Candidate[], scope: SearchScope, cache: MessageCache): Promise<Candidate[]> {
  const needsRaw = keyNeeds(key) === NEED_RAW;
  const results: (boolean | undefined)[] = new Array(candidates.length);
  let undecided: number[] = [];
  // Metadata first, through one scratch message: most searches end here.
  const scratch: SearchMessage = { seq: 0, uid: 0, flags: [], recent: false, size: 0, internalDate: new Date(0), modseq: 0, summary: undefined };
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i]!;
    scratch.seq = c.seq;
    scratch.uid = c.meta.uid;
    scratch.flags = c.meta.flags;
    scratch.recent = c.recent;
    scratch.size = c.meta.size;
    scratch.internalDate = c.meta.internalDate;
    scratch.modseq = c.meta.modseq;
    results[i] = matches(key, scratch, scope);
    if (results[i] === undefined) undecided.push(i);
  }
  if (undecided.length > 0 && usesSummary(key)) {
    const entries: IndexEntry[] = undecided.map((i) => candidates[i]!.meta);
    await loadSummaries(entries, cache);
    const still: number[] = [];
    for (const i of undecided) {
      const summary = (candidates[i]!.meta as IndexEntry).summary;
      if (!summary) {
        results[i] = false; // expunged meanwhile
        continue;
      }
      const c = candidates[i]!;
      scratch.seq = c.seq;
      scratch.uid = c.meta.uid;
      scratch.flags = c.meta.flags;
      scratch.recent = c.recent;
      scratch.size = c.meta.size;
      scratch.internalDate = c.meta.internalDate;
      scratch.modseq = c.meta.modseq;
      scratch.summary = summary;
      results[i] = matches(key, scratch, scope);
      if (results[i] === undefined) still.push(i);
    }
    undecided = still;
  }
  for (let p = 0; p < undecided.length; p += CONTENT_PAGE) {
    const page = undecided.slice(p, p + CONTENT_PAGE);
    const hashes = page.map((i) => candidates[i]!.meta.blobHash);
    const parsed = await cache.parsedMany(hashes, false);
    const raws = needsRaw ? await cache.rawMany(hashes) : undefined;
    for (const i of page) {
      const msg = toSearchMessage(candidates[i]!);
      const hash = candidates[i]!.meta.blobHash;
      msg.parsed = parsed.get(hash);
      if (raws) msg.raw = raws.get(hash);
      results[i] = msg.parsed && (!raws || msg.raw) ? matches(key, msg, scope) : false;
    }
  }
  const found: Candidate[] = [];
  for (let i = 0; i < candidates.length; i++) if (results[i]) found.push(candidates[i]!);
  return found;
}

/** Whether a key reads the envelope (FROM, TO, CC, BCC, SUBJECT, SENT*): the summary answers those. */
function usesSummary(key: SearchKey): boolean {
  switch (key.kind) {
    case 'envelope':
    case 'sentdate':
      return true;
    case 'not':
      return usesSummary(key.key);
    case 'or':
      return usesSummary(key.a) || usesSummary(key.b);
    case 'and':
      return key.keys.some(usesSummary);
    default:
      return false;
  }
}
