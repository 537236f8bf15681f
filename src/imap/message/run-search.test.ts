import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as fx from '../../../test/fixtures/messages.js';
import { SqliteStore } from '../../store/sqlite.js';
import type { Store } from '../../store/types.js';
import { MessageCache, PARSED_VERSION } from './parsed.js';
import { runSearch, type Candidate } from './run-search.js';
import { parseSearchProgram } from './search.js';
import { atom } from '../value.js';

describe('running a search on the store', () => {
  let store: SqliteStore;
  let counted: Store;
  const calls = { getBlob: 0, getBlobs: 0, getBlobMeta: 0, getBlobMetas: 0, setBlobMeta: 0, setBlobMetas: 0 };
  let candidates: Candidate[];

  before(async () => {
    store = await SqliteStore.open(mkdtempSync(path.join(tmpdir(), 'quill-search-')));
    await store.addDomain('example.com');
    const user = await store.addUser({ address: 'a@example.com', passwordHash: 'x' });
    for (const raw of [fx.simple, fx.attachment, fx.nested, fx.eightBit]) await store.deliver(raw, [{ userId: user.id }]);
    const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
    await store.setFlags(inbox.id, [2], 'add', ['\\Seen']);
    const metas = await store.listMessages(inbox.id);
    candidates = metas.map((meta, i) => ({ seq: i + 1, meta, recent: false }));
    counted = new Proxy(store, {
      get(target, prop, receiver) {
        if (typeof prop === 'string' && prop in calls) calls[prop as keyof typeof calls]++;
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  });
  after(async () => store.close());

  const search = async (cache: MessageCache, text: string): Promise<number[]> => {
    const args = text.split(' ').map((w) => (w.startsWith('"') ? w.slice(1, -1) : atom(w)));
    const found = await runSearch(parseSearchProgram(args).key, candidates, { maxSeq: 4, maxUid: 4, now: Date.now() }, cache);
    return found.map((m) => m.seq);
  };

  it('answers metadata keys without touching message content', async () => {
    const cache = new MessageCache(counted);
    assert.deepEqual(await search(cache, 'SEEN'), [2]);
    assert.deepEqual(await search(cache, 'OR UNSEEN LARGER 1 NOT 1:2'), [3, 4]);
    assert.deepEqual(calls, { getBlob: 0, getBlobs: 0, getBlobMeta: 0, getBlobMetas: 0, setBlobMeta: 0, setBlobMetas: 0 });
  });

  it('parses each message once, caches the parse beside the blob in one write, and reads bytes only for body keys', async () => {
    const cache = new MessageCache(counted);
    assert.deepEqual(await search(cache, 'FROM example'), [1, 2, 3, 4]);
    assert.equal(calls.setBlobMetas, 1, 'one write for the four new parses');
    assert.equal(calls.getBlobs, 1, 'one read for the four messages');
    // The parses are written in the background: wait for them.
    let stored = await store.getBlobMeta(candidates[0]!.meta.blobHash);
    for (let i = 0; i < 100 && !stored; i++) stored = await new Promise((resolve) => setTimeout(resolve, 10)).then(() => store.getBlobMeta(candidates[0]!.meta.blobHash));
    const json = JSON.parse(stored!);
    assert.equal(json.v, PARSED_VERSION);
    // A second process (a fresh cache) reuses the stored parse instead of the bytes.
    for (const c of candidates) delete (c.meta as { summary?: unknown }).summary; // a new index too
    const fresh = new MessageCache(counted);
    const before = { ...calls };
    assert.deepEqual(await search(fresh, 'SUBJECT café'), [2]);
    assert.equal(calls.getBlobs, before.getBlobs);
    assert.equal(calls.getBlobMetas, before.getBlobMetas + 1);
    // The header summary stays with the message: the next envelope search reads nothing.
    assert.deepEqual(await search(fresh, 'FROM example'), [1, 2, 3, 4]);
    assert.equal(calls.getBlobMetas, before.getBlobMetas + 1);
    assert.deepEqual(await search(fresh, 'UNSEEN BODY needle-inner'), [3]);
    assert.equal(calls.getBlobs, before.getBlobs + 1, 'the three unseen messages in one read');
  });
});
