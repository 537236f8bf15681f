// `quill group` and `quill user move` as an operator uses them: a single-group PostgreSQL store
// grows a second group, users are placed and moved, all through the real CLI.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { postgresAvailable, startPostgres, type PgServer } from '../../test/pg-server.js';
import { runQuill as quill } from '../../test/helpers.js';



async function ok(args: string[]): Promise<string> {
  const result = await quill(args);
  assert.equal(result.code, 0, `quill ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

describe('quill group and quill user move', { skip: postgresAvailable() ? false : 'PostgreSQL 15 is not installed' }, () => {
  let pg: PgServer;
  before(async () => {
    pg = await startPostgres();
  });
  after(() => pg?.destroy());

  it('grows a single-group store into two groups, places and moves users', async () => {
    const main = pg.url('quill_cli_main');
    const second = pg.url('quill_cli_second');
    const store = ['--store', main];
    await ok(['db', 'init', ...store]);
    await ok(['domain', 'add', 'example.com', ...store]);
    await ok(['user', 'add', 'old@example.com', '--password', 'pw', ...store]);
    assert.match(await ok(['group', 'list', ...store]), /^one group/);
    const refused = await quill(['user', 'add', 'x@example.com', '--password', 'pw', '--group', 'second', ...store]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--group needs a store of several groups/);

    // The directory's own database becomes the first group, with the user it has.
    assert.match(await ok(['group', 'add', 'main', main, ...store]), /group main added \(number 0\)/);
    assert.match(await ok(['group', 'add', 'second', second, ...store]), /group second added \(number 1\)/);
    assert.equal(await ok(['db', 'migrate', ...store]), 'schema is up to date\ngroup second: schema is up to date\n');
    const duplicate = await quill(['group', 'add', 'second', pg.url('quill_cli_other'), ...store]);
    assert.equal(duplicate.code, 1);
    assert.match(duplicate.stderr, /already exists/);

    await ok(['user', 'add', 'new@example.com', '--password', 'pw', ...store]);
    let list = await ok(['group', 'list', ...store]);
    assert.match(list, /^main +0 +1 /m);
    assert.match(list, /^second +1 +1 /m, 'the new user went to the emptier group');
    const noGroup = await quill(['user', 'add', 'y@example.com', '--password', 'pw', '--group', 'nope', ...store]);
    assert.equal(noGroup.code, 1);
    assert.match(noGroup.stderr, /no group nope/);

    assert.match(await ok(['user', 'move', 'old@example.com', 'second', ...store]), /user old@example.com moved from main to second/);
    list = await ok(['group', 'list', ...store]);
    assert.match(list, /^main +0 +0 /m);
    assert.match(list, /^second +1 +2 /m);
    assert.deepEqual((await ok(['user', 'list', ...store])).split('\n').map((l) => l.split(' ')[0]).filter(Boolean), ['new@example.com', 'old@example.com']);
    const again = await quill(['user', 'move', 'old@example.com', 'second', ...store]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /in group second already/);
  });
});
