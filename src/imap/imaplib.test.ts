// Python's imaplib against the server: STARTTLS, LOGIN, LIST, APPEND, UID SEARCH/FETCH/
// STORE/COPY, EXPUNGE, STATUS, CLOSE, LOGOUT.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';

const run = promisify(execFile);
const driver = fileURLToPath(new URL('./imaplib-driver.py', import.meta.url));

describe('IMAP with Python imaplib', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ overrides: { imap: { loopbackPlainAuth: false } } });
    await server.addUser('py@example.com', 'py-pw');
  });
  after(() => server.stop());

  it('runs a session after STARTTLS', async () => {
    const { stdout } = await run('python3', [driver, String(server.port('imap')), 'py@example.com', 'py-pw'], { timeout: 30_000 });
    const out = JSON.parse(stdout) as Record<string, unknown>;
    assert.equal(out.starttls, 'OK');
    assert.equal(out.login, 'OK');
    assert.equal(out.create, 'OK');
    assert.ok((out.list as string[]).includes('(\\HasNoChildren) "/" "Python &- Co"'), JSON.stringify(out.list));
    assert.match((out.append as string[])[1]!, /^\[APPENDUID \d+ 1\] APPEND completed$/);
    assert.equal(out.exists, 1);
    assert.equal(out.bytes_equal, true);
    assert.equal(out.internaldate, true);
    assert.match(out.store as string, /^1 \(UID 1 FLAGS \(\\Flagged \\Seen \\Deleted \\Recent\)\)$/);
    assert.equal(out.copy, 'OK');
    assert.deepEqual(out.expunge, ['1']);
    assert.equal(out.status, '"Python &- Co" (MESSAGES 1)');
    assert.equal(out.close, 'OK');
    assert.equal(out.logout, 'BYE');
  });
});
