// The one suite every Store backend must pass (SQLite, PostgreSQL, PostgreSQL in groups), one
// part per role (suite/<role>.suite.ts), all on one store per backend, each in a domain of its own.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { blobsSuite } from './suite/blobs.suite.js';
import { clusterSuite } from './suite/cluster.suite.js';
import { directorySuite } from './suite/directory.suite.js';
import { driveSuite } from './suite/drive.suite.js';
import { openWorld, SharedStore, type StoreFactory } from './suite/kit.js';
import { mailstoreSuite } from './suite/mailstore.suite.js';
import { queueSuite } from './suite/queue.suite.js';
import { webStateSuite } from './suite/web-state.suite.js';
import type { Store } from './types.js';

export type { StoreFactory } from './suite/kit.js';

export function runStoreSuite(name: string, factory: StoreFactory): void {
  describe(`store suite: ${name}`, () => {
    const shared = new SharedStore(factory);
    after(async () => shared.close());
    directorySuite(shared);
    mailstoreSuite(shared);
    blobsSuite(shared);
    queueSuite(shared);
    clusterSuite(shared);
    webStateSuite(shared);
    driveSuite(shared);

    describe('Store', () => {
      let store: Store;
      before(async () => ({ store } = await openWorld(shared, 'store')));

      it('says where its data is', async () => {
        const status = await store.status();
        assert.equal(status.kind, store.kind);
        if (status.kind === 'sqlite') {
          assert.match(status.path, /quill\.db$/);
          assert.ok(status.sizeBytes > 0);
        } else {
          assert.ok(status.groups.length >= 1);
          assert.ok(status.groups[0]!.hosts.some((h) => h.role === 'primary' && h.lagBytes === 0));
        }
      });
    });
  });
}
