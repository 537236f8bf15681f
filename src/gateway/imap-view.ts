// What an IMAP client behind the gateway believes about its selected mailbox, and what it must
// be told after its session moved to another node so that its view matches the mailbox again
// (issue 5, "IMAP: after replay the client sees a consistent mailbox"). Pure functions: the
// front end (imap-front.ts) records, asks the new node, and sends what comes out of here.
//
// The gateway never learns the client's sequence-number-to-UID map directly; it knows the
// SELECT response (EXISTS, UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT) and every EXISTS, EXPUNGE and
// VANISHED that passed to the client since. After a failover it asks the new node for
//   L: the UIDs in the new node's view, in order (UID FETCH 1:* (UID) after the re-select), and
//   V: the UIDs expunged since the SELECT's HIGHESTMODSEQ (RFC 7162 3.2.5.2, VANISHED (EARLIER)
//      of a SELECT with QRESYNC on a second connection, asked after L),
//   with the flags changed since that modseq.
// The reasoning:
// - The client's view at SELECT time, S0, is every UID below the SELECT's UIDNEXT that either
//   still exists (L) or was expunged after the SELECT's modseq (V): messages below UIDNEXT
//   expunged before that modseq are in neither. |S0| must equal the SELECT's EXISTS, else the
//   modseq did not match the listing exactly and the gateway cannot be sure: BYE.
// - Messages added later have UIDs at or above that UIDNEXT (C = those in L or V, ascending);
//   every EXISTS that grew the view appended the next ones of C in order. A node announces
//   every message present when it looks, so a message still present now (in L) was surely
//   announced in its turn; one already gone (not in L) might have come and gone between two
//   looks and never been announced: then which message the client holds is ambiguous: BYE.
// - Each EXPUNGE the client was told removes the message at its position; VANISHED names UIDs.
// - The resulting view CV must have as many messages as the client was last told, everything
//   in CV missing from L must be in V (expunged after the SELECT), and everything in L not in
//   CV must come after CV's last message still in L (the client learns of it by EXISTS).
//   Anything else: BYE, never a silently inconsistent view.
// - The client is then told: EXPUNGE for each message of CV not in L, highest position first
//   so the lower numbers stay valid (or one VANISHED when it enabled QRESYNC, RFC 7162 3.2.10),
//   `* n EXISTS` when L is longer, and FETCH FLAGS for every message changed since the modseq
//   (a repeat of a change it saw is harmless), with the new node's sequence numbers, which are
//   now the client's too. Since L is the new node's own view, the new node's later EXISTS and
//   EXPUNGE responses are right for the client as well.

/** Something the client was told about its selected mailbox after the SELECT. */
export type ViewEvent = { kind: 'exists'; count: number } | { kind: 'expunge'; seq: number } | { kind: 'vanished'; uids: number[] };

/** Events kept per session; past it a failover ends the session with BYE instead. */
export const MAX_EVENTS = 20_000;

export interface KnownView {
  uidValidity: number;
  /** HIGHESTMODSEQ, UIDNEXT and EXISTS of the SELECT response (or of the last re-base). */
  modseq: number;
  uidNext: number;
  exists0: number;
  /** What the client was told since, in order (undefined once over MAX_EVENTS). */
  events: ViewEvent[] | undefined;
  /** The message count the client believes in now. */
  told: number;
}

export interface NodeFacts {
  uidValidity: number;
  /** UIDs in the new node's view, ascending. */
  uids: number[];
  /** UIDs expunged since KnownView.modseq. */
  vanished: number[];
  /** Messages changed since KnownView.modseq: flags as their wire text, e.g. `\Seen \Flagged`. */
  changed: { uid: number; flags: string; modseq: number }[];
}

export type Reconciled =
  | { ok: true; responses: string[]; expunged: number; added: number }
  | { ok: false; why: string };

