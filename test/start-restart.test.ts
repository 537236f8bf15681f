// `quill admin restart` against a plain `quill start` (no supervisor): the process starts its
// server again by itself instead of exiting 75 and staying down (issue 21).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Member } from '../src/store/types.js';
import { runQuill as quill } from './helpers.js';
import { QuillStart } from './start-kit.js';

describe('quill start restarts itself', () => {
  const quillStart = new QuillStart('quill-start-restart-');
  const member = (predicate: (m: Member | undefined) => boolean, what: string) => quillStart.member((members) => members[0], predicate, what);

  before(() => quillStart.start());
  after(() => quillStart.stop());

  it('comes back in the same process after a restart request', async () => {
    const first = await member((m) => m?.state === 'active', 'the server');
    const restart = await quill(['admin', 'restart', first!.id, '--data', quillStart.data]);
    assert.equal(restart.code, 0, restart.stderr);
    const again = await member((m) => m !== undefined && m.state === 'active' && m.startedAt.getTime() > first!.startedAt.getTime(), 'the server to come back');
    assert.equal(again?.requestedState, null, 'the request was consumed');
    assert.equal(quillStart.child.exitCode, null, 'the same process, still running');
    assert.match(quillStart.output, /restarting in this process/);
  });
});
