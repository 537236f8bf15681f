// Two servers on one data directory (as two node processes share a store): a session on
// one is told in IDLE of mail appended through the other, through the store's change feed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, tempDir, type TestServer } from '../../test/helpers.js';
import { Wire } from '../../test/clients/imap.js';

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
    const { client: idler } = await Wire.connect(first.port('imap'));
    const { client: writer } = await Wire.connect(second.port('imap'));
    try {
      await idler.login('erin@example.com', 'pw');
      await writer.login('erin@example.com', 'pw');
      await idler.commandLines('SELECT INBOX');
      idler.write('i IDLE\r\n');
      assert.equal(await idler.readLine(), '+ idling');
      const raw = 'Subject: across\r\n\r\nhi\r\n';
      assert.match((await writer.commandLines(`APPEND INBOX {${raw.length}+}\r\n${raw}`)).tagged, /OK \[APPENDUID/);
      assert.equal(await idler.readLine(), '* 1 EXISTS');
      assert.equal(await idler.readLine(), '* 1 RECENT');
      await writer.commandLines('SELECT INBOX');
      await writer.commandLines('STORE 1 +FLAGS.SILENT (\\Deleted)');
      await writer.commandLines('EXPUNGE');
      // The flag change may be announced on its own first, depending on when the feed is read.
      let line = await idler.readLine();
      if (line.includes('FETCH')) line = await idler.readLine();
      assert.equal(line, '* 1 EXPUNGE');
      idler.write('DONE\r\n');
      assert.equal((await idler.until('i')).tagged, 'i OK IDLE terminated');
    } finally {
      idler.destroy();
      writer.destroy();
    }
  });

  it("keeps one server's shared index current with flags, appends and expunges made on the other", async () => {
    const { client: reader } = await Wire.connect(first.port('imap'));
    const { client: writer } = await Wire.connect(second.port('imap'));
    // NOOP on the reader until its answers satisfy `done` (the other server's changes arrive by polling).
    const poll = async (command: string, done: (untagged: string[]) => boolean): Promise<string[]> => {
      for (let i = 0; i < 100; i++) {
        const { untagged } = await reader.commandLines(command);
        if (done(untagged)) return untagged;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.fail(`${command} never satisfied`);
    };
    try {
      await reader.login('erin@example.com', 'pw');
      await writer.login('erin@example.com', 'pw');
      await writer.commandLines('CREATE Shared');
      for (const subject of ['alpha one', 'beta two']) {
        const raw = `Subject: ${subject}\r\n\r\nbody\r\n`;
        await writer.commandLines(`APPEND Shared {${raw.length}+}\r\n${raw}`);
      }
      await reader.commandLines('SELECT Shared');
      assert.deepEqual((await reader.commandLines('UID SEARCH SUBJECT beta')).untagged, ['* SEARCH 2']);
      await writer.commandLines('SELECT Shared');
      await writer.commandLines('UID STORE 1 +FLAGS.SILENT (\\Flagged)');
      await poll('UID SEARCH FLAGGED', (u) => u.includes('* SEARCH 1'));
      assert.deepEqual((await reader.commandLines('FETCH 1:* (UID FLAGS)')).untagged, ['* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))', '* 2 FETCH (UID 2 FLAGS (\\Recent))']);
      const raw = 'Subject: gamma three\r\n\r\nbody\r\n';
      await writer.commandLines(`APPEND Shared {${raw.length}+}\r\n${raw}`);
      await poll('NOOP', (u) => u.includes('* 3 EXISTS'));
      assert.deepEqual((await reader.commandLines('UID SEARCH SUBJECT gamma')).untagged, ['* SEARCH 3']);
      await writer.commandLines('UID STORE 2 +FLAGS.SILENT (\\Deleted)');
      await writer.commandLines('UID EXPUNGE 2');
      await poll('NOOP', (u) => u.includes('* 2 EXPUNGE'));
      assert.deepEqual((await reader.commandLines('UID SEARCH ALL')).untagged, ['* SEARCH 1 3']);
      assert.deepEqual((await reader.commandLines('FETCH 1:* (UID)')).untagged, ['* 1 FETCH (UID 1)', '* 2 FETCH (UID 3)']);
      // A second session on the reader's server starts from the same index.
      const { client: other } = await Wire.connect(first.port('imap'));
      try {
        await other.login('erin@example.com', 'pw');
        assert.ok((await other.commandLines('EXAMINE Shared')).untagged.includes('* 2 EXISTS'));
        assert.deepEqual((await other.commandLines('UID SEARCH FLAGGED')).untagged, ['* SEARCH 1']);
      } finally {
        other.destroy();
      }
    } finally {
      reader.destroy();
      writer.destroy();
    }
  });

  it("EXPUNGE on one server at once removes what the other server's session just flagged \\Deleted", async () => {
    const { client: flagger } = await Wire.connect(first.port('imap'));
    const { client: expunger } = await Wire.connect(second.port('imap'));
    try {
      await flagger.login('erin@example.com', 'pw');
      await expunger.login('erin@example.com', 'pw');
      await flagger.commandLines('CREATE Sweep');
      for (const subject of ['one', 'two', 'three']) {
        const raw = `Subject: ${subject}\r\n\r\nbody\r\n`;
        await flagger.commandLines(`APPEND Sweep {${raw.length}+}\r\n${raw}`);
      }
      await expunger.commandLines('SELECT Sweep');
      await flagger.commandLines('SELECT Sweep');
      assert.match((await flagger.commandLines('UID STORE 1,3 +FLAGS.SILENT (\\Deleted)')).tagged, /OK/);
      // No wait for the change feed's polling: the expunging server must see both flags now.
      const { untagged } = await expunger.commandLines('EXPUNGE');
      assert.deepEqual(untagged.filter((line) => line.endsWith('EXPUNGE')), ['* 1 EXPUNGE', '* 2 EXPUNGE']);
      assert.deepEqual((await expunger.commandLines('UID SEARCH ALL')).untagged, ['* SEARCH 2']);
    } finally {
      flagger.destroy();
      expunger.destroy();
    }
  });

  it("answers LIST and STATUS with the other server's CREATE, RENAME and DELETE at once (the cached mailbox list is brought up to date first)", async () => {
    const { client: reader } = await Wire.connect(first.port('imap'));
    const { client: writer } = await Wire.connect(second.port('imap'));
    const listed = async (): Promise<string[]> => (await reader.commandLines('LIST "" "Cache*"')).untagged;
    try {
      await reader.login('erin@example.com', 'pw');
      await writer.login('erin@example.com', 'pw');
      assert.deepEqual(await listed(), []);
      assert.match((await writer.commandLines('CREATE CacheA')).tagged, /OK/);
      assert.deepEqual(await listed(), ['* LIST (\\HasNoChildren) "/" CacheA']);
      assert.match((await reader.commandLines('STATUS CacheA (MESSAGES)')).untagged[0]!, /STATUS CacheA \(MESSAGES 0\)/);
      assert.match((await writer.commandLines('RENAME CacheA CacheB')).tagged, /OK/);
      assert.deepEqual(await listed(), ['* LIST (\\HasNoChildren) "/" CacheB']);
      assert.match((await reader.commandLines('STATUS CacheA (MESSAGES)')).tagged, /NO \[NONEXISTENT\]/);
      assert.match((await writer.commandLines('DELETE CacheB')).tagged, /OK/);
      assert.deepEqual(await listed(), []);
      assert.match((await reader.commandLines('STATUS CacheB (MESSAGES)')).tagged, /NO \[NONEXISTENT\]/);
    } finally {
      reader.destroy();
      writer.destroy();
    }
  });
});
