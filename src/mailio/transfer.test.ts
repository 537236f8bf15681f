import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { SqliteStore } from '../store/sqlite.js';
import type { User } from '../store/types.js';
import { tempDir } from '../../test/helpers.js';
import { exportMail, importMessages, maildirItems, mboxItems } from './transfer.js';

const run = promisify(execFile);

const MBOX = [
  'From alice@example.org Mon Jan  1 10:00:00 2024',
  'From: alice@example.org',
  'Subject: first',
  '',
  'Hello',
  '>From the start of a line',
  '>>From deeper',
  'caf\u00e9',
  '',
  'From bob@example.org Tue Jan  2 11:30:00 2024',
  'From: bob@example.org',
  'Subject: second',
  '',
  'Second body',
  '',
].join('\n');

describe('import and export', () => {
  let dir: string;
  let store: SqliteStore;
  let user: User;
  let other: User;

  before(async () => {
    dir = tempDir('quill-mailio-');
    store = await SqliteStore.open(path.join(dir, 'data'));
    await store.addDomain('example.com');
    user = await store.addUser({ address: 'u@example.com', passwordHash: 'x' });
    other = await store.addUser({ address: 'o@example.com', passwordHash: 'x' });
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('imports mboxrd with From-unescaping, CRLF line ends and the From_ date', async () => {
    const file = path.join(dir, 'in.mbox');
    writeFileSync(file, Buffer.from(MBOX, 'utf8'));
    const report = await importMessages(store, user, mboxItems(file, 'Imported'));
    assert.equal(report.messages, 2);
    const box = (await store.getMailbox(user.id, 'Imported'))!;
    const [first, second] = await store.listMessages(box.id);
    const raw = (await store.getBlob(first!.blobHash))!;
    assert.equal(raw.toString('utf8'), 'From: alice@example.org\r\nSubject: first\r\n\r\nHello\r\nFrom the start of a line\r\n>From deeper\r\ncaf\u00e9\r\n');
    assert.equal(first!.internalDate.toISOString(), '2024-01-01T10:00:00.000Z');
    assert.equal((await store.getBlob(second!.blobHash))!.toString(), 'From: bob@example.org\r\nSubject: second\r\n\r\nSecond body\r\n');
  });

  it('exports mbox that imports back to the same bytes', async () => {
    const out = path.join(dir, 'export-mbox');
    await exportMail(store, user, 'mbox', out, 'Imported');
    const text = readFileSync(path.join(out, 'Imported.mbox'), 'utf8');
    assert.match(text, /^From u@example\.com Mon Jan {2}1 10:00:00 2024\n/);
    assert.match(text, /\n>From the start of a line\n>>From deeper\n/);
    await importMessages(store, other, mboxItems(path.join(out, 'Imported.mbox'), 'INBOX'));
    const mine = await store.listMessages((await store.getMailbox(user.id, 'Imported'))!.id);
    const theirs = await store.listMessages((await store.getMailbox(other.id, 'INBOX'))!.id);
    assert.deepEqual(theirs.map((m) => m.blobHash), mine.map((m) => m.blobHash));
  });

  it('imports a Maildir++ tree with folders and flags, and exports it again', async () => {
    const root = path.join(dir, 'Maildir');
    for (const sub of ['cur', 'new', 'tmp', '.Work.Projects/cur', '.Work.Projects/new']) mkdirSync(path.join(root, sub), { recursive: true });
    writeFileSync(path.join(root, 'new', '1.host'), 'Subject: new one\r\n\r\nbody\r\n');
    writeFileSync(path.join(root, 'cur', '2.host:2,FS'), 'Subject: seen and flagged\r\n\r\nbody\r\n');
    writeFileSync(path.join(root, '.Work.Projects', 'cur', '3.host:2,RS'), 'Subject: answered\r\n\r\nbody\r\n');
    const report = await importMessages(store, other, maildirItems(root));
    assert.equal(report.messages, 3);
    assert.deepEqual(report.folders.sort(), ['INBOX', 'Work/Projects']);
    const projects = await store.listMessages((await store.getMailbox(other.id, 'Work/Projects'))!.id);
    assert.deepEqual(projects[0]!.flags.sort(), ['\\Answered', '\\Seen']);

    const out = path.join(dir, 'export-maildir');
    const exported = await exportMail(store, other, 'maildir', out);
    assert.equal(exported.messages, 5);
    const names = readdirSync(path.join(out, '.Work.Projects', 'cur'));
    assert.equal(names.length, 1);
    assert.match(names[0]!, /:2,RS$/);
  });

  it('works through the quill command, with clear errors', async () => {
    const data = path.join(dir, 'cli-data');
    const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args, '--data', data]);
    await cli('domain', 'add', 'example.com');
    await cli('user', 'add', 'c@example.com', '--password', 'pw');
    const file = path.join(dir, 'cli.mbox');
    writeFileSync(file, MBOX);
    const imported = await cli('import', 'mbox', 'c@example.com', file);
    assert.match(imported.stdout, /imported 2 message\(s\)/);
    const exported = await cli('export', 'c@example.com', path.join(dir, 'cli-out'), '--format', 'mbox');
    assert.match(exported.stdout, /exported 2 message\(s\)/);
    await assert.rejects(cli('import', 'maildir', 'c@example.com', dir), (e: { code: number; stderr: string }) => e.code === 2 && /not a Maildir/.test(e.stderr));
    await assert.rejects(cli('import', 'mbox', 'nobody@example.com', file), (e: { code: number; stderr: string }) => e.code === 2 && /no user/.test(e.stderr));
  });
});
