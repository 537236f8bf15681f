// The store suite, Drive role (folders, files and uploads): every backend runs it (store.suite.ts).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { StoreError, type Store } from '../types.js';
import { msg, openWorld, type SharedStore } from './kit.js';

export function driveSuite(shared: SharedStore): void {
  describe('Drive', () => {
    let store: Store;
    let domain: string;
    let alice: number;
    before(async () => ({ store, alice, domain } = await openWorld(shared, 'drive')));

    it('keeps a drive per user: folders, chunked files, resumable uploads, quota shared with mail', async () => {
      const carol = (await store.addUser({ address: `carol@${domain}`, passwordHash: 'x', quotaBytes: 10_000 })).id;
      await store.deliver(msg('mail counts too'), [{ userId: carol }]);
      const mailBytes = (await store.getUserById(carol))!.usedBytes;
      const docs = await store.createDriveFolder(carol, null, 'Docs');
      assert.equal(docs.parentId, null);
      await assert.rejects(store.createDriveFolder(carol, null, 'Docs'), (e: StoreError) => e.code === 'conflict', 'one name per folder, the root too');
      for (const bad of ['', 'a/b', '..', 'x'.repeat(256), 'tab\there']) {
        await assert.rejects(store.createDriveFolder(carol, null, bad), (e: StoreError) => e.code === 'invalid', JSON.stringify(bad));
      }
      const inner = await store.createDriveFolder(carol, docs.id, 'Inner');
      await assert.rejects(store.createDriveFolder(alice, docs.id, 'Mine'), (e: StoreError) => e.code === 'not-found', "not into another user's folder");

      const bytes = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
      const upload = await store.createDriveUpload(carol, { parentId: inner.id, name: 'data.bin', size: bytes.length, contentType: 'application/x-test' });
      assert.equal(upload.received, 0);
      const first = await store.appendDriveUpload(carol, upload.id, 0, bytes.subarray(0, 1000));
      assert.equal(first.upload.received, 1000);
      assert.equal(first.file, null);
      assert.deepEqual(await store.listDrive(carol, inner.id), [], 'no file before the last chunk');
      await assert.rejects(store.appendDriveUpload(carol, upload.id, 500, bytes.subarray(500, 1000)), (e: StoreError) => e.code === 'conflict', 'continues where it stopped');
      await assert.rejects(store.appendDriveUpload(alice, upload.id, 1000, bytes.subarray(1000)), (e: StoreError) => e.code === 'not-found');
      assert.equal((await store.getDriveUpload(carol, upload.id))?.received, 1000);
      await store.appendDriveUpload(carol, upload.id, 1000, bytes.subarray(1000, 2200));
      const last = await store.appendDriveUpload(carol, upload.id, 2200, bytes.subarray(2200));
      assert.ok(last.file);
      assert.equal(last.file.size, bytes.length);
      assert.equal(last.file.contentType, 'application/x-test');
      assert.equal(await store.getDriveUpload(carol, upload.id), undefined, 'done');
      const read = async (range?: { start: number; end: number }) => {
        const parts: Buffer[] = [];
        for await (const part of store.readDriveFile(carol, last.file!.id, range)) parts.push(part);
        return Buffer.concat(parts);
      };
      assert.deepEqual(await read(), bytes);
      assert.deepEqual(await read({ start: 990, end: 1010 }), bytes.subarray(990, 1011), 'a range across chunks');
      assert.deepEqual(await read({ start: 2999, end: 5000 }), bytes.subarray(2999));
      await assert.rejects(store.readDriveFile(alice, last.file.id).next(), (e: StoreError) => e.code === 'not-found', "not another user's file");
      assert.equal((await store.getUserById(carol))!.usedBytes, mailBytes + bytes.length);

      await assert.rejects(store.createDriveUpload(carol, { parentId: null, name: 'big.bin', size: 10_000 }), (e: StoreError) => e.code === 'quota');
      const empty = await store.createDriveUpload(carol, { parentId: null, name: 'empty.txt', size: 0 });
      assert.equal((await store.appendDriveUpload(carol, empty.id, 0, Buffer.alloc(0))).file?.size, 0);
      const dropped = await store.createDriveUpload(carol, { parentId: null, name: 'dropped.bin', size: 500 });
      await store.appendDriveUpload(carol, dropped.id, 0, Buffer.alloc(200));
      assert.equal((await store.getUserById(carol))!.usedBytes, mailBytes + bytes.length + 200, 'stored chunks count');
      await store.cancelDriveUpload(carol, dropped.id);
      assert.equal((await store.getUserById(carol))!.usedBytes, mailBytes + bytes.length);

      // Two uploads of one name at once: the one that ends second gets a name of its own.
      const one = await store.createDriveUpload(carol, { parentId: inner.id, name: 'same.txt', size: 2 });
      const two = await store.createDriveUpload(carol, { parentId: inner.id, name: 'same.txt', size: 2 });
      assert.equal((await store.appendDriveUpload(carol, one.id, 0, Buffer.from('1!'))).file?.name, 'same.txt');
      assert.equal((await store.appendDriveUpload(carol, two.id, 0, Buffer.from('2!'))).file?.name, 'same (2).txt');

      const renamed = await store.updateDriveNode(carol, last.file.id, { name: 'renamed.bin', parentId: null });
      assert.equal(renamed.parentId, null);
      assert.deepEqual((await store.listDrive(carol, null)).map((n) => `${n.kind}:${n.name}`), ['folder:Docs', 'file:empty.txt', 'file:renamed.bin']);
      await assert.rejects(store.updateDriveNode(carol, docs.id, { parentId: inner.id }), (e: StoreError) => e.code === 'invalid', 'no cycles');
      await assert.rejects(store.updateDriveNode(carol, docs.id, { parentId: docs.id }), (e: StoreError) => e.code === 'invalid');
      await assert.rejects(store.updateDriveNode(carol, renamed.id, { name: 'Docs' }), (e: StoreError) => e.code === 'conflict');
      await store.updateDriveNode(carol, renamed.id, { parentId: inner.id });
      assert.equal(await store.deleteDriveNode(carol, docs.id), bytes.length + 4, 'a folder goes with everything in it');
      assert.deepEqual((await store.listDrive(carol, null)).map((n) => n.name), ['empty.txt']);
      assert.equal(await store.getDriveNode(carol, renamed.id), undefined);
      await assert.rejects(store.listDrive(carol, inner.id), (e: StoreError) => e.code === 'not-found');
      assert.equal((await store.getUserById(carol))!.usedBytes, mailBytes, 'quota freed');

      const expiring = await store.createDriveUpload(carol, { parentId: null, name: 'late.bin', size: 100, ttlMs: -1 });
      assert.equal(await store.getDriveUpload(carol, expiring.id), undefined, 'expired');
      await store.removeUser(`carol@${domain}`);
    });
  });
}
