// FETCH and UID FETCH (RFC 3501 6.4.5, 6.4.8) with CHANGEDSINCE and VANISHED (RFC 7162
// 3.1.4, 3.2.6). Metadata is read from the store in pages; content is loaded only for the
// items that need it, through the shared parse cache; responses stream with backpressure.
import type { MessageMeta } from '../../store/types.js';
import { argsText, atomText, list, number, sequenceSet } from '../args.js';
import { bad, CODE, no } from '../errors.js';
import { fetchData, FetchSyntaxError, itemsNeed, itemsSetSeen, parseFetchItems, UnknownCteError, type FetchItem, type FetchMessage } from '../message/fetch-items.js';
import { formatSet, resolveSet } from '../message/sequence.js';
import type { SelectedMailbox } from '../selected.js';
import type { CommandInfo, Session } from '../session.js';
import { atom, type ImapValue } from '../value.js';
import { arity } from './types.js';

const PAGE = 1000;

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
  if (changedSince !== undefined || items.some((i) => i.kind === 'MODSEQ')) s.enabled.add('CONDSTORE');
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
  for await (const page of pages(s, selected, uids, changedSince)) {
    const flagged = setSeen ? await markSeen(s, selected, page) : new Set<number>();
    for (const meta of page) {
      const seq = selected.seqOf(meta.uid);
      if (seq === 0) continue;
      const msg: FetchMessage = { uid: meta.uid, flags: meta.flags, internalDate: meta.internalDate, size: meta.size, modseq: meta.modseq };
      if (selected.isRecent(meta.uid)) msg.flags = [...meta.flags, '\\Recent'];
      if (need.parsed) msg.parsed = await s.ctx.cache.parsedMessage(meta.blobHash);
      if (need.raw) msg.raw = await s.ctx.cache.raw(meta.blobHash);
      if ((need.parsed && !msg.parsed) || (need.raw && !msg.raw)) continue; // expunged meanwhile
      let data: ImapValue[];
      try {
        data = fetchData(items, msg);
      } catch (error) {
        if (error instanceof UnknownCteError) throw no(error.message, CODE.unknownCte);
        throw error;
      }
      // RFC 3501 6.4.5: a \Seen set by this FETCH is reported with the new flags.
      if (flagged.has(meta.uid) && !wantsFlags) data.push(atom('FLAGS'), selected.flagsOf(meta));
      s.send([seq, atom('FETCH'), data]);
      await s.drain();
      if (s.isClosed) return;
    }
  }
}

/** The messages of a UID list in pages of metadata, skipping ones gone from the store. */
export async function* pages(s: Session, selected: SelectedMailbox, uids: number[], changedSince?: number): AsyncGenerator<MessageMeta[]> {
  const { store } = s.ctx.deps;
  for (let i = 0; i < uids.length; i += PAGE) {
    const slice = uids.slice(i, i + PAGE);
    const first = slice[0]!;
    const last = slice[slice.length - 1]!;
    let metas: MessageMeta[];
    if (last - first < slice.length * 4) {
      const wanted = new Set(slice);
      metas = (await store.listMessages(selected.id, { fromUid: first, toUid: last, changedSince })).filter((m) => wanted.has(m.uid));
    } else {
      // A sparse set: one lookup per message beats reading the whole range.
      metas = [];
      for (const uid of slice) {
        const meta = await store.getMessage(selected.id, uid);
        if (meta && (changedSince === undefined || meta.modseq > changedSince)) metas.push(meta);
      }
    }
    yield metas;
  }
}

/** Sets \Seen on the page's unseen messages, updating their metadata; returns the UIDs changed. */
async function markSeen(s: Session, selected: SelectedMailbox, page: MessageMeta[]): Promise<Set<number>> {
  const unseen = page.filter((m) => !m.flags.includes('\\Seen'));
  if (unseen.length === 0) return new Set();
  const result = await s.ctx.deps.store.setFlags(selected.id, unseen.map((m) => m.uid), 'add', ['\\Seen']);
  const byUid = new Map(result.updated.map((u) => [u.uid, u]));
  for (const meta of unseen) {
    const update = byUid.get(meta.uid);
    if (!update) continue;
    meta.flags = update.flags;
    meta.modseq = update.modseq;
    selected.reported.set(meta.uid, update.modseq);
  }
  return new Set(byUid.keys());
}
