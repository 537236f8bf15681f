// IMAP on the wire: exact responses for the commands and extensions, checked line by line
// through a bare client on a real socket.
import assert from 'node:assert/strict';
import net from 'node:net';
import zlib from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { Wire } from '../../test/clients/imap.js';

const USER = 'carol@example.com';
const PASS = 'carol-pw';

const simple = (subject: string, extra = ''): string =>
  `From: Dave <dave@example.com>\r\nTo: carol@example.com\r\nSubject: ${subject}\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\nMessage-ID: <${subject}@x>\r\n${extra}\r\nBody of ${subject}.\r\n`;

async function connect(server: TestServer, login = true): Promise<Wire> {
  const { client } = await Wire.connect(server.port('imap'));
  if (login) await client.login(USER, PASS);
  return client;
}

async function append(client: Wire, mailbox: string, raw: string, flags = ''): Promise<string> {
  const bytes = Buffer.from(raw);
  return (await client.commandLines(`APPEND ${mailbox} ${flags ? `(${flags}) ` : ''}{${bytes.length}+}\r\n${raw}`)).tagged;
}

describe('IMAP protocol', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ overrides: { limits: { imapConnectionsPerUser: 6 } } });
    await server.addUser(USER, PASS, { quotaBytes: 10 * 1024 * 1024 });
  });
  after(() => server.stop());

  it('greets with capabilities and authenticates with PLAIN, initial response or continuation', async () => {
    const { client, greeting } = await Wire.connect(server.port('imap'));
    try {
      assert.match(greeting, /^\* OK \[CAPABILITY IMAP4rev1 .*STARTTLS AUTH=PLAIN AUTH=LOGIN\] /);
      const plain = Buffer.from(`\0${USER}\0wrong`).toString('base64');
      assert.match((await client.commandLines(`AUTHENTICATE PLAIN ${plain}`)).tagged, / NO \[AUTHENTICATIONFAILED\]/);
      client.write('a1 AUTHENTICATE PLAIN\r\n');
      assert.equal(await client.readLine(), '+ ');
      client.write(`${Buffer.from(`\0${USER}\0${PASS}`).toString('base64')}\r\n`);
      const reply = await client.until('a1');
      assert.match(reply.tagged, /^a1 OK \[CAPABILITY .*CONDSTORE QRESYNC .*APPENDLIMIT=\d+/);
      assert.doesNotMatch(reply.tagged, /STARTTLS/);
      const ns = await client.commandLines('NAMESPACE');
      assert.deepEqual(ns.untagged, ['* NAMESPACE (("" "/")) NIL NIL']);
      const id = await client.commandLines('ID ("name" "test")');
      assert.deepEqual(id.untagged, ['* ID ("name" "Quillmail" "version" "0.1.0")']);
      assert.deepEqual((await client.commandLines('ENABLE QRESYNC X-UNKNOWN')).untagged, ['* ENABLED CONDSTORE QRESYNC']);
    } finally {
      client.destroy();
    }
  });

  it('selects with the RFC 3501 responses, and FETCHes sections, partials and structure byte-exactly', async () => {
    const client = await connect(server);
    try {
      await client.commandLines('CREATE Fetch');
      const raw = simple('one', 'X-Extra: value\r\n');
      assert.match(await append(client, 'Fetch', raw, '\\Seen'), /OK \[APPENDUID \d+ 1\]/);
      await append(client, 'Fetch', simple('two'));
      const selected = await client.commandLines('SELECT Fetch');
      assert.deepEqual(selected.untagged.slice(0, 3), ['* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)', '* 2 EXISTS', '* 2 RECENT']);
      assert.ok(selected.untagged.includes('* OK [UNSEEN 2] first unseen'));
      assert.ok(selected.untagged.some((l) => /^\* OK \[UIDVALIDITY \d+\]/.test(l)));
      assert.ok(selected.untagged.includes('* OK [UIDNEXT 3] predicted next UID'));
      assert.match(selected.tagged, /OK \[READ-WRITE\]/);

      const header = raw.slice(0, raw.indexOf('\r\n\r\n') + 4);
      let reply = await client.commandLines('FETCH 1 (RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[]<0.10>)');
      assert.deepEqual(reply.untagged, [`* 1 FETCH (RFC822.SIZE ${raw.length} BODY[HEADER] {${header.length}}\r\n${header} BODY[]<0> {10}\r\n${raw.slice(0, 10)})`]);
      reply = await client.commandLines('FETCH 1 BODY.PEEK[HEADER.FIELDS (subject x-extra)]');
      assert.deepEqual(reply.untagged, ['* 1 FETCH (BODY[HEADER.FIELDS (subject x-extra)] {32}\r\nSubject: one\r\nX-Extra: value\r\n\r\n)']);
      reply = await client.commandLines('FETCH 2 (FLAGS BODYSTRUCTURE)');
      assert.deepEqual(reply.untagged, ['* 2 FETCH (FLAGS (\\Recent) BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 14 1 NIL NIL NIL NIL))']);
      // BODY[] without PEEK sets \Seen and says so.
      reply = await client.commandLines('FETCH 2 BODY[TEXT]');
      assert.deepEqual(reply.untagged, ['* 2 FETCH (BODY[TEXT] {14}\r\nBody of two.\r\n FLAGS (\\Seen \\Recent))']);
      reply = await client.commandLines('UID FETCH 1:* (FLAGS)');
      assert.deepEqual(reply.untagged, ['* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))', '* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent))']);
      reply = await client.commandLines('FETCH 1 ENVELOPE');
      assert.deepEqual(reply.untagged, [
        '* 1 FETCH (ENVELOPE ("Tue, 2 Jan 2024 10:00:00 +0000" "one" (("Dave" NIL "dave" "example.com")) (("Dave" NIL "dave" "example.com")) (("Dave" NIL "dave" "example.com")) ((NIL NIL "carol" "example.com")) NIL NIL NIL "<one@x>"))',
      ]);
      // EXAMINE is read-only and does not claim \Recent.
      const examined = await client.commandLines('EXAMINE Fetch');
      assert.ok(examined.untagged.includes('* 0 RECENT'));
      assert.ok(examined.untagged.includes('* OK [CLOSED] previous mailbox closed') === false);
      assert.match(examined.tagged, /OK \[READ-ONLY\]/);
      assert.match((await client.commandLines('STORE 1 +FLAGS (\\Flagged)')).tagged, / NO /);
    } finally {
      client.destroy();
    }
  });

  it('stores flags with the responses STORE owes, and expunges with UID EXPUNGE and CLOSE', async () => {
    const client = await connect(server);
    try {
      await client.commandLines('CREATE Flags');
      for (const s of ['a', 'b', 'c', 'd']) await append(client, 'Flags', simple(s));
      await client.commandLines('SELECT Flags');
      let reply = await client.commandLines('STORE 1:2 +FLAGS (\\Deleted $Work)');
      assert.deepEqual(reply.untagged, [
        // RFC 3501 7.2.6: the new keyword is named in FLAGS before a FETCH shows it.
        '* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)',
        '* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] flags permitted',
        '* 1 FETCH (FLAGS (\\Deleted $Work \\Recent))',
        '* 2 FETCH (FLAGS (\\Deleted $Work \\Recent))',
      ]);
      reply = await client.commandLines('STORE 1 +FLAGS.SILENT (\\Seen)');
      assert.deepEqual(reply.untagged, []);
      reply = await client.commandLines('UID STORE 2 -FLAGS ($Work)');
      assert.deepEqual(reply.untagged, ['* 2 FETCH (UID 2 FLAGS (\\Deleted \\Recent))']);
      reply = await client.commandLines('UID EXPUNGE 2:3');
      assert.deepEqual(reply.untagged, ['* 2 EXPUNGE']);
      reply = await client.commandLines('SEARCH ALL');
      assert.deepEqual(reply.untagged, ['* SEARCH 1 2 3']);
      reply = await client.commandLines('EXPUNGE');
      assert.deepEqual(reply.untagged, ['* 1 EXPUNGE']);
      await client.commandLines('STORE 1 +FLAGS (\\Deleted)');
      reply = await client.commandLines('CLOSE');
      assert.deepEqual(reply.untagged, []);
      const status = await client.commandLines('STATUS Flags (MESSAGES UIDNEXT UNSEEN SIZE)');
      assert.match(status.untagged[0]!, /^\* STATUS Flags \(MESSAGES 1 UIDNEXT 5 UNSEEN 1 SIZE \d+\)$/);
    } finally {
      client.destroy();
    }
  });

  it('holds EXPUNGE back during FETCH, STORE and SEARCH by sequence number (RFC 3501 7.4.1)', async () => {
    const a = await connect(server);
    const b = await connect(server);
    try {
      await a.commandLines('CREATE Held');
      for (const s of ['h1', 'h2', 'h3']) await append(a, 'Held', simple(s));
      await a.commandLines('SELECT Held');
      await b.commandLines('SELECT Held');
      await b.commandLines('STORE 2 +FLAGS.SILENT (\\Deleted)');
      assert.deepEqual((await b.commandLines('EXPUNGE')).untagged, ['* 2 EXPUNGE']);
      await append(b, 'Held', simple('h4'));
      // a still sees message 2 in its slot; new mail may be announced, the expunge may not.
      const fetched = await a.commandLines('FETCH 1:* (UID)');
      assert.ok(!fetched.untagged.some((l) => /EXPUNGE/.test(l)), fetched.untagged.join('|'));
      assert.ok(fetched.untagged.includes('* 4 EXISTS'), fetched.untagged.join('|'));
      const searched = await a.commandLines('SEARCH ALL');
      assert.ok(!searched.untagged.some((l) => /EXPUNGE/.test(l)));
      const noop = await a.commandLines('NOOP');
      assert.deepEqual(noop.untagged, ['* 2 EXPUNGE']);
      assert.deepEqual((await a.commandLines('UID SEARCH ALL')).untagged, ['* SEARCH 1 3 4']);
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('announces changes from another session during IDLE', async () => {
    const a = await connect(server);
    const b = await connect(server);
    try {
      await a.commandLines('CREATE Idle');
      await append(a, 'Idle', simple('i1'));
      await a.commandLines('SELECT Idle');
      a.write('i1 IDLE\r\n');
      assert.equal(await a.readLine(), '+ idling');
      await append(b, 'Idle', simple('i2'));
      assert.equal(await a.readLine(), '* 2 EXISTS');
      assert.equal(await a.readLine(), '* 2 RECENT');
      await b.commandLines('SELECT Idle');
      await b.commandLines('STORE 1 +FLAGS.SILENT (\\Flagged)');
      assert.equal(await a.readLine(), '* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent))');
      await b.commandLines('STORE 1 +FLAGS.SILENT (\\Deleted)');
      await b.commandLines('EXPUNGE');
      const lines = [await a.readLine()];
      if (lines[0]!.includes('FETCH')) lines.push(await a.readLine());
      assert.equal(lines[lines.length - 1], '* 1 EXPUNGE');
      a.write('DONE\r\n');
      assert.deepEqual(await a.until('i1'), { untagged: [], tagged: 'i1 OK IDLE terminated' });
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('copies and moves with COPYUID', async () => {
    const client = await connect(server);
    try {
      await client.commandLines('CREATE Src');
      await client.commandLines('CREATE Dst');
      for (const s of ['m1', 'm2', 'm3']) await append(client, 'Src', simple(s));
      await client.commandLines('SELECT Src');
      const copied = await client.commandLines('COPY 1:2 Dst');
      assert.match(copied.tagged, /OK \[COPYUID \d+ 1:2 1:2\]/);
      const moved = await client.commandLines('UID MOVE 2:3 Dst');
      assert.match(moved.untagged[0]!, /^\* OK \[COPYUID \d+ 2:3 3:4\]/);
      assert.deepEqual(moved.untagged.slice(1), ['* 2 EXPUNGE', '* 2 EXPUNGE']);
      assert.deepEqual((await client.commandLines('UID SEARCH ALL')).untagged, ['* SEARCH 1']);
    } finally {
      client.destroy();
    }
  });

  it('searches with ESEARCH, sorts and threads', async () => {
    const client = await connect(server);
    try {
      await client.commandLines('CREATE Sort');
      await append(client, 'Sort', simple('banana').replace('2 Jan', '5 Jan'));
      await append(client, 'Sort', simple('apple').replace('2 Jan', '3 Jan'), '\\Seen');
      await append(client, 'Sort', simple('Re: banana', 'In-Reply-To: <banana@x>\r\nReferences: <banana@x>\r\n').replace('2 Jan', '6 Jan'));
      await client.commandLines('SELECT Sort');
      const esearch = async (command: string): Promise<string[]> => (await client.commandLines(command)).untagged.map((l) => l.replace(/TAG "T\d+"/, 'TAG "x"'));
      assert.deepEqual(await esearch('SEARCH RETURN (ALL COUNT MAX MIN) UNSEEN'), ['* ESEARCH (TAG "x") MIN 1 MAX 3 COUNT 2 ALL 1,3']);
      assert.deepEqual(await esearch('UID SEARCH RETURN (COUNT) SUBJECT nothing'), ['* ESEARCH (TAG "x") UID COUNT 0']);
      assert.deepEqual(await esearch('SEARCH RETURN () FROM dave'), ['* ESEARCH (TAG "x") ALL 1:3']);
      assert.deepEqual((await client.commandLines('SEARCH SUBJECT banana')).untagged, ['* SEARCH 1 3']);
      assert.deepEqual((await client.commandLines('SORT (SUBJECT) UTF-8 ALL')).untagged, ['* SORT 2 1 3']);
      assert.deepEqual((await client.commandLines('SORT (REVERSE DATE) UTF-8 ALL')).untagged, ['* SORT 3 1 2']);
      assert.deepEqual((await client.commandLines('THREAD REFERENCES UTF-8 ALL')).untagged, ['* THREAD (2)(1 3)']);
      assert.deepEqual((await client.commandLines('UID THREAD ORDEREDSUBJECT UTF-8 ALL')).untagged, ['* THREAD (2)(1 3)']);
    } finally {
      client.destroy();
    }
  });

  it('supports CONDSTORE and QRESYNC resynchronisation', async () => {
    const client = await connect(server);
    try {
      await client.commandLines('CREATE Cond');
      for (const s of ['c1', 'c2', 'c3']) await append(client, 'Cond', simple(s));
      const selected = await client.commandLines('SELECT Cond (CONDSTORE)');
      const modseq = Number(/HIGHESTMODSEQ (\d+)/.exec(selected.untagged.join('\n'))![1]);
      const stored = await client.commandLines('STORE 1 +FLAGS.SILENT (\\Seen)');
      const newModseq = Number(/MODSEQ \((\d+)\)/.exec(stored.untagged[0]!)![1]);
      assert.ok(newModseq > modseq);
      const refused = await client.commandLines(`STORE 1,2 (UNCHANGEDSINCE ${modseq}) +FLAGS (\\Flagged)`);
      assert.match(refused.tagged, /OK \[MODIFIED 1\]/);
      const changed = await client.commandLines(`FETCH 1:* (FLAGS) (CHANGEDSINCE ${modseq})`);
      assert.equal(changed.untagged.length, 2, changed.untagged.join('|'));
      assert.deepEqual((await client.commandLines(`SEARCH MODSEQ ${newModseq}`)).untagged.length, 1);
      await client.commandLines('STORE 3 +FLAGS.SILENT (\\Deleted)');
      await client.commandLines('EXPUNGE');
      const uidvalidity = /UIDVALIDITY (\d+)/.exec(selected.untagged.join('\n'))![1];
      await client.commandLines('ENABLE QRESYNC');
      const resync = await client.commandLines(`SELECT Cond (QRESYNC (${uidvalidity} ${modseq} 1:3))`);
      assert.ok(resync.untagged.includes('* VANISHED (EARLIER) 3'), resync.untagged.join('|'));
      assert.ok(resync.untagged.includes(`* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (${newModseq}))`), resync.untagged.join('|'));
      assert.ok(resync.untagged.some((l) => /^\* 2 FETCH \(UID 2 FLAGS \(\\Flagged\) MODSEQ/.test(l)), resync.untagged.join('|'));
      assert.ok(resync.untagged.includes('* OK [CLOSED] previous mailbox closed'));
    } finally {
      client.destroy();
    }
  });

  it('lists with CHILDREN, SPECIAL-USE, LIST-EXTENDED and LIST-STATUS, in modified UTF-7', async () => {
    const client = await connect(server);
    try {
      assert.match((await client.commandLines('CREATE Reise/Tokyo-&ZeVnLIqe-')).tagged, /OK/);
      assert.match((await client.commandLines('CREATE Reise')).tagged, /NO \[ALREADYEXISTS\]/);
      assert.deepEqual((await client.commandLines('LIST "" ""')).untagged, ['* LIST (\\Noselect) "/" ""']);
      assert.deepEqual((await client.commandLines('LIST "" "Reise/%"')).untagged, ['* LIST (\\HasNoChildren) "/" Reise/Tokyo-&ZeVnLIqe-']);
      assert.deepEqual((await client.commandLines('LIST Reise/ %')).untagged, ['* LIST (\\HasNoChildren) "/" Reise/Tokyo-&ZeVnLIqe-']);
      assert.deepEqual((await client.commandLines('LIST "" Reise')).untagged, ['* LIST (\\HasChildren) "/" Reise']);
      assert.deepEqual((await client.commandLines('LIST "" inbox')).untagged, ['* LIST (\\HasNoChildren) "/" INBOX']);
      assert.deepEqual((await client.commandLines('LIST (SPECIAL-USE) "" "*"')).untagged, [
        '* LIST (\\HasNoChildren \\Archive) "/" Archive',
        '* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
        '* LIST (\\HasNoChildren \\Junk) "/" Junk',
        '* LIST (\\HasNoChildren \\Sent) "/" Sent',
        '* LIST (\\HasNoChildren \\Trash) "/" Trash',
      ]);
      const withStatus = await client.commandLines('LIST "" (INBOX Drafts) RETURN (SUBSCRIBED STATUS (MESSAGES UIDNEXT))');
      assert.deepEqual(withStatus.untagged, [
        '* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
        '* STATUS INBOX (MESSAGES 0 UIDNEXT 1)',
        '* LIST (\\HasNoChildren \\Drafts \\Subscribed) "/" Drafts',
        '* STATUS Drafts (MESSAGES 0 UIDNEXT 1)',
      ]);
      await client.commandLines('UNSUBSCRIBE Drafts');
      assert.ok(!(await client.commandLines('LSUB "" *')).untagged.some((l) => l.endsWith('Drafts')));
      assert.deepEqual((await client.commandLines('LIST (SUBSCRIBED) "" Dra*')).untagged, []);
      await client.commandLines('DELETE Reise');
      assert.deepEqual((await client.commandLines('LIST "" Reise')).untagged, ['* LIST (\\Noselect \\HasChildren) "/" Reise']);
    } finally {
      client.destroy();
    }
  });

  it('renames INBOX by moving its messages, and reports the quota', async () => {
    const client = await connect(server);
    try {
      await append(client, 'INBOX', simple('keep'));
      const before = await client.commandLines('STATUS INBOX (MESSAGES)');
      const count = Number(/MESSAGES (\d+)/.exec(before.untagged[0]!)![1]);
      assert.match((await client.commandLines('RENAME INBOX Old-Inbox')).tagged, /OK/);
      assert.deepEqual((await client.commandLines('STATUS INBOX (MESSAGES)')).untagged, ['* STATUS INBOX (MESSAGES 0)']);
      assert.deepEqual((await client.commandLines('STATUS Old-Inbox (MESSAGES)')).untagged, [`* STATUS Old-Inbox (MESSAGES ${count})`]);
      assert.match((await client.commandLines('RENAME Nothing Other')).tagged, /NO \[NONEXISTENT\]/);
      assert.match((await client.commandLines('RENAME Old-Inbox INBOX')).tagged, /NO \[ALREADYEXISTS\]/);
      const quota = await client.commandLines('GETQUOTAROOT INBOX');
      assert.equal(quota.untagged[0], '* QUOTAROOT INBOX ""');
      assert.match(quota.untagged[1]!, /^\* QUOTA "" \(STORAGE \d+ 10240\)$/);
      assert.match((await client.commandLines('SETQUOTA "" (STORAGE 1)')).tagged, /NO/);
    } finally {
      client.destroy();
    }
  });

  it('compresses both directions after COMPRESS DEFLATE (RFC 4978)', async () => {
    const socket = net.connect(server.port('imap'), '127.0.0.1');
    const inflate = zlib.createInflateRaw();
    const deflate = zlib.createDeflateRaw();
    let text = '';
    let compressed = false;
    socket.on('data', (chunk: Buffer) => (compressed ? inflate.write(chunk) : (text += chunk.toString('latin1'))));
    inflate.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    const waitFor = async (pattern: RegExp): Promise<void> => {
      for (let i = 0; i < 400 && !pattern.test(text); i++) await new Promise((r) => setTimeout(r, 10));
      assert.match(text, pattern);
    };
    try {
      await waitFor(/^\* OK .*\r\n/);
      socket.write(`a LOGIN ${USER} ${PASS}\r\nb COMPRESS DEFLATE\r\n`);
      await waitFor(/b OK DEFLATE active\r\n/);
      compressed = true;
      text = '';
      deflate.pipe(socket);
      deflate.write('c NOOP\r\nd COMPRESS DEFLATE\r\ne LIST "" INBOX\r\n');
      deflate.flush(zlib.constants.Z_SYNC_FLUSH);
      await waitFor(/e OK LIST completed\r\n/);
      assert.equal(text, 'c OK NOOP completed\r\nd NO [COMPRESSIONACTIVE] compression is already active\r\n* LIST (\\HasNoChildren) "/" INBOX\r\ne OK LIST completed\r\n');
    } finally {
      socket.destroy();
    }
  });

  it('limits sessions per user', async () => {
    const clients: Wire[] = [];
    try {
      let refused = '';
      for (let i = 0; i < 8 && !refused; i++) {
        const { client } = await Wire.connect(server.port('imap'));
        clients.push(client);
        const reply = await client.commandLines(`LOGIN ${USER} ${PASS}`);
        if (/ NO /.test(reply.tagged)) refused = reply.tagged;
      }
      assert.match(refused, /NO \[LIMIT\]/);
    } finally {
      for (const client of clients) client.destroy();
    }
  });
});

describe('IMAP without plaintext on loopback', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ overrides: { imap: { loopbackPlainAuth: false }, limits: { imapIdleTimeoutSeconds: 0.5, idleTimeoutSeconds: 30 } } });
    await server.addUser(USER, PASS);
  });
  after(() => server.stop());

  it('refuses LOGIN before STARTTLS and accepts it after', async () => {
    const { client, greeting } = await Wire.connect(server.port('imap'));
    try {
      assert.match(greeting, /STARTTLS LOGINDISABLED/);
      assert.match((await client.commandLines(`LOGIN ${USER} ${PASS}`)).tagged, /NO \[PRIVACYREQUIRED\]/);
      assert.match((await client.startTls()).tagged, /OK/);
      const caps = await client.commandLines('CAPABILITY');
      assert.match(caps.untagged[0]!, /AUTH=PLAIN/);
      assert.doesNotMatch(caps.untagged[0]!, /STARTTLS|LOGINDISABLED/);
      await client.login(USER, PASS);
      // The autologout timer (0.5 s here) ends an idle authenticated session with BYE.
      assert.match(await client.readLine(), /^\* BYE autologout/);
      await client.untilClosed();
    } finally {
      client.destroy();
    }
  });
});
