// Issue 17, row 6: CREATE "../../../tmp/x" was accepted, and `quill export --format mbox` then
// wrote outside its destination. Now names with empty, "." or ".." levels or control characters
// get NO with a clear text, and export and import confine every path to their directory, even
// for such a name already in a store.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { exportMail, importMessages, maildirItems } from '../../src/mailio/transfer.js';
import { startTestServer, tempDir, type TestServer } from '../helpers.js';
import { Wire } from '../clients/imap.js';

const run = promisify(execFile);
const MESSAGE = Buffer.from('From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n');

describe('mailbox names that are paths (issue 17, row 6)', () => {
  let server: TestServer;
  let client: Wire;
  before(async () => {
    server = await startTestServer();
    await server.addUser('eve@example.com', 'pw');
    client = (await Wire.connect(server.port('imap'))).client;
    await client.login('eve@example.com', 'pw');
  });
  after(async () => {
    client.destroy();
    await server.stop();
  });

  it('refuses CREATE and RENAME to names with ".", ".." or empty levels or control characters', async () => {
    const refused: [string, RegExp][] = [
      ['"../../../tmp/x"', /"\.\." level/],
      ['"a/../../b"', /"\.\." level/],
      ['"."', /"\." level/],
      ['".."', /"\.\." level/],
      ['"a/./b"', /"\." level/],
      ['"/a"', /empty hierarchy level/],
      ['"a//b"', /empty hierarchy level/],
      ['""', /empty/],
      ["\"a&AAk-b\"", /control characters/],
    ];
    for (const [name, text] of refused) {
      let reply;
      if (name.startsWith('{')) {
        const [marker, rest] = name.split('\r\n');
        client.write(`c1 CREATE ${marker}\r\n`);
        assert.match(await client.readLine(), /^\+ /);
        client.write(`${rest}\r\n`);
        reply = await client.until('c1');
      } else reply = await client.commandLines(`CREATE ${name}`);
      assert.match(reply.tagged, / NO \[CANNOT\] /, name);
      assert.match(reply.tagged, text, name);
    }
    assert.match((await client.commandLines('CREATE "fine/name"')).tagged, / OK /);
    const rename = await client.commandLines('RENAME "fine/name" "../escaped"');
    assert.match(rename.tagged, / NO \[CANNOT\] mailbox name has a "\.\." level/);
    const list = await client.commandLines('LIST "" "*"');
    assert.ok(!list.untagged.some((line) => line.includes('..')), list.untagged.join('\n'));
  });

  it('exports a store that holds such names without writing outside the destination', async () => {
    const user = (await server.store.getUser('eve@example.com'))!;
    const base = tempDir('quill-export-');
    try {
      const dest = path.join(base, 'a', 'b', 'dest');
      mkdirSync(dest, { recursive: true });
      // Names from before they were checked, put in through the store directly.
      for (const name of ['../../../escaped', 'ok/../../../../escaped2', '..', 'INBOX']) {
        if (!(await server.store.getMailbox(user.id, name))) await server.store.createMailbox(user.id, name);
        await server.store.deliver(MESSAGE, [{ userId: user.id, mailbox: name, flags: [] }]);
      }
      const mbox = await exportMail(server.store, user, 'mbox', dest);
      assert.deepEqual(readdirSync(base), ['a']);
      assert.deepEqual(readdirSync(path.join(base, 'a')), ['b']);
      assert.deepEqual(readdirSync(path.join(base, 'a', 'b')), ['dest']);
      assert.ok(existsSync(path.join(dest, 'INBOX.mbox')));
      assert.equal(mbox.skipped.length, 3, mbox.skipped.join("\n"));
      assert.ok(!mbox.folders.some((name) => name.includes('..')));
      const maildir = await exportMail(server.store, user, 'maildir', path.join(dest, 'md'));
      assert.equal(maildir.skipped.length, 3, maildir.skipped.join("\n"));
      assert.deepEqual(readdirSync(path.join(base, 'a', 'b')), ['dest']);
      // A link planted in the destination is not written through.
      const outside = path.join(base, 'outside');
      mkdirSync(outside);
      const linked = path.join(base, 'linked');
      mkdirSync(linked);
      symlinkSync(outside, path.join(linked, 'fine'));
      await server.store.createMailbox(user.id, 'fine/inner');
      await server.store.deliver(MESSAGE, [{ userId: user.id, mailbox: 'fine/inner', flags: [] }]);
      const viaLink = await exportMail(server.store, user, 'mbox', linked, 'fine/inner');
      assert.deepEqual(readdirSync(outside), []);
      assert.equal(viaLink.skipped.length, 1);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('imports no folder with such a name and reads no file through a link out of the tree', async () => {
    const root = tempDir('quill-import-');
    try {
      for (const dir of ['cur', 'new', 'tmp', '....evil/cur', '....evil/new', '.ok/cur']) mkdirSync(path.join(root, dir), { recursive: true });
      writeFileSync(path.join(root, 'cur', '1.x:2,S'), MESSAGE);
      writeFileSync(path.join(root, '....evil', 'cur', '2.x:2,'), MESSAGE);
      const secret = path.join(root, '..', `secret-${process.pid}`);
      writeFileSync(secret, 'Subject: secret\r\n\r\nnot yours\r\n');
      symlinkSync(secret, path.join(root, '.ok', 'cur', '3.x:2,'));
      const user = (await server.store.getUser('eve@example.com'))!;
      const report = await importMessages(server.store, user, maildirItems(root));
      rmSync(secret);
      assert.equal(report.messages, 1);
      assert.deepEqual(report.folders, ['INBOX']);
      assert.match(report.skipped.join('\n'), /empty hierarchy level/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('quill export says which mailboxes it skipped', { skip: !existsSync('dist/cli/main.js') }, async () => {
    const dest = tempDir('quill-export-cli-');
    try {
      const { stderr } = await run(process.execPath, [path.resolve('bin/quill.js'), 'export', 'eve@example.com', dest, '--format', 'mbox', '--data', server.dataDir]);
      assert.match(stderr, /skipped mailbox "\.\.\/\.\.\/\.\.\/escaped"/);
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
  });
});
