// SEARCH (RFC 3501 6.4.4) with ESEARCH results (RFC 4731) and MODSEQ (RFC 7162 3.1.5),
// SORT and THREAD (RFC 5256). Keys run through the message modules: metadata first,
// content only for messages a key still needs it for.
import { astring, atomText } from '../args.js';
import { loadSummaries, type IndexEntry } from '../mailbox-index.js';
import { bad, CODE, no } from '../errors.js';
import { runSearch, type Candidate } from '../message/run-search.js';
import { BadCharsetError, keyNeeds, NEED_RAW, parseSearchProgram, searchColumns, SearchSyntaxError, type SearchKey, type SearchScope } from '../message/search.js';
import { formatSet } from '../message/sequence.js';
import { parseSortCriteria, sortMessages, type SortMessage } from '../message/sort.js';
import { formatThreads, threadOrderedSubject, threadReferences } from '../message/thread.js';
import type { SelectedMailbox } from '../selected.js';
import type { CommandInfo, Session } from '../session.js';
import { atom, type ImapValue } from '../value.js';

/** Runs a parser of the message modules, turning its errors into BAD and NO [BADCHARSET]. */
function program<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof SearchSyntaxError) throw bad(error.message);
    if (error instanceof BadCharsetError) throw no(error.message, CODE.badCharset);
    throw error;
  }
}

interface Found {
  seq: number;
  uid: number;
  modseq: number;
  meta: IndexEntry;
}

/** Runs a key over the selected mailbox's shared index, in sequence order. */
async function searchSelected(s: Session, key: SearchKey): Promise<Found[]> {
  const selected = s.selected!;
  const index = selected.index;
  await index.fresh();
  const scope = { maxSeq: selected.exists, maxUid: selected.maxUid, now: Date.now() };
  const uids = selected.uids;
  // The view usually shares the index's array: then position i is sequence number i + 1.
  const shared = uids === index.uids;
  const entries = shared ? index.all() : index.pick(uids);
  if (keyNeeds(key) !== NEED_RAW) {
    // Metadata and header summaries the index holds decide most searches: one pass, no per-message objects.
    const found = quickSearch(selected, key, scope, entries, shared);
    if (found) return found;
  }
  const excluded = await fullTextExclusions(s, key);
  const candidates: Candidate[] = [];
  // Both ascending by UID: walk them together for the sequence numbers.
  for (let i = 0, seq = 0; i < entries.length; i++) {
    const meta = entries[i]!;
    while (uids[seq] !== meta.uid) seq++;
    if (selected.isGone(meta.uid) || excluded?.(meta.uid)) continue;
    candidates.push({ seq: seq + 1, meta, recent: selected.isRecent(meta.uid) });
  }
  const found = await runSearch(key, candidates, scope, s.ctx.cache);
  return found.map((c) => ({ seq: c.seq, uid: c.meta.uid, modseq: c.meta.modseq, meta: c.meta }));
}

/** BODY and TEXT keys every match must satisfy (the key itself, or parts of an AND). */
function requiredTextKeys(key: SearchKey): Extract<SearchKey, { kind: 'body' | 'text' }>[] {
  if (key.kind === 'body' || key.kind === 'text') return [key];
  if (key.kind === 'and') return key.keys.flatMap(requiredTextKeys);
  return [];
}

/**
 * BODY and TEXT through the store's full-text index (issue 21), when `imap.searchFullTextIndex`
 * is on: a message the index does not find for a required key is left out before any content is
 * read (unless its text was too long to index whole); the rest are still checked for the exact
 * substring. Like other servers' full-text search, the index matches words by their start, so a
 * string found only inside a word is not found: off by default, as RFC 3501 6.4.4 asks for the
 * substring wherever it is.
 */
async function fullTextExclusions(s: Session, key: SearchKey): Promise<((uid: number) => boolean) | undefined> {
  if (!s.ctx.deps.config.imap.searchFullTextIndex) return undefined;
  const keys = requiredTextKeys(key).filter((k) => /[\p{L}\p{N}]/u.test(k.value));
  if (keys.length === 0) return undefined;
  const store = s.ctx.deps.store;
  const excluded = new Set<number>();
  for (const k of keys) {
    const keep = new Set(await store.searchText(s.selected!.id, k.value, { orPartial: true }));
    for (const uid of s.selected!.uids) if (!keep.has(uid)) excluded.add(uid);
  }
  return (uid) => excluded.has(uid);
}

/** A search answered from the index alone; undefined when some message needs content (a summary not loaded yet). */
function quickSearch(selected: SelectedMailbox, key: SearchKey, scope: SearchScope, entries: readonly IndexEntry[], shared: boolean): Found[] | undefined {
  const uids = selected.uids;
  let seqs: Int32Array | undefined;
  const seqOf = (i: number): number => {
    if (shared) return i + 1;
    // Both ascending by UID: walk them together once for the sequence numbers.
    if (!seqs) {
      seqs = new Int32Array(entries.length);
      for (let j = 0, seq = 0; j < entries.length; j++) {
        while (uids[seq] !== entries[j]!.uid) seq++;
        seqs[j] = seq + 1;
      }
    }
    return seqs[i]!;
  };
  const column = searchColumns(key, { entries, seqOf, recent: (uid) => selected.isRecent(uid) }, scope);
  if (!column) return undefined;
  const found: Found[] = [];
  for (let i = 0; i < entries.length; i++) {
    if (column[i] === 0) continue;
    const meta = entries[i]!;
    if (selected.isGone(meta.uid)) continue;
    if (column[i] === 2) return undefined;
    found.push({ seq: seqOf(i), uid: meta.uid, modseq: meta.modseq, meta });
  }
  return found;
}

