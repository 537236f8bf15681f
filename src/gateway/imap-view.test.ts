// The view reconciliation after an IMAP session moved to another node: every branch of
// imap-view.ts's reasoning, on small mailboxes written out by hand.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatUids, parseUids, reconcile, type KnownView, type NodeFacts } from './imap-view.js';

const plain = { qresync: false, condstore: false };

/** The client selected a mailbox holding UIDs 1..5 at modseq 10, UIDNEXT 6. */
function known(overrides: Partial<KnownView> = {}): KnownView {
  return { uidValidity: 7, modseq: 10, uidNext: 6, exists0: 5, events: [], told: 5, ...overrides };
}

function facts(overrides: Partial<NodeFacts> = {}): NodeFacts {
  return { uidValidity: 7, uids: [1, 2, 3, 4, 5], vanished: [], changed: [], ...overrides };
}

describe('IMAP view reconciliation', () => {
  it('tells nothing when nothing changed', () => {
    assert.deepEqual(reconcile(known(), facts(), plain), { ok: true, responses: [], expunged: 0, added: 0 });
  });

  it('ends the session when UIDVALIDITY changed', () => {
    const result = reconcile(known(), facts({ uidValidity: 8 }), plain);
    assert.equal(result.ok, false);
  });

  it('announces new messages with EXISTS', () => {
    const result = reconcile(known(), facts({ uids: [1, 2, 3, 4, 5, 6, 7] }), plain);
    assert.deepEqual(result, { ok: true, responses: ['* 7 EXISTS'], expunged: 0, added: 2 });
  });

  it('sends flag changes with the new numbering, MODSEQ when CONDSTORE is on', () => {
    const changed = [{ uid: 4, flags: '\\Seen \\Flagged', modseq: 12 }, { uid: 2, flags: '', modseq: 11 }];
    assert.deepEqual(reconcile(known(), facts({ changed }), plain), {
      ok: true,
      responses: ['* 4 FETCH (UID 4 FLAGS (\\Seen \\Flagged))', '* 2 FETCH (UID 2 FLAGS ())'],
      expunged: 0,
      added: 0,
    });
    const withModseq = reconcile(known(), facts({ changed: [changed[0]!] }), { qresync: false, condstore: true });
    assert.deepEqual(withModseq.ok && withModseq.responses, ['* 4 FETCH (UID 4 FLAGS (\\Seen \\Flagged) MODSEQ (12))']);
  });

  it('expunges what vanished, highest position first, before EXISTS and FETCH', () => {
    const result = reconcile(known(), facts({ uids: [1, 3, 5, 6], vanished: [2, 4], changed: [{ uid: 5, flags: '\\Seen', modseq: 13 }] }), plain);
    assert.deepEqual(result, { ok: true, responses: ['* 4 EXPUNGE', '* 2 EXPUNGE', '* 4 EXISTS', '* 3 FETCH (UID 5 FLAGS (\\Seen))'], expunged: 2, added: 1 });
  });

  it('says VANISHED instead to a client that enabled QRESYNC', () => {
    const result = reconcile(known(), facts({ uids: [1, 5], vanished: [2, 3, 4] }), { qresync: true, condstore: true });
    assert.deepEqual(result.ok && result.responses, ['* VANISHED 2:4']);
  });

  it('follows what the client was told since the SELECT', () => {
    // Told: 6 and 7 arrived (EXISTS 7), then message 2 went (EXPUNGE 2): the client holds
    // 1 3 4 5 6 7. Meanwhile 3 and 5 went and 8 came.
    const view = known({ events: [{ kind: 'exists', count: 7 }, { kind: 'expunge', seq: 2 }], told: 6 });
    const result = reconcile(view, facts({ uids: [1, 4, 6, 7, 8], vanished: [2, 3, 5] }), plain);
    assert.deepEqual(result, { ok: true, responses: ['* 4 EXPUNGE', '* 2 EXPUNGE', '* 5 EXISTS'], expunged: 2, added: 1 });
  });

  it('follows VANISHED responses the client was told', () => {
    const view = known({ events: [{ kind: 'vanished', uids: [1, 2] }], told: 3 });
    const result = reconcile(view, facts({ uids: [3, 4, 5], vanished: [1, 2] }), { qresync: true, condstore: true });
    assert.deepEqual(result, { ok: true, responses: [], expunged: 0, added: 0 });
  });

  it('ends the session when the counts do not add up', () => {
    // The SELECT said 5, but the mailbox at that modseq held 4 (a listing raced a change).
    assert.equal(reconcile(known(), facts({ uids: [1, 2, 3, 4] }), plain).ok, false);
    // The client believes in 6 messages, the record gives 5.
    assert.equal(reconcile(known({ told: 6 }), facts(), plain).ok, false);
    // An EXPUNGE beyond the view.
    assert.equal(reconcile(known({ events: [{ kind: 'expunge', seq: 9 }], told: 4 }), facts(), plain).ok, false);
    // More announced than ever existed.
    assert.equal(reconcile(known({ events: [{ kind: 'exists', count: 8 }], told: 8 }), facts({ uids: [1, 2, 3, 4, 5, 6] }), plain).ok, false);
    // Gone without an expunge since the modseq: the record is wrong somewhere.
    assert.equal(reconcile(known({ exists0: 5 }), facts({ uids: [1, 2, 3, 4], vanished: [] , changed: [] }), plain).ok, false);
    // The event log overflowed.
    assert.equal(reconcile(known({ events: undefined }), facts(), plain).ok, false);
  });

  it('ends the session when a message the client may or may not have seen came and went', () => {
    // EXISTS 6 was told; UID 6 is gone and 7 is there: was 6 announced or skipped?
    const view = known({ events: [{ kind: 'exists', count: 6 }], told: 6 });
    assert.equal(reconcile(view, facts({ uids: [1, 2, 3, 4, 5, 7], vanished: [6] }), plain).ok, false);
  });

  it('reads and writes UID sets', () => {
    assert.deepEqual(parseUids('1:3,7,9:8'), [1, 2, 3, 7, 8, 9]);
    assert.equal(parseUids('1:*'), undefined);
    assert.equal(parseUids('1:5000000'), undefined);
    assert.equal(formatUids([9, 1, 2, 3, 7, 8]), '1:3,7:9');
  });
});
