// FETCH and UID FETCH (RFC 3501 6.4.5, 6.4.8) with CHANGEDSINCE and VANISHED (RFC 7162
// 3.1.4, 3.2.6). Metadata comes from the shared mailbox index; content is loaded only for the
// items that need it, a page at a time through the shared parse cache; responses are built
// into large buffers and stream with backpressure.
import type { FlagUpdate, MessageMeta } from '../../store/types.js';
import { argsText, atomText, list, number, sequenceSet } from '../args.js';
import { bad, CODE, no } from '../errors.js';
import { fetchData, FetchSyntaxError, formatInternalDate, itemsNeed, itemsSetSeen, parseFetchItems, UnknownCteError, type FetchItem, type FetchMessage } from '../message/fetch-items.js';
import { formatSet, resolveSet } from '../message/sequence.js';
import type { SelectedMailbox } from '../selected.js';
import type { CommandInfo, Session } from '../session.js';
import { atom, type ImapValue } from '../value.js';
import { ResponseBatch } from '../writer.js';
import { arity } from './types.js';

const PAGE = 500;
/** Bytes of message content a FETCH holds at once. */
const RAW_PAGE_BYTES = 8 * 1024 * 1024;

export async function fetch(s: Session, args: ImapValue[], info: CommandInfo): Promise<void> {
  arity(args, 2, 3);
  const selected = s.selected!;
  const set = sequenceSet(args[0]);
  let items: FetchItem[];
  try {
    items = parseFetchItems(argsText([args[1]!]));
  } catch (error) {
    if (error instanceof FetchSyntaxError) throw bad(error.message);
    throw error;
  }
  let changedSince: number | undefined;
  let vanished = false;
  if (args[2] !== undefined) {
    const modifiers = list(args[2], 'FETCH modifiers');
    for (let i = 0; i < modifiers.length; i++) {
      const name = atomText(modifiers[i]);
      if (name === 'CHANGEDSINCE') changedSince = number(modifiers[++i], 'CHANGEDSINCE');
      else if (name === 'VANISHED') vanished = true;
      else throw bad('unknown FETCH modifier');
    }
    // RFC 7162 3.2.6: VANISHED only in UID FETCH, with QRESYNC enabled and CHANGEDSINCE.
    if (vanished && (!info.uid || !s.enabled.has('QRESYNC') || changedSince === undefined)) throw bad('VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE');
  }
  // RFC 7162 3.1: CHANGEDSINCE and MODSEQ turn CONDSTORE on; MODSEQ then rides along.
  if (changedSince !== undefined || items.some((i) => i.kind === 'MODSEQ')) s.enableCondstore();
  if (changedSince !== undefined && !items.some((i) => i.kind === 'MODSEQ')) items.push({ kind: 'MODSEQ' });
  if (info.uid && !items.some((i) => i.kind === 'UID')) items.unshift({ kind: 'UID' });

  const uids = selected.resolve(set, info.uid);
  if (vanished) {
    // RFC 7162 3.2.6: the expunged UIDs within the client's UID set, which the view no longer holds.
    const ranges = resolveSet(set, selected.maxUid);
    // A range reaching "*" (the highest UID) also covers expunged UIDs above what is left.
    const open = ranges.some(([, hi]) => hi >= selected.maxUid);
    const inSet = (uid: number): boolean => (open && uid > selected.maxUid) || ranges.some(([lo, hi]) => uid >= lo && uid <= hi);
    const gone = (await s.ctx.deps.store.expungedSince(selected.id, changedSince!)).filter(inSet);
    if (gone.length > 0) s.send([atom('VANISHED'), [atom('EARLIER')], atom(formatSet(gone))]);
  }
  const need = itemsNeed(items);
  const setSeen = itemsSetSeen(items) && !selected.readOnly;
  const wantsFlags = items.some((i) => i.kind === 'FLAGS');
  // Metadata from the shared index (caught up with every committed change first).
  await selected.index.fresh();
  let entries = selected.index.pick(uids);
  if (changedSince !== undefined) entries = entries.filter((e) => e.modseq > changedSince!);
  const batch = new ResponseBatch();
  // Only metadata asked (FETCH 1:* (UID FLAGS), a client's resync): the responses as plain text.
  const metaOnly = !need.parsed && !need.raw && !setSeen && items.every((i) => META_ITEMS.has(i.kind));
  if (metaOnly) {
    // Walk the view and the entries together for sequence numbers; one flag list text per distinct flags.
    const flagText = new Map<string[], string>();
    const uidsInView = selected.uids;
    let seq = 0;
    for (const meta of entries) {
      while (seq < uidsInView.length && uidsInView[seq] !== meta.uid) seq++;
      if (seq === uidsInView.length) break;
      let flags = flagText.get(meta.flags);
      if (flags === undefined) {
        flagText.set(meta.flags, (flags = meta.flags.join(' ')));
        // RFC 3501 7.2.6: a keyword this session has not been told of goes out in FLAGS first.
        if (wantsFlags && selected.learnKeywords(meta.flags)) for (const values of selected.flagsResponses()) batch.add(values);
      }
      if (selected.isRecent(meta.uid)) flags = flags ? `${flags} \\Recent` : '\\Recent';
      batch.addLine(metaLine(items, seq + 1, meta, flags));
      if (batch.bytes >= 256 * 1024) {
        s.write(batch.take());
        await s.drain();
        if (s.isClosed) return;
      }
    }
    if (batch.count > 0) s.write(batch.take());
    return;
  }
  for (const page of contentPages(entries, need)) {
    const flagged = setSeen ? await markSeen(s, selected, page) : new Map<number, FlagUpdate>();
    // Content in one store read per page, not one per message.
    const parsed = need.parsed ? await s.ctx.cache.parsedMany(page.map((m) => m.blobHash)) : undefined;
    const raws = need.raw ? await s.ctx.cache.rawMany(page.map((m) => m.blobHash)) : undefined;
    for (const meta of page) {
      const seq = selected.seqOf(meta.uid);
      if (seq === 0) continue;
      const update = flagged.get(meta.uid);
      const flags = update?.flags ?? meta.flags;
      const msg: FetchMessage = { uid: meta.uid, flags, internalDate: meta.internalDate, size: meta.size, modseq: update?.modseq ?? meta.modseq };
      if (selected.isRecent(meta.uid)) msg.flags = [...flags, '\\Recent'];
      if (parsed) msg.parsed = parsed.get(meta.blobHash);
      if (raws) msg.raw = raws.get(meta.blobHash);
      if ((need.parsed && !msg.parsed) || (need.raw && !msg.raw)) continue; // expunged meanwhile
      let data: ImapValue[];
      try {
        data = fetchData(items, msg);
      } catch (error) {
        if (error instanceof UnknownCteError) throw no(error.message, CODE.unknownCte);
        throw error;
      }
      // RFC 3501 6.4.5: a \Seen set by this FETCH is reported with the new flags.
      if (update && !wantsFlags) data.push(atom('FLAGS'), selected.flagsOf({ uid: meta.uid, flags }));
      if ((wantsFlags || update) && selected.learnKeywords(flags)) for (const values of selected.flagsResponses()) batch.add(values);
      batch.add([seq, atom('FETCH'), data]);
      if (batch.bytes >= 256 * 1024) {
        s.write(batch.take());
        await s.drain();
        if (s.isClosed) return;
      }
    }
  }
  if (batch.count > 0) s.write(batch.take());
}

