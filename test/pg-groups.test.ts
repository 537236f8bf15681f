// A node on a store of two PostgreSQL groups (two databases of one test server, and a
// directory): SMTP deliveries to users of both groups, and a user moved from one group to the
// other while mail for them keeps arriving. Every message that got 250 must end up exactly
// once in the target group, none in the source, and IMAP must show the same UIDs afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { groupIndexOf } from '../src/store/directory.js';
import { addGroup, isGroupedStore } from '../src/store/grouped-store.js';
import { moveUser } from '../src/store/user-move.js';
import type { Store } from '../src/store/types.js';
import { startTestServer, type TestServer } from './helpers.js';
import { postgresAvailable, startPostgres, type PgServer } from './pg-server.js';

const skip = postgresAvailable() ? false : 'PostgreSQL 15 is not installed';

async function send(port: number, id: string, to: string[]): Promise<void> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, name: 'client.example', tls: { rejectUnauthorized: false } });
  try {
    const raw = `From: bob@remote.test\r\nTo: ${to.join(', ')}\r\nMessage-ID: <${id}@remote.test>\r\nSubject: ${id}\r\n\r\nbody of ${id}\r\n`;
    await transport.sendMail({ envelope: { from: 'sender@remote.test', to }, raw });
  } finally {
    transport.close();
  }
}

/** Subject -> how many times it is stored, over a user's INBOX, with each one's UID. */
async function inbox(store: Store, address: string): Promise<{ counts: Map<string, number>; uids: Map<string, number>; uidvalidity: number }> {
  const user = (await store.getUser(address))!;
  const box = (await store.getMailbox(user.id, 'INBOX'))!;
  const counts = new Map<string, number>();
  const uids = new Map<string, number>();
  const metas = await store.listMessages(box.id);
  const blobs = await store.getBlobs(metas.map((m) => m.blobHash));
  for (const meta of metas) {
    const subject = /^Subject: (\S+)/m.exec(blobs.get(meta.blobHash)!.toString())![1]!;
    counts.set(subject, (counts.get(subject) ?? 0) + 1);
    uids.set(subject, meta.uid);
  }
  return { counts, uids, uidvalidity: box.uidvalidity };
}

async function imapUids(port: number, user: string, pass: string): Promise<{ uidvalidity: number; bySubject: Map<string, number> }> {
  const client = new ImapFlow({ host: '127.0.0.1', port, secure: false, doSTARTTLS: false, auth: { user, pass }, logger: false, disableAutoIdle: true });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const box = await client.mailboxOpen('INBOX');
    const bySubject = new Map<string, number>();
    for await (const message of client.fetch('1:*', { uid: true, envelope: true })) bySubject.set(message.envelope?.subject ?? '', message.uid);
    return { uidvalidity: Number(box.uidValidity), bySubject };
  } finally {
    await client.logout().catch(() => client.close());
  }
}