/** What the client must be told so its view equals `facts.uids` (see the reasoning above). */
export function reconcile(known: KnownView, facts: NodeFacts, options: { qresync: boolean; condstore: boolean }): Reconciled {
  if (facts.uidValidity !== known.uidValidity) return { ok: false, why: 'the mailbox was recreated (UIDVALIDITY changed)' };
  if (!known.events) return { ok: false, why: 'too many changes to follow' };
  const present = new Set(facts.uids);
  const vanished = new Set(facts.vanished);
  const all = [...new Set([...facts.uids, ...facts.vanished])].sort((a, b) => a - b);
  const view = all.filter((uid) => uid < known.uidNext);
  if (view.length !== known.exists0) return { ok: false, why: `the mailbox had ${view.length} messages at the known modseq, the client was told ${known.exists0}` };
  const later = all.filter((uid) => uid >= known.uidNext);
  let next = 0;
  for (const event of known.events) {
    if (event.kind === 'exists') {
      const grow = event.count - view.length;
      if (grow < 0) return { ok: false, why: 'EXISTS went down' };
      if (next + grow > later.length) return { ok: false, why: 'more messages announced than the mailbox had' };
      for (const uid of later.slice(next, next + grow)) {
        if (!present.has(uid)) return { ok: false, why: `message ${uid} came and went; cannot tell whether the client saw it` };
        view.push(uid);
      }
      next += grow;
    } else if (event.kind === 'expunge') {
      if (event.seq < 1 || event.seq > view.length) return { ok: false, why: `EXPUNGE ${event.seq} outside the view` };
      view.splice(event.seq - 1, 1);
    } else {
      const gone = new Set(event.uids);
      for (let i = view.length - 1; i >= 0; i--) if (gone.has(view[i]!)) view.splice(i, 1);
    }
  }
  if (view.length !== known.told) return { ok: false, why: `the client was told ${known.told} messages, the record gives ${view.length}` };
  const responses: string[] = [];
  const gonePositions: number[] = [];
  let lastKept = 0;
  for (let i = 0; i < view.length; i++) {
    const uid = view[i]!;
    if (present.has(uid)) {
      lastKept = uid;
      continue;
    }
    if (!vanished.has(uid)) return { ok: false, why: `message ${uid} is gone but was not expunged since the known modseq` };
    gonePositions.push(i + 1);
  }
  const kept = new Set(view);
  const added = facts.uids.filter((uid) => !kept.has(uid));
  if (added.some((uid) => uid < lastKept)) return { ok: false, why: 'a message the client does not know sits between ones it knows' };
  if (gonePositions.length > 0) {
    if (options.qresync) responses.push(`* VANISHED ${formatUids(gonePositions.map((seq) => view[seq - 1]!))}`);
    else for (const seq of [...gonePositions].reverse()) responses.push(`* ${seq} EXPUNGE`);
  }
  if (added.length > 0) responses.push(`* ${facts.uids.length} EXISTS`);
  const seqOf = new Map(facts.uids.map((uid, i) => [uid, i + 1]));
  for (const change of facts.changed) {
    const seq = seqOf.get(change.uid);
    if (seq === undefined) continue;
    responses.push(`* ${seq} FETCH (UID ${change.uid} FLAGS (${change.flags})${options.condstore ? ` MODSEQ (${change.modseq})` : ''})`);
  }
  return { ok: true, responses, expunged: gonePositions.length, added: added.length };
}

/** A UID set in its short form: 1:3,7,9:10. */
export function formatUids(uids: number[]): string {
  const sorted = [...uids].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** Expands a UID set without `*` (VANISHED responses); undefined when malformed or huge. */
export function parseUids(text: string, limit = 1_000_000): number[] | undefined {
  const out: number[] = [];
  for (const part of text.trim().split(',')) {
    const match = /^(\d+)(?::(\d+))?$/.exec(part);
    if (!match) return undefined;
    const a = Number(match[1]);
    const b = match[2] === undefined ? a : Number(match[2]);
    const [lo, hi] = a <= b ? [a, b] : [b, a];
    if (hi - lo + out.length > limit) return undefined;
    for (let uid = lo; uid <= hi; uid++) out.push(uid);
  }
  return out;
}
