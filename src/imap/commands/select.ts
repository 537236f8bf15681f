// Opening and leaving a mailbox: SELECT and EXAMINE (RFC 3501 6.3.1-2, with CONDSTORE and
// QRESYNC parameters, RFC 7162 3.1.8 and 3.2.5), CLOSE (6.4.2), UNSELECT (RFC 3691), CHECK (6.4.1).
import { atomText, list, mailboxName, number, sequenceSet } from '../args.js';
import { bad, CODE, no } from '../errors.js';
import { formatSet, inSet, resolveSet } from '../message/sequence.js';
import { SelectedMailbox } from '../selected.js';
import type { CommandInfo, Session } from '../session.js';
import { atom, type ImapValue } from '../value.js';
import { arity, type CommandResult } from './types.js';


interface QresyncParams {
  uidvalidity: number;
  modseq: number;
  knownUids?: ReturnType<typeof sequenceSet>;
}

export async function select(s: Session, args: ImapValue[], info: CommandInfo): Promise<CommandResult> {
  arity(args, 1, 2);
  const name = mailboxName(args[0]);
  const readOnly = info.name === 'EXAMINE';
  let qresync: QresyncParams | undefined;
  if (args[1] !== undefined) {
    const params = list(args[1], 'SELECT parameters');
    for (let i = 0; i < params.length; i++) {
      const param = atomText(params[i]);
      if (param === 'CONDSTORE') s.enabled.add('CONDSTORE');
      else if (param === 'QRESYNC') {
        if (!s.enabled.has('QRESYNC')) throw bad('QRESYNC must be enabled first');
        const values = list(params[++i], 'QRESYNC parameters');
        if (values.length < 2 || values.length > 4) throw bad('QRESYNC takes UIDVALIDITY, MODSEQ and optional known UIDs');
        qresync = { uidvalidity: number(values[0], 'UIDVALIDITY'), modseq: number(values[1], 'MODSEQ') };
        if (values[2] !== undefined && !Array.isArray(values[2])) qresync.knownUids = sequenceSet(values[2]);
      } else throw bad('unknown SELECT parameter');
    }
  }
  // RFC 3501 6.3.1: a SELECT closes the mailbox selected before, even when it fails.
  if (s.selected) {
    s.selected = undefined;
    s.state = 'authenticated';
    if (s.enabled.has('QRESYNC')) s.untaggedStatus('OK', 'previous mailbox closed', 'CLOSED');
  }
  const { store } = s.ctx.deps;
  const generation = s.ctx.hub.userGeneration(s.userId);
  const mailbox = await store.getMailbox(s.userId, name);
  if (!mailbox) throw no(`no mailbox ${name}`, CODE.nonexistent);
  // The process's shared index of the mailbox: loaded once, then caught up from the change feed.
  const index = await s.ctx.hub.indexes.acquire(mailbox.id);
  let selected: SelectedMailbox;
  try {
    // RFC 3501 2.3.2: this session claims \Recent for what it lists; later arrivals are claimed by the sync that finds them.
    const listedUpTo = index.maxUid;
    // The watermark only grows: when it already covers the list there is nothing to claim (no store round trip).
    let recentAbove = mailbox.recentUid;
    if (!readOnly && Math.max(mailbox.recentUid, index.recentUid) < listedUpTo) {
      index.noteRecent(listedUpTo); // before the claim: sessions selecting together leave it to this one
      recentAbove = await store.claimRecent(mailbox.id, listedUpTo);
    } else if (!readOnly) recentAbove = Math.max(mailbox.recentUid, index.recentUid);
    selected = new SelectedMailbox(mailbox, index, readOnly, recentAbove, readOnly ? Infinity : listedUpTo);
  } catch (error) {
    s.ctx.hub.indexes.release(index);
    throw error;
  }
  // A change that landed while the view was loading is picked up by the next sync.
  if (s.ctx.hub.userGeneration(s.userId) > generation) selected.dirtySince = s.ctx.hub.userGeneration(s.userId);

  // RFC 3501 7.2.6: FLAGS names every keyword in use, so FETCH responses use only those.
  for (const flags of index.flagListsInUse()) selected.learnKeywords(flags);
  const [flagsResponse, permanentFlags] = selected.flagsResponses();
  s.send(flagsResponse!);
  s.send([selected.exists, atom('EXISTS')]);
  s.send([selected.recentCount(), atom('RECENT')]);
  const firstUnseen = index.firstUnseenUid();
  const unseenSeq = firstUnseen > 0 ? selected.seqOf(firstUnseen) : 0;
  if (unseenSeq > 0) s.untaggedStatus('OK', 'first unseen', `UNSEEN ${unseenSeq}`);
  s.send(permanentFlags!);
  // From the index, not the mailbox row read first: a message the index has not caught up with
  // yet must not count below UIDNEXT while EXISTS leaves it out.
  s.untaggedStatus('OK', 'predicted next UID', `UIDNEXT ${Math.max(index.uidNext, index.maxUid + 1)}`);
  s.untaggedStatus('OK', 'UIDs valid', `UIDVALIDITY ${mailbox.uidvalidity}`);
  s.untaggedStatus('OK', 'highest modseq', `HIGHESTMODSEQ ${selected.knownModseq}`);

  if (qresync && qresync.uidvalidity === mailbox.uidvalidity) {
    // RFC 7162 3.2.5.2: what vanished and what changed since the client's last known state.
    let vanished = await store.expungedSince(mailbox.id, qresync.modseq);
    if (qresync.knownUids) {
      const known = resolveSet(qresync.knownUids, Number.MAX_SAFE_INTEGER);
      vanished = vanished.filter((uid) => inSet(uid, known));
    }
    if (vanished.length > 0) s.send([atom('VANISHED'), [atom('EARLIER')], atom(formatSet(vanished))]);
    for (const meta of index.all()) {
      if (meta.modseq <= qresync.modseq) continue;
      const seq = selected.seqOf(meta.uid);
      if (seq > 0) s.send([seq, atom('FETCH'), [atom('UID'), meta.uid, atom('FLAGS'), selected.flagsOf(meta), atom('MODSEQ'), [meta.modseq]]]);
    }
  }
  s.selected = selected;
  s.state = 'selected';
  return { code: readOnly ? CODE.readOnly : CODE.readWrite, text: `${info.name} completed` };
}

// RFC 3501 6.4.2: expunges silently, then leaves the mailbox.
export async function close(s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 0);
  const selected = s.selected!;
  s.selected = undefined;
  s.state = 'authenticated';
  if (!selected.readOnly) await s.ctx.deps.store.expunge(selected.id);
}

// RFC 3691
export async function unselect(s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 0);
  s.selected = undefined;
  s.state = 'authenticated';
}

// RFC 3501 6.4.1: every write is durable already.
export async function check(_s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 0);
}
