// A mail client's session with imapflow through a real socket: folders, APPEND, FETCH of
// exact bytes, flags, SEARCH, COPY/MOVE with UID maps, EXPUNGE, RENAME and DELETE; and a
// second client watching the first one's changes, in IDLE and between commands.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { startTestServer, type TestServer } from '../../test/helpers.js';

const USER = 'alice@example.com';
const PASS = 'alice-pw';

function message(subject: string, body = 'Hello there.\r\n'): Buffer {
  return Buffer.from(`From: Bob <bob@example.com>\r\nTo: alice@example.com\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.com>\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n${body}`);
}

function client(server: TestServer, autoIdleDelay = 15_000): ImapFlow {
  return new ImapFlow({ host: '127.0.0.1', port: server.port('imap'), secure: false, auth: { user: USER, pass: PASS }, logger: false, tls: { rejectUnauthorized: false }, autoIdleDelay });
}

describe('IMAP with imapflow', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
    await server.addUser(USER, PASS);
  });
  after(() => server.stop());

  it('runs a mail client session end to end', async () => {
    const imap = client(server);
    await imap.connect();
    try {
      for (const cap of ['IDLE', 'UIDPLUS', 'MOVE', 'CONDSTORE', 'SPECIAL-USE']) assert.ok(imap.capabilities.has(cap), cap);
      const folders = await imap.list();
      const byUse = new Map(folders.map((f) => [f.specialUse, f.path]));
      assert.equal(byUse.get('\\Sent'), 'Sent');
      assert.equal(byUse.get('\\Trash'), 'Trash');

      await imap.mailboxCreate('Projekte/Entwürfe');
      const created = (await imap.list()).map((f) => f.path);
      assert.ok(created.includes('Projekte') && created.includes('Projekte/Entwürfe'), created.join(','));

      const first = message('first');
      const appended = await imap.append('INBOX', first, ['\\Seen'], new Date('2024-03-01T10:00:00Z'));
      assert.ok(appended && appended.uid === 1);
      await imap.append('INBOX', message('second', 'needle in the body\r\n'));
      await imap.append('INBOX', message('third'), ['\\Flagged']);

      const lock = await imap.getMailboxLock('INBOX');
      try {
        assert.equal((imap.mailbox as { exists: number }).exists, 3);
        const fetched = [];
        for await (const msg of imap.fetch('1:*', { uid: true, flags: true, envelope: true, source: true, internalDate: true, size: true })) fetched.push(msg);
        assert.equal(fetched.length, 3);
        assert.ok(fetched[0]!.source!.equals(first), 'BODY[] is the appended bytes');
        assert.equal(fetched[0]!.size, first.length);
        assert.equal(fetched[0]!.envelope!.subject, 'first');
        assert.equal(fetched[0]!.envelope!.from![0]!.address, 'bob@example.com');
        assert.equal((fetched[0]!.internalDate as Date).toISOString(), '2024-03-01T10:00:00.000Z');
        assert.ok(fetched[0]!.flags!.has('\\Seen'));
        assert.ok(!fetched[1]!.flags!.has('\\Seen'));

        const part = await imap.download('2', '1', { uid: true });
        const chunks: Buffer[] = [];
        for await (const chunk of part.content!) chunks.push(chunk as Buffer);
        assert.equal(Buffer.concat(chunks).toString(), 'needle in the body\r\n');

        assert.deepEqual(await imap.search({ seen: false }), [2, 3]);
        assert.deepEqual(await imap.search({ body: 'needle' }, { uid: true }), [2]);
        assert.deepEqual(await imap.search({ flagged: true }), [3]);

        await imap.messageFlagsAdd('2', ['\\Answered', '$Label1']);
        const [flags] = await collect(imap.fetch('2', { flags: true }));
        assert.deepEqual([...flags!.flags!].sort(), ['$Label1', '\\Answered', '\\Recent']);

        const copied = await imap.messageCopy('1:2', 'Archive');
        assert.ok(copied);
        assert.deepEqual([...copied.uidMap!], [
          [1, 1],
          [2, 2],
        ]);
        const moved = await imap.messageMove('3', 'Trash', { uid: true });
        assert.ok(moved);
        assert.deepEqual([...moved.uidMap!], [[3, 1]]);
        assert.equal((imap.mailbox as { exists: number }).exists, 2);

        await imap.messageFlagsAdd('1', ['\\Deleted']);
        await imap.messageDelete('1');
        assert.equal((imap.mailbox as { exists: number }).exists, 1);
      } finally {
        lock.release();
      }

      const status = await imap.status('Archive', { messages: true, unseen: true, uidNext: true });
      assert.ok(status);
      assert.deepEqual({ messages: status.messages, unseen: status.unseen, uidNext: status.uidNext }, { messages: 2, unseen: 1, uidNext: 3 });

      await imap.mailboxRename('Projekte', 'Work');
      const renamed = (await imap.list()).map((f) => f.path);
      assert.ok(renamed.includes('Work/Entwürfe') && !renamed.includes('Projekte'), renamed.join(','));
      await imap.mailboxDelete('Work/Entwürfe');
      assert.ok(!(await imap.list()).some((f) => f.path === 'Work/Entwürfe'));
    } finally {
      await imap.logout();
    }
  });

  it('tells a second session of appends, flag changes and expunges, in IDLE and on NOOP', async () => {
    await server.store.createMailbox((await server.store.getUser(USER))!.id, 'Shared');
    const writer = client(server);
    const watcher = client(server, 50);
    await writer.connect();
    await watcher.connect();
    try {
      const events: string[] = [];
      watcher.on('exists', (e: { count: number }) => events.push(`exists ${e.count}`));
      watcher.on('expunge', (e: { seq: number }) => events.push(`expunge ${e.seq}`));
      watcher.on('flags', (e: { seq: number; flags: Set<string> }) => events.push(`flags ${e.seq} ${[...e.flags].sort().join(' ')}`));
      await watcher.mailboxOpen('Shared'); // no lock held: imapflow goes into IDLE by itself
      const writeLock = await writer.getMailboxLock('Shared');
      try {
        const waitFor = async (wanted: string): Promise<void> => {
          const seen = (): boolean => events.some((e) => e.replace(' \\Recent', '') === wanted);
          for (let i = 0; i < 200 && !seen(); i++) await new Promise((r) => setTimeout(r, 25));
          assert.ok(seen(), `${wanted} not seen in ${events.join(', ')}`);
        };
        await writer.append('Shared', message('live one'));
        await waitFor('exists 1');
        await writer.append('Shared', message('live two'));
        await waitFor('exists 2');
        await writer.messageFlagsAdd('1', ['\\Flagged']);
        await waitFor('flags 1 \\Flagged');
        await writer.messageFlagsAdd('2', ['\\Deleted']);
        await writer.messageDelete('2');
        await waitFor('expunge 2');
        assert.equal((watcher.mailbox as { exists: number }).exists, 1);
        await watcher.noop();
      } finally {
        writeLock.release();
      }
    } finally {
      await writer.logout();
      await watcher.logout();
    }
  });
});

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}