const META_ITEMS = new Set<FetchItem['kind']>(['UID', 'FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'MODSEQ']);

/** One FETCH response of metadata items, as fetchData and the writer would give it. */
function metaLine(items: FetchItem[], seq: number, msg: MessageMeta, flags: string): string {
  let line = `* ${seq} FETCH (`;
  for (let i = 0; i < items.length; i++) {
    if (i > 0) line += ' ';
    switch (items[i]!.kind) {
      case 'UID':
        line += `UID ${msg.uid}`;
        break;
      case 'FLAGS':
        line += `FLAGS (${flags})`;
        break;
      case 'INTERNALDATE':
        line += `INTERNALDATE "${formatInternalDate(msg.internalDate)}"`;
        break;
      case 'RFC822.SIZE':
        line += `RFC822.SIZE ${msg.size}`;
        break;
      case 'MODSEQ':
        line += `MODSEQ (${msg.modseq})`;
        break;
    }
  }
  return `${line})\r\n`;
}

/** Pages of messages small enough to hold their content in memory at once (all of them for metadata only). */
function* contentPages(entries: MessageMeta[], need: { parsed: boolean; raw: boolean }): Generator<MessageMeta[]> {
  if (!need.parsed && !need.raw) {
    yield entries;
    return;
  }
  let page: MessageMeta[] = [];
  let bytes = 0;
  for (const entry of entries) {
    page.push(entry);
    bytes += entry.size;
    if (page.length >= PAGE || (need.raw && bytes >= RAW_PAGE_BYTES)) {
      yield page;
      page = [];
      bytes = 0;
    }
  }
  if (page.length > 0) yield page;
}

/** Sets \Seen on the page's unseen messages; returns the updates (the index catches up from the change feed). */
async function markSeen(s: Session, selected: SelectedMailbox, page: MessageMeta[]): Promise<Map<number, FlagUpdate>> {
  const unseen = page.filter((m) => !m.flags.includes('\\Seen'));
  if (unseen.length === 0) return new Map();
  const result = await s.ctx.deps.store.setFlags(selected.id, unseen.map((m) => m.uid), 'add', ['\\Seen']);
  for (const update of result.updated) selected.reported.set(update.uid, update.modseq);
  return new Map(result.updated.map((u) => [u.uid, u]));
}
