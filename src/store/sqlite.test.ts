import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SqliteStore } from './sqlite.js';
import { runStoreSuite } from './store.suite.js';
import { StoreError } from './types.js';

runStoreSuite('sqlite', {
  open: async () => SqliteStore.open(mkdtempSync(path.join(tmpdir(), 'quill-store-'))),
  openPeer: async (store) => SqliteStore.open(path.dirname((store as SqliteStore).file), { pollIntervalMs: 20 }),
});

describe('sqlite store faults', () => {
  it('fails a delivery with a temporary error when the database is full, and keeps earlier mail', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'quill-full-'));
    const store = await SqliteStore.open(dir, { maxDatabaseBytes: 400 * 1024 });
    await store.addDomain('example.com');
    const user = await store.addUser({ address: 'a@example.com', passwordHash: 'x' });
    const small = await store.deliver(Buffer.from('Subject: ok\r\n\r\nfits\r\n'), [{ userId: user.id }]);
    assert.equal(small.stored, true);
    await assert.rejects(store.deliver(Buffer.alloc(1024 * 1024, 'x'), [{ userId: user.id }]), (e: StoreError) => e.code === 'unavailable');
    const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
    assert.equal((await store.mailboxStatus(inbox.id)).messages, 1);
    await store.close();
  });
});
