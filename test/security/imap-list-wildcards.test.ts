// Issue 17, row 1: a LIST or LSUB pattern full of wildcards used to become a backtracking
// regular expression that blocked the event loop for seconds to forever. Now patterns are
// matched in time proportional to name times pattern, and a pattern with more wildcards than
// imap.listWildcards gets BAD; meanwhile another session's NOOP is answered at once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertNoopPrompt, bystander, login, note, startQuill, within, type QuillProcess } from './kit.js';

const LONG_NAME = 'a'.repeat(300);

describe('LIST and LSUB patterns with many wildcards (issue 17, row 1)', () => {
  let quill: QuillProcess;
  before(async () => {
    quill = await startQuill({
      prepare: async (store, userId) => {
        await store.createMailbox(userId, LONG_NAME);
        await store.createMailbox(userId, `${LONG_NAME}/${LONG_NAME}`);
      },
    });
  });
  after(() => quill.stop());

  async function timed(command: string): Promise<{ tagged: string; untagged: string[]; ms: number }> {
    const client = await login(quill.imapPort);
    const other = await bystander(quill.imapPort);
    try {
      const started = performance.now();
      const reply = await within(5000, command.slice(0, 40), client.commandLines(command));
      const ms = performance.now() - started;
      note(`${command.slice(0, 30)}…: ${reply.tagged.slice(0, 60)} in ${Math.round(ms)} ms`);
      await sleep(Math.max(0, 1000 - ms)); // enough NOOPs for 90% of them to mean something
      assertNoopPrompt(await other.stop());
      return { ...reply, ms };
    } finally {
      client.destroy();
      await other.stop();
    }
  }

  it('answers 50 wildcards promptly, and a NOOP of another session within 100 ms', async () => {
    const reply = await timed(`LIST "" "${'*'.repeat(50)}x"`);
    assert.match(reply.tagged, / OK /);
    assert.deepEqual(reply.untagged, []);
    assert.ok(reply.ms < 2000, `LIST took ${reply.ms} ms`);
    // The same wildcards still match what they should.
    const client = await login(quill.imapPort);
    try {
      const all = await client.commandLines(`LIST "" "${'*'.repeat(50)}"`);
      assert.equal(all.untagged.filter((line) => line.includes(LONG_NAME)).length, 2);
      const top = await client.commandLines(`LSUB "" "${'%'.repeat(40)}"`);
      assert.match(top.tagged, / OK /);
    } finally {
      client.destroy();
    }
  });

  it('refuses 3,000 wildcards with BAD at once', async () => {
    const reply = await timed(`LIST "" "${'*'.repeat(3000)}x"`);
    assert.match(reply.tagged, / BAD .*wildcards/);
    assert.ok(reply.ms < 2000, `LIST took ${reply.ms} ms`);
    const lsub = await timed(`LSUB "" "${'%'.repeat(3000)}x"`);
    assert.match(lsub.tagged, / BAD .*wildcards/);
  });

  it('matches 8 wildcards against a 300-character name promptly', async () => {
    const reply = await timed(`LIST "" "${'*a'.repeat(8)}b"`);
    assert.match(reply.tagged, / OK /);
    assert.deepEqual(reply.untagged, []);
    assert.ok(reply.ms < 2000, `LIST took ${reply.ms} ms`);
    const hit = await timed(`LIST "" "${'%a'.repeat(8)}/*a"`);
    assert.equal(hit.untagged.length, 1, hit.untagged.join('\n'));
  });
});