describe('SMTP and user moves on a store of two PostgreSQL groups', { skip }, () => {
  let pg: PgServer;
  let server: TestServer;
  let groupUrls: string[];

  before(async () => {
    pg = await startPostgres();
    const directory = await pg.createDatabase('quill_dir');
    groupUrls = [await pg.createDatabase('quill_g0'), await pg.createDatabase('quill_g1')];
    for (const [i, url] of groupUrls.entries()) await addGroup(directory, `g${i}`, url);
    server = await startTestServer({ overrides: { outbound: { enabled: false }, store: { url: directory, poolSize: 6 } } });
    assert.ok(isGroupedStore(server.store));
    // Least-loaded placement: one user per group.
    await server.addUser('alice@example.com', 'alice-pw');
    await server.addUser('bob@example.com', 'bob-pw');
  });
  after(async () => {
    await server?.stop();
    pg?.destroy();
  });

  it('stores one SMTP transaction to users of both groups exactly once each', async () => {
    const alice = (await server.store.getUser('alice@example.com'))!;
    const bob = (await server.store.getUser('bob@example.com'))!;
    assert.notEqual(groupIndexOf(alice.id), groupIndexOf(bob.id), 'alice and bob are in different groups');
    await send(server.port('smtp'), 'to-both', ['alice@example.com', 'bob@example.com']);
    for (const address of ['alice@example.com', 'bob@example.com']) {
      assert.equal((await inbox(server.store, address)).counts.get('to-both'), 1, address);
    }
  });

  it('moves a user to the other group under continuous delivery, every 250 stored once, UIDs kept', async (t) => {
    const port = server.port('smtp');
    const acked: string[] = [];
    let temporaryErrors = 0;
    let next = 0;
    let stop = false;
    const sender = async (n: number) => {
      while (!stop) {
        const id = `s${n}-${next++}`;
        while (!stop) {
          try {
            await send(port, id, ['alice@example.com']);
            acked.push(id);
            break;
          } catch (error) {
            const code = (error as { responseCode?: number }).responseCode;
            if (code === undefined || code < 400 || code >= 500) throw error;
            temporaryErrors++;
            await sleep(50);
          }
        }
      }
    };
    const until = async (what: string, condition: () => boolean, timeoutMs: number) => {
      for (const deadline = Date.now() + timeoutMs; !condition(); await sleep(20)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      }
    };
    // A drive to move along: a folder with a file of two chunks, and an upload half done.
    const aliceBefore = (await server.store.getUser('alice@example.com'))!;
    const folder = await server.store.createDriveFolder(aliceBefore.id, null, 'Docs');
    const fileBytes = Buffer.alloc(1536 * 1024, 'f');
    const upload = await server.store.createDriveUpload(aliceBefore.id, { parentId: folder.id, name: 'big.bin', size: fileBytes.length });
    await server.store.appendDriveUpload(aliceBefore.id, upload.id, 0, fileBytes.subarray(0, 1024 * 1024));
    await server.store.appendDriveUpload(aliceBefore.id, upload.id, 1024 * 1024, fileBytes.subarray(1024 * 1024));
    const pending = await server.store.createDriveUpload(aliceBefore.id, { parentId: null, name: 'later.txt', size: 10 });
    await server.store.appendDriveUpload(aliceBefore.id, pending.id, 0, Buffer.from('hello'));
    const running = Promise.all([0, 1, 2].map(sender));
    let before: Awaited<ReturnType<typeof imapUids>>;
    let moved: Awaited<ReturnType<typeof moveUser>>;
    try {
      await until('mail before the move', () => acked.length >= 30, 30_000);
      before = await imapUids(server.port('imap'), 'alice@example.com', 'alice-pw');
      moved = await moveUser(server.store, 'alice@example.com', 'g1');
      const count = acked.length;
      await until('mail after the move', () => acked.length >= count + 30, 30_000);
    } finally {
      stop = true;
      await running;
    }
    t.diagnostic(`${acked.length} messages acknowledged, ${temporaryErrors} 4xx; moved ${moved.messages} messages, fence ${moved.fenceMs} ms`);
    assert.equal(moved.from, 'g0');
    assert.equal(moved.to, 'g1');

    const alice = (await server.store.getUser('alice@example.com'))!;
    assert.equal(groupIndexOf(alice.id), 1, 'alice is in g1 now');
    const { counts } = await inbox(server.store, 'alice@example.com');
    assert.deepEqual(acked.filter((id) => !counts.has(id)), [], 'every 250 is stored');
    assert.deepEqual(acked.filter((id) => counts.get(id)! > 1), [], 'none is stored twice');
    assert.equal(counts.get('to-both'), 1);

    // Nothing of alice is left in the source group's database.
    const rows = pg.psql(`select count(*) from users where address = 'alice@example.com'`, new URL(groupUrls[0]!).pathname.slice(1));
    assert.equal(rows, '0');
    const orphans = pg.psql(`select count(*) from mailboxes m left join users u on u.id = m.user_id where u.id is null`, new URL(groupUrls[0]!).pathname.slice(1));
    assert.equal(orphans, '0');
    assert.equal(pg.psql(`select (select count(*) from drive_nodes) + (select count(*) from drive_chunks) + (select count(*) from drive_uploads)`, new URL(groupUrls[0]!).pathname.slice(1)), '0');

    // The messages IMAP showed before the move keep their UIDs, and UIDVALIDITY is unchanged.
    const afterMove = await imapUids(server.port('imap'), 'alice@example.com', 'alice-pw');
    assert.equal(afterMove.uidvalidity, before!.uidvalidity);
    for (const [subject, uid] of before!.bySubject) assert.equal(afterMove.bySubject.get(subject), uid, subject);
    // The drive came along: same tree and bytes, and the upload resumes where it was.
    const [docs] = await server.store.listDrive(alice.id, null);
    assert.equal(docs?.name, 'Docs');
    const [file] = await server.store.listDrive(alice.id, docs!.id);
    assert.equal(file?.name, 'big.bin');
    const read: Buffer[] = [];
    for await (const chunk of server.store.readDriveFile(alice.id, file!.id)) read.push(chunk);
    assert.ok(Buffer.concat(read).equals(fileBytes));
    const resumed = await server.store.appendDriveUpload(alice.id, pending.id, 5, Buffer.from('world'));
    assert.equal(resumed.file?.name, 'later.txt');

    // And bob, in the target group all along, still has his one message.
    assert.equal((await inbox(server.store, 'bob@example.com')).counts.get('to-both'), 1);
  });

  it('shows the groups with their users and moves refuse what they cannot do', async () => {
    assert.ok(isGroupedStore(server.store));
    const loads = await server.store.loads();
    assert.deepEqual(loads.map((l) => [l.name, l.users]), [['g0', 0], ['g1', 2]]);
    assert.ok(loads[1]!.usedBytes > 0);
    await assert.rejects(moveUser(server.store, 'alice@example.com', 'g1'), /already/);
    await assert.rejects(moveUser(server.store, 'nobody@example.com', 'g0'), /no user/);
    await assert.rejects(moveUser(server.store, 'alice@example.com', 'g9'), /no group/);
    // The next user goes to the emptier group.
    await server.addUser('carol@example.com', 'carol-pw');
    assert.equal(groupIndexOf((await server.store.getUser('carol@example.com'))!.id), 0);
  });
});
