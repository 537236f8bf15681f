// Two servers on one data directory (as two node processes share a store): a session on
// one is told in IDLE of mail appended through the other, through the store's change feed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, tempDir, type TestServer } from '../../test/helpers.js';
import { ImapWire } from './test-client.js';

describe('IMAP updates across servers sharing a store', () => {
  const dataDir = tempDir('quill-imap-shared-');
  let first: TestServer;
  let second: TestServer;

  before(async () => {
    first = await startTestServer({ dataDir });
    second = await startTestServer({ dataDir });
    await first.addUser('erin@example.com', 'pw');
  });
  after(async () => {
    await second.stop();
    await first.stop();
  });

  it('wakes an IDLE session on one server for an APPEND on the other', async () => {
    const { client: idler } = await ImapWire.connect(first.port('imap'));
    const { client: writer } = await ImapWire.connect(second.port('imap'));
    try {
      await idler.login('erin@example.com', 'pw');
      await writer.login('erin@example.com', 'pw');
      await idler.command('SELECT INBOX');
      idler.write('i IDLE\r\n');
      assert.equal(await idler.readLine(), '+ idling');
      const raw = 'Subject: across\r\n\r\nhi\r\n';
      assert.match((await writer.command(`APPEND INBOX {${raw.length}+}\r\n${raw}`)).tagged, /OK \[APPENDUID/);
      assert.equal(await idler.readLine(), '* 1 EXISTS');
      await writer.command('SELECT INBOX');
      await writer.command('STORE 1 +FLAGS.SILENT (\\Deleted)');
      await writer.command('EXPUNGE');
      // The flag change may be announced on its own first, depending on when the feed is read.
      let line = await idler.readLine();
      if (line.includes('FETCH')) line = await idler.readLine();
      assert.equal(line, '* 1 EXPUNGE');
      idler.write('DONE\r\n');
      assert.equal((await idler.until('i')).tagged, 'i OK IDLE terminated');
    } finally {
      idler.close();
      writer.close();
    }
  });
});
