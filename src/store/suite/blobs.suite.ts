// The store suite, Blobs role (blobs, their parses and full-text search): every backend runs it (store.suite.ts).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { type Store } from '../types.js';
import { msg, openWorld, type SharedStore } from './kit.js';

export function blobsSuite(shared: SharedStore): void {
  describe('Blobs', () => {
    let store: Store;
    let alice: number;
    let bob: number;
    before(async () => ({ store, alice, bob } = await openWorld(shared, 'blobs')));

    it('reads blobs and their meta in batches and writes many metas at once', async () => {
      const inbox = (await store.getMailbox(alice, 'INBOX'))!;
      await store.deliver(msg('batch one'), [{ userId: alice }]);
      await store.deliver(msg('batch two'), [{ userId: alice }]);
      const hashes = (await store.listMessages(inbox.id)).map((m) => m.blobHash);
      const blobs = await store.getBlobs([...hashes, hashes[0]!, 'no-such-hash']);
      assert.equal(blobs.size, new Set(hashes).size);
      for (const hash of hashes) assert.deepEqual(blobs.get(hash), await store.getBlob(hash));
      assert.equal((await store.getBlobMetas(hashes)).size, 0);
      // A hash given twice (the last one counts) and one not stored (skipped).
      await store.setBlobMetas([[hashes[0]!, 'stale'], ...hashes.map((hash, i): [string, string] => [hash, `meta ${i}`]), ['no-such-hash', 'a parse of nothing stored']]);
      const metas = await store.getBlobMetas([...hashes, 'no-such-hash']);
      assert.equal(metas.size, new Set(hashes).size);
      assert.equal(metas.get(hashes[hashes.length - 1]!), `meta ${hashes.length - 1}`);
      assert.equal(await store.getBlobMeta(hashes[hashes.length - 1]!), `meta ${hashes.length - 1}`);
      assert.equal(await store.getBlobMeta(hashes[0]!), 'meta 0');
    });

    it('finds messages by the words of their bodies, HTML, encoded parts and text attachments (issue 21)', async () => {
      const box = await store.createMailbox(alice, 'Searchable');
      const plain = Buffer.from('From: a@example.org\r\nSubject: one\r\n\r\nThe zeppelin lands at dawn.\r\n');
      const html = Buffer.from(
        'From: a@example.org\r\nSubject: two\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<style>.zeppelin{}</style><p>Crème <b>brûlée</b> for&nbsp;dessert</p>\r\n',
      );
      const mixed = Buffer.from(
        [
          'From: a@example.org',
          'Subject: three',
          'Content-Type: multipart/mixed; boundary=b',
          '',
          '--b',
          'Content-Type: text/plain; charset=iso-8859-1',
          'Content-Transfer-Encoding: quoted-printable',
          '',
          'Gr=FC=DFe aus K=F6ln',
          '--b',
          'Content-Type: text/plain; name=notes.txt',
          'Content-Disposition: attachment; filename=notes.txt',
          'Content-Transfer-Encoding: base64',
          '',
          Buffer.from('the quarterly walrus report').toString('base64'),
          '--b--',
          '',
        ].join('\r\n'),
      );
      const one = await store.append(box.id, plain, []);
      const two = await store.append(box.id, html, []);
      const three = (await store.deliver(mixed, [{ userId: alice, mailbox: 'Searchable' }])).copies[0]!.uid;
      const search = (q: string) => store.searchText(box.id, q);
      assert.deepEqual(await search('zeppelin'), [one.uid], 'a plain body word; not the HTML part’s style sheet');
      assert.deepEqual(await search('ZEPP'), [one.uid], 'word prefixes, any case');
      assert.deepEqual(await search('brûlée dessert'), [two.uid], 'HTML text, every word');
      assert.deepEqual(await search('köln'), [three], 'quoted-printable Latin-1');
      assert.deepEqual(await search('walrus'), [three], 'a text attachment');
      assert.deepEqual(await search('zeppelin walrus'), [], 'all words must match');
      assert.deepEqual(await search('"; drop table blobs; --'), [], 'query syntax is not passed through');
      // Another user's mail with the same words is not found here; deleting drops the words.
      const other = await store.createMailbox(bob, 'Elsewhere');
      await store.append(other.id, Buffer.from('From: x@example.org\r\n\r\nzeppelin\r\n'), []);
      assert.deepEqual(await search('zeppelin'), [one.uid]);
      await store.setFlags(box.id, [one.uid], 'add', ['\\Deleted']);
      await store.expunge(box.id);
      assert.deepEqual(await search('zeppelin'), []);
      assert.equal((await store.searchText(other.id, 'zeppelin')).length, 1);
      // A message too long to index whole is offered to searches that must not miss it (IMAP).
      const long = await store.append(box.id, Buffer.from(`From: a@example.org\r\n\r\n${'filler '.repeat(30_000)}albatross\r\n`), []);
      assert.deepEqual(await search('albatross'), []);
      assert.deepEqual(await store.searchText(box.id, 'albatross', { orPartial: true }), [long.uid]);
      await store.deleteMailbox(box.id);
      await store.deleteMailbox(other.id);
    });
  });
}
