// A rolling upgrade of a three-node cluster behind the gateway (issue 5): for each node in turn
// `quill drain`, SIGTERM, start again, `quill undrain`, while SMTP senders and POP3 readers run.
// No client session fails, and every message that got 250 is stored exactly once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestCluster, tally } from './cluster-kit.js';

const NODES = ['r-1', 'r-2', 'r-3'];

describe('rolling upgrade through the gateway', () => {
  const cluster = new TestCluster(NODES, ['smtp', 'pop3']);

  before(() => cluster.start());
  after(() => cluster.close());

  it('upgrades node by node (drain, stop, start, undrain) without a failed client session', async () => {
    const seen = tally();
    let upgraded = false;
    const done = () => upgraded;
    const smtp = cluster.senders(seen, done, 'rolling');
    const pop3 = cluster.pop3Readers(seen, done);
    await sleep(1000);
    for (const id of NODES) {
      assert.match(await cluster.quill('drain', id), /draining requested/);
      await cluster.waitForNode(id, false);
      await cluster.stopNode(id, 'SIGTERM');
      cluster.startNode(id);
      await cluster.waitForNode(id, true);
      assert.match(await cluster.quill('undrain', id), /active requested/);
    }
    await sleep(500);
    upgraded = true;
    await Promise.all([...smtp, ...pop3]);
    console.log(`# rolling upgrade: ${seen.acknowledged.length} messages, ${seen.pop3Sessions} POP3 sessions (${seen.pop3Retrieved} RETR)`);
    assert.deepEqual(seen.errors, [], 'no client saw an error');
    assert.equal(seen.pop3TempErrors, 0, 'no POP3 session ended early');
    assert.ok(seen.acknowledged.length > 0 && seen.pop3Retrieved > 0);
    await cluster.checkStoredOnce(seen.acknowledged, /\r\nSubject: (rolling-\d+-\d+)\r\n/);
  });
});
