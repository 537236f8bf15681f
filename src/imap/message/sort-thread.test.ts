import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as fx from '../../../test/fixtures/messages.js';
import { atom } from '../value.js';
import { parseDateHeader } from './date.js';
import { parseMessage } from './parsed.js';
import { SearchSyntaxError } from './search.js';
import { parseSortCriteria, sortMessages, type SortMessage } from './sort.js';
import { baseSubject } from './subject.js';
import { formatThreads, threadOrderedSubject, threadReferences } from './thread.js';

interface Spec {
  subject?: string;
  from?: string;
  to?: string;
  cc?: string;
  date?: string;
  id?: string;
  refs?: string;
  inReplyTo?: string;
  size?: number;
  arrival?: string;
}

let seq = 0;
function msg(spec: Spec): SortMessage {
  const lines: string[] = [];
  if (spec.from) lines.push(`From: ${spec.from}`);
  if (spec.to) lines.push(`To: ${spec.to}`);
  if (spec.cc) lines.push(`Cc: ${spec.cc}`);
  if (spec.subject !== undefined) lines.push(`Subject: ${spec.subject}`);
  if (spec.date) lines.push(`Date: ${spec.date}`);
  if (spec.id) lines.push(`Message-ID: <${spec.id}>`);
  if (spec.refs) lines.push(`References: ${spec.refs}`);
  if (spec.inReplyTo) lines.push(`In-Reply-To: ${spec.inReplyTo}`);
  const raw = fx.crlf(`${lines.join('\n')}\n\nbody\n`);
  seq++;
  return { seq, uid: seq * 10, size: spec.size ?? raw.length, internalDate: new Date(spec.arrival ?? '2020-01-01T00:00:00Z'), parsed: parseMessage(raw) };
}
const reset = (): void => void (seq = 0);
const order = (list: SortMessage[], criteria: string): number[] =>
  sortMessages(list, parseSortCriteria(criteria.split(' ').map((a) => atom(a)))).map((m) => m.seq);

describe('base subject (RFC 5256 2.1)', () => {
  it('strips reply and forward markers, blobs, trailers and [fwd: ] wrappers', () => {
    const cases: [string, string, boolean][] = [
      ['Hello', 'Hello', false],
      ['Re: Hello', 'Hello', true],
      ['RE: re: Fwd: Hello', 'Hello', true],
      ['Re[2]: Hello', 'Hello', true],
      ['[list] Re: Hello', 'Hello', true],
      ['[list] Hello', 'Hello', false],
      ['[only-blob]', '[only-blob]', false],
      ['Hello (fwd)', 'Hello', true],
      ['[Fwd: Re: Hello]', 'Hello', true],
      ['  Hello \t  world  ', 'Hello world', false],
      ['=?utf-8?q?Re=3A_Caf=C3=A9?=', 'Café', true],
      ['', '', false],
      ['Re:', '', true],
    ];
    for (const [input, base, reply] of cases) assert.deepEqual(baseSubject(input), { base, replyOrForward: reply }, input);
  });
});

describe('Date header', () => {
  it('parses RFC 5322 dates, obsolete zones and two-digit years', () => {
    assert.equal(parseDateHeader('Mon, 7 Feb 1994 21:52:25 -0800')?.time, Date.parse('1994-02-08T05:52:25Z'));
    assert.equal(parseDateHeader('Mon, 7 Feb 1994 21:52:25 -0800')?.day, 19940207);
    assert.equal(parseDateHeader('7 Feb 94 21:52 PST')?.time, Date.parse('1994-02-08T05:52:00Z'));
    assert.equal(parseDateHeader('Wed, 17 Jul 1996 02:23:25 -0700 (PDT)')?.day, 19960717);
    assert.equal(parseDateHeader('garbage'), null);
    assert.equal(parseDateHeader(undefined), null);
  });
});

describe('SORT (RFC 5256)', () => {
  it('parses criteria and refuses nonsense', () => {
    assert.deepEqual(parseSortCriteria([atom('REVERSE'), atom('date'), atom('SUBJECT')]), [
      { key: 'DATE', reverse: true },
      { key: 'SUBJECT', reverse: false },
    ]);
    assert.throws(() => parseSortCriteria([]), SearchSyntaxError);
    assert.throws(() => parseSortCriteria([atom('REVERSE')]), SearchSyntaxError);
    assert.throws(() => parseSortCriteria([atom('BOGUS')]), SearchSyntaxError);
    assert.throws(() => parseSortCriteria(atom('DATE')), SearchSyntaxError);
  });

  it('sorts by every key, ties by sequence number', () => {
    reset();
    const list = [
      msg({ subject: 'Re: beta', from: 'Zed <zed@x>', to: 'b@x', cc: 'q@x', date: 'Tue, 2 Jan 2001 00:00:00 +0000', size: 300, arrival: '2020-01-03T00:00:00Z' }),
      msg({ subject: 'alpha', from: 'amy@x', to: 'c@x', date: 'Mon, 1 Jan 2001 00:00:00 +0000', size: 100, arrival: '2020-01-02T00:00:00Z' }),
      msg({ subject: '[list] Beta', from: '"Bob" <bob@x>', to: 'a@x', cc: 'p@x', size: 200, arrival: '2020-01-01T00:00:00Z' }),
    ];
    assert.deepEqual(order(list, 'ARRIVAL'), [3, 2, 1]);
    assert.deepEqual(order(list, 'SIZE'), [2, 3, 1]);
    assert.deepEqual(order(list, 'REVERSE SIZE'), [1, 3, 2]);
    assert.deepEqual(order(list, 'SUBJECT'), [2, 1, 3]);
    assert.deepEqual(order(list, 'SUBJECT REVERSE ARRIVAL'), [2, 1, 3]);
    assert.deepEqual(order(list, 'FROM'), [2, 3, 1]);
    assert.deepEqual(order(list, 'TO'), [3, 1, 2]);
    assert.deepEqual(order(list, 'CC'), [2, 3, 1]);
    // Message 3 has no Date: its internal date (2020) sorts it last.
    assert.deepEqual(order(list, 'DATE'), [2, 1, 3]);
    assert.deepEqual(order(list, 'DISPLAYFROM'), [2, 3, 1]);
    assert.deepEqual(order(list, 'REVERSE DISPLAYTO'), [2, 1, 3]);
  });
});

