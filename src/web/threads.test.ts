// Conversations (issue 21): grouped by Message-ID, In-Reply-To and References, with a subject
// fallback only for replies that carry no references.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { baseSubject, groupThreads, type Threadable } from './threads.js';

const m = (uid: number, subject: string, messageId: string | null, inReplyTo: string | null = null, references: string[] = []): Threadable => ({ uid, subject, messageId, inReplyTo, references });

describe('conversations', () => {
  it('strips reply and forward prefixes and list tags from the subject', () => {
    assert.deepEqual(baseSubject('Re: AW: Fwd: [team] Plans'), { base: 'plans', reply: true });
    assert.deepEqual(baseSubject('[team] Plans'), { base: 'plans', reply: false });
  });

  it('groups by references, falls back to the subject for a bare reply, and keeps unrelated mail apart', () => {
    // Newest first, as the list is sorted.
    const messages = [
      m(6, 'Plans', '<f@x>'), // same subject, not a reply: a new conversation
      m(5, 'Re: Plans', '<e@x>'), // a reply without references: joins by subject
      m(4, 'Other', '<d@x>'),
      m(3, 'Re: Plans', '<c@x>', '<b@x>', ['<a@x>', '<b@x>']),
      m(2, 'Re: Plans', '<b@x>', '<a@x>'),
      m(1, 'Plans', '<a@x>'),
    ];
    const threads = groupThreads(messages).map((t) => t.map((x) => x.uid));
    assert.deepEqual(threads, [[6], [5, 3, 2, 1], [4]]);
  });

  it('joins a thread whose root is missing through shared references', () => {
    const threads = groupThreads([m(2, 'Re: x', '<c@x>', '<root@x>'), m(1, 'Re: x', '<b@x>', '<root@x>')]);
    assert.deepEqual(threads.map((t) => t.map((x) => x.uid)), [[2, 1]]);
  });
});
