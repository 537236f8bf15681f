// STORE and UID STORE (RFC 3501 6.4.6) with UNCHANGEDSINCE (RFC 7162 3.1.3).
import type { FlagOp, FlagUpdate } from '../../store/types.js';
import { atomText, flagList, list, number, sequenceSet } from '../args.js';
import { bad, CODE, no } from '../errors.js';
import { formatSet } from '../message/sequence.js';
import type { CommandInfo, Session } from '../session.js';
import { atom, type ImapValue } from '../value.js';
import type { CommandResult } from './types.js';

export async function store(s: Session, args: ImapValue[], info: CommandInfo): Promise<CommandResult | void> {
  if (args.length < 3) throw bad('STORE needs a set, an action and flags');
  const selected = s.selected!;
  const set = sequenceSet(args[0]);
  let i = 1;
  let unchangedSince: number | undefined;
  if (Array.isArray(args[1])) {
    const modifiers = list(args[1], 'STORE modifiers');
    if (modifiers.length !== 2 || atomText(modifiers[0]) !== 'UNCHANGEDSINCE') throw bad('unknown STORE modifier');
    unchangedSince = number(modifiers[1], 'UNCHANGEDSINCE');
    s.enableCondstore();
    i = 2;
  }
  const action = /^([+-]?)FLAGS(\.SILENT)?$/.exec(atomText(args[i]) ?? '');
  if (!action) throw bad('STORE action must be FLAGS, +FLAGS or -FLAGS, optionally .SILENT');
  const op: FlagOp = action[1] === '+' ? 'add' : action[1] === '-' ? 'remove' : 'replace';
  const silent = action[2] !== undefined;
  const rest = args.slice(i + 1);
  const flags = flagList(rest.length === 1 ? rest[0] : rest);
  if (selected.readOnly) throw no('mailbox is read-only', CODE.readOnly);
  const uids = selected.resolve(set, info.uid);
  if (uids.length === 0) return;

  const result = await s.ctx.deps.store.setFlags(selected.id, uids, op, flags, unchangedSince);
  const updated = new Map<number, FlagUpdate>(result.updated.map((u) => [u.uid, u]));
  for (const u of result.updated) selected.reported.set(u.uid, u.modseq);
  const failed = new Set(result.failed);
  const condstore = s.enabled.has('CONDSTORE');
  if (!silent || condstore) {
    // RFC 3501 6.4.6: the flags of every message stored to, changed or not.
    // RFC 7162 3.1.3: with .SILENT, still MODSEQ for the messages whose flags changed.
    const unchanged = silent ? [] : uids.filter((uid) => !updated.has(uid) && !failed.has(uid));
    const current = new Map<number, { flags: string[]; modseq: number }>();
    if (unchanged.length > 0) {
      await selected.index.fresh();
      for (const meta of selected.index.pick(unchanged)) current.set(meta.uid, meta);
    }
    for (const uid of uids) {
      const entry = updated.get(uid) ?? current.get(uid);
      const seq = selected.seqOf(uid);
      if (!entry || seq === 0) continue;
      const data: ImapValue[] = [];
      if (info.uid || condstore) data.push(atom('UID'), uid);
      if (!silent) {
        // RFC 3501 7.2.6: a new keyword is named in FLAGS before the FETCH that shows it.
        if (selected.learnKeywords(entry.flags)) for (const values of selected.flagsResponses()) s.send(values);
        data.push(atom('FLAGS'), selected.flagsOf({ uid, flags: entry.flags }));
      }
      if (condstore) data.push(atom('MODSEQ'), [entry.modseq]);
      s.send([seq, atom('FETCH'), data]);
    }
  }
  if (failed.size > 0) {
    const numbers = [...failed].map((uid) => (info.uid ? uid : selected.seqOf(uid))).sort((a, b) => a - b);
    return { code: `MODIFIED ${formatSet(numbers)}`, text: 'some messages were modified meanwhile' };
  }
}
