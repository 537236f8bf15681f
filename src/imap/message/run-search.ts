// Runs a search key over a mailbox's messages, loading content only where metadata
// cannot decide (see matches() in search.ts).
import type { MessageMeta } from '../../store/types.js';
import type { MessageCache } from './parsed.js';
import { keyNeeds, matches, NEED_RAW, type SearchKey, type SearchMessage, type SearchScope } from './search.js';

export interface Candidate {
  seq: number;
  meta: MessageMeta;
  recent: boolean;
}

export function toSearchMessage(c: Candidate): SearchMessage {
  const { meta } = c;
  return { seq: c.seq, uid: meta.uid, flags: meta.flags, recent: c.recent, size: meta.size, internalDate: meta.internalDate, modseq: meta.modseq };
}

export async function runSearch(key: SearchKey, candidates: Candidate[], scope: SearchScope, cache: MessageCache): Promise<SearchMessage[]> {
  const needsRaw = keyNeeds(key) === NEED_RAW;
  const found: SearchMessage[] = [];
  for (const candidate of candidates) {
    const msg = toSearchMessage(candidate);
    let result = matches(key, msg, scope);
    if (result === undefined) {
      msg.parsed = await cache.parsedMessage(candidate.meta.blobHash);
      result = msg.parsed ? matches(key, msg, scope) : false;
    }
    if (result === undefined && needsRaw) {
      msg.raw = await cache.raw(candidate.meta.blobHash);
      result = msg.raw ? matches(key, msg, scope) : false;
    }
    if (result) found.push(msg);
  }
  return found;
}
