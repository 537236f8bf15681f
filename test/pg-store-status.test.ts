// What the admin console shows of a replicated PostgreSQL group: each host of the store URL
// with its role and the standby's replay lag, and a host that is down as 'unknown'.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PostgresStore } from '../src/store/postgres.js';
import { autoFailoverAvailable, startAutoFailover, type AutoFailoverGroup } from './pg-ha.js';

const skip = autoFailoverAvailable() ? false : 'pg_auto_failover (postgresql-15-auto-failover, pg-auto-failover-cli) is not installed';

describe('store status on a PostgreSQL group', { skip }, () => {
  let group: AutoFailoverGroup;
  let store: PostgresStore;

  before(async () => {
    group = await startAutoFailover();
    store = await PostgresStore.open(group.url, { connectTimeoutMs: 2000 });
  });
  after(async () => {
    await store?.close();
    await group?.destroy();
  });

  it('names the primary and the standby with its lag, and a dead host as unknown', async () => {
    await store.addDomain('status.example');
    const status = await store.status();
    assert.equal(status.kind, 'postgres');
    if (status.kind !== 'postgres') return;
    const states = await group.states();
    const hosts = status.groups[0]!.hosts;
    assert.equal(hosts.length, states.length);
    const primary = await group.primary();
    for (const node of states) {
      const shown = hosts.find((h) => h.host === `127.0.0.1:${node.port}`);
      assert.ok(shown, `${node.name} on port ${node.port} in ${JSON.stringify(hosts)}`);
      if (node.name === primary) assert.deepEqual([shown.role, shown.lagBytes], ['primary', 0]);
      else {
        assert.equal(shown.role, 'standby');
        assert.ok(typeof shown.lagBytes === 'number' && shown.lagBytes >= 0, JSON.stringify(shown));
      }
    }

    const standby = states.find((s) => s.name !== primary)!;
    group.crash(standby.name);
    const later = (await store.status()) as Extract<typeof status, { kind: 'postgres' }>;
    assert.deepEqual(
      later.groups[0]!.hosts.find((h) => h.host === `127.0.0.1:${standby.port}`),
      { host: `127.0.0.1:${standby.port}`, role: 'unknown', lagBytes: null },
    );
    assert.ok(later.groups[0]!.hosts.some((h) => h.role === 'primary'));
  });
});