export async function search(s: Session, args: ImapValue[], info: CommandInfo): Promise<void> {
  const parsed = program(() => parseSearchProgram(args, { withReturn: true }));
  if (parsed.returns?.includes('SAVE')) throw bad('SEARCHRES is not supported');
  if (parsed.usesModseq) s.enableCondstore();
  const found = await searchSelected(s, parsed.key);
  const numbers = found.map((m) => (info.uid ? m.uid : m.seq));
  const highest = found.reduce((max, m) => Math.max(max, m.modseq), 0);
  if (!parsed.returns) {
    const values: ImapValue[] = [atom('SEARCH'), ...numbers];
    if (parsed.usesModseq && found.length > 0) values.push([atom('MODSEQ'), highest]);
    s.send(values);
    return;
  }
  // RFC 4731 3.1
  const values: ImapValue[] = [atom('ESEARCH'), [atom('TAG'), info.tag]];
  if (info.uid) values.push(atom('UID'));
  // Found in sequence order, which is also UID order: the numbers are ascending.
  if (numbers.length > 0 && parsed.returns.includes('MIN')) values.push(atom('MIN'), numbers[0]!);
  if (numbers.length > 0 && parsed.returns.includes('MAX')) values.push(atom('MAX'), numbers[numbers.length - 1]!);
  if (parsed.returns.includes('COUNT')) values.push(atom('COUNT'), numbers.length);
  if (numbers.length > 0 && parsed.returns.includes('ALL')) values.push(atom('ALL'), atom(formatSet(numbers)));
  if (parsed.usesModseq && found.length > 0) {
    // RFC 4731 3.2 / RFC 7162 3.1.5: with only MIN and/or MAX asked, the highest mod-sequence of the messages returned.
    const onlyEnds = parsed.returns.length > 0 && parsed.returns.every((r) => r === 'MIN' || r === 'MAX');
    const returned = [parsed.returns.includes('MIN') ? found[0]! : undefined, parsed.returns.includes('MAX') ? found[found.length - 1]! : undefined];
    values.push(atom('MODSEQ'), onlyEnds ? Math.max(...returned.map((m) => m?.modseq ?? 0)) : highest);
  }
  s.send(values);
}

async function withParse(s: Session, found: Found[], needed: boolean): Promise<(SortMessage & { found: Found })[]> {
  // SORT and THREAD read the envelope and References: the header summaries the index keeps.
  if (needed) await loadSummaries(found.map((f) => f.meta), s.ctx.cache);
  return found.map((f) => ({ seq: f.seq, uid: f.uid, size: f.meta.size, internalDate: f.meta.internalDate, parsed: needed ? f.meta.summary : undefined, found: f }));
}

// RFC 5256 3: SORT (criteria) charset search-key...
export async function sort(s: Session, args: ImapValue[], info: CommandInfo): Promise<void> {
  if (args.length < 3) throw bad('SORT needs criteria, a charset and search keys');
  const criteria = program(() => parseSortCriteria(args[0]));
  const charset = astring(args[1], 'charset');
  const parsed = program(() => parseSearchProgram(args.slice(2), { charset }));
  const found = await searchSelected(s, parsed.key);
  const needsParse = criteria.some((c) => c.key !== 'ARRIVAL' && c.key !== 'SIZE');
  const sorted = sortMessages(await withParse(s, found, needsParse), criteria);
  s.send([atom('SORT'), ...sorted.map((m) => (info.uid ? m.uid : m.seq))]);
}

// RFC 5256 3: THREAD algorithm charset search-key...
export async function thread(s: Session, args: ImapValue[], info: CommandInfo): Promise<void> {
  if (args.length < 3) throw bad('THREAD needs an algorithm, a charset and search keys');
  const algorithm = atomText(args[0]);
  if (algorithm !== 'ORDEREDSUBJECT' && algorithm !== 'REFERENCES') throw bad('unknown threading algorithm');
  const charset = astring(args[1], 'charset');
  const parsed = program(() => parseSearchProgram(args.slice(2), { charset }));
  const found = await searchSelected(s, parsed.key);
  const messages = await withParse(s, found, true);
  const idOf = (m: SortMessage): number => (info.uid ? m.uid : m.seq);
  const threads = algorithm === 'REFERENCES' ? threadReferences(messages, idOf) : threadOrderedSubject(messages, idOf);
  s.send(threads.length > 0 ? [atom('THREAD'), atom(formatThreads(threads))] : [atom('THREAD')]);
}