describe('THREAD (RFC 5256)', () => {
  it('formats threads as RFC 5256 shows them', () => {
    assert.equal(
      formatThreads([
        { id: 2, children: [] },
        { id: 3, children: [{ id: 6, children: [{ id: 4, children: [{ id: 23, children: [] }] }, { id: 44, children: [{ id: 7, children: [{ id: 96, children: [] }] }] }] }] },
      ]),
      '(2)(3 6 (4 23)(44 7 96))',
    );
    assert.equal(formatThreads([{ id: null, children: [{ id: 3, children: [] }, { id: 5, children: [] }] }]), '((3)(5))');
  });

  it('ORDEREDSUBJECT groups by base subject under the first message, threads by date', () => {
    reset();
    const list = [
      msg({ subject: 'b', date: 'Mon, 1 Jan 2001 03:00:00 +0000' }),
      msg({ subject: 'a', date: 'Mon, 1 Jan 2001 02:00:00 +0000' }),
      msg({ subject: 'Re: b', date: 'Mon, 1 Jan 2001 01:00:00 +0000' }),
      msg({ subject: 'RE: a', date: 'Mon, 1 Jan 2001 04:00:00 +0000' }),
      msg({ subject: 'c', date: 'Mon, 1 Jan 2001 05:00:00 +0000' }),
      msg({ subject: 'Re: b', date: 'Mon, 1 Jan 2001 06:00:00 +0000' }),
    ];
    assert.equal(formatThreads(threadOrderedSubject(list, (m) => m.seq)), '(3 (1)(6))(2 4)(5)');
    assert.equal(formatThreads(threadOrderedSubject(list, (m) => m.uid)), '(30 (10)(60))(20 40)(50)');
  });

  it('REFERENCES links by references and in-reply-to, keeps missing parents as dummies', () => {
    reset();
    const d = (h: number): string => `Mon, 1 Jan 2001 ${String(h).padStart(2, '0')}:00:00 +0000`;
    const list = [
      msg({ id: 'a', subject: 'root', date: d(1) }),
      msg({ id: 'b', subject: 'Re: root', refs: '<a>', date: d(2) }),
      msg({ id: 'c', subject: 'Re: root', refs: '<a> <b>', date: d(4) }),
      msg({ id: 'd', subject: 'Re: root', inReplyTo: '<a>', date: d(3) }),
      msg({ id: 'e', subject: 'other', refs: '<missing>', date: d(5) }),
      msg({ id: 'f', subject: 'Re: other', refs: '<missing>', date: d(6) }),
      msg({ id: 'g', subject: 'lonely', date: d(0) }),
    ];
    // The dummy for <missing> has two children, so it stays as the head of its thread.
    assert.equal(formatThreads(threadReferences(list, (m) => m.seq)), '(7)(1 (2 3)(4))((5)(6))');
  });

  it('REFERENCES merges threads by subject and survives loops, duplicates and self references', () => {
    reset();
    const d = (h: number): string => `Mon, 1 Jan 2001 ${String(h).padStart(2, '0')}:00:00 +0000`;
    const list = [
      msg({ id: 'x', subject: 'topic', date: d(1) }),
      msg({ id: 'y', subject: 'Re: topic', date: d(2) }), // no references: joined by subject
      msg({ id: 'x', subject: 'dup', date: d(3) }), // duplicate Message-ID
      msg({ id: 'p', subject: 'loop', refs: '<q>', date: d(4) }),
      msg({ id: 'q', subject: 'loop2', refs: '<p>', date: d(5) }),
      msg({ id: 's', subject: 'self', refs: '<s>', date: d(6) }),
      msg({ subject: 'no id', date: d(7) }),
    ];
    const out = formatThreads(threadReferences(list, (m) => m.seq));
    // p's reference made the dummy <q> its parent; q's own reference to p would be a loop.
    assert.equal(out, '(1 2)(3)(5 4)(6)(7)');
  });
});
