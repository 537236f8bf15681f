// Malformed and hostile input: every malformed command gets BAD with its tag when one was
// parsed, the session carries on, and nothing crashes or hangs.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { Wire } from '../../test/clients/imap.js';

describe('IMAP bad input', () => {
  let server: TestServer;
  let port: number;

  before(async () => {
    server = await startTestServer({ overrides: { limits: { badCommands: 30, lineLength: 2048, messageSize: 4096 } } });
    port = server.port('imap');
    await server.addUser('alice@example.com', 'pw');
  });
  after(() => server.stop());

  it('answers garbage and broken syntax with BAD, tagged when a tag was read', async () => {
    const { client } = await Wire.connect(port);
    try {
      const cases: [string, RegExp][] = [
        ['\x00\x01\x02garbage', /^\* BAD /],
        ['a1 FROBNICATE', /^a1 BAD unknown command/],
        ['a2 LOGIN "alice@example.com', /^a2 BAD .*unterminated quoted string/],
        ['a3 LOGIN (a b', /^a3 BAD /],
        ['a4 SELECT INBOX', /^a4 BAD .*not allowed in the not-authenticated state/],
        ['a5 LOGIN a b c', /^a5 BAD too many arguments/],
        ['a6 LOGIN a"b c', /^a6 BAD /],
        ['a7 UID', /^a7 BAD unknown command/],
        ['a8 CAPABILITY extra', /^a8 BAD /],
      ];
      for (const [line, expected] of cases) {
        client.write(`${line}\r\n`);
        const reply = await client.readLine();
        assert.match(reply, expected, line);
      }
      client.write('a9 NOOP\r\n');
      assert.equal(await client.readLine(), 'a9 OK NOOP completed');
    } finally {
      client.destroy();
    }
  });

  it('refuses a 100 KB line with a tagged BAD and keeps the session', async () => {
    const { client } = await Wire.connect(port);
    try {
      client.write(`b1 LOGIN ${'x'.repeat(100 * 1024)} y\r\nb2 NOOP\r\n`);
      assert.match(await client.readLine(), /^b1 BAD line too long/);
      assert.equal(await client.readLine(), 'b2 OK NOOP completed');
    } finally {
      client.destroy();
    }
  });

  it('refuses a literal over the limit before reading it', async () => {
    const { client } = await Wire.connect(port);
    try {
      // Before login only small literals are taken.
      client.write('c1 LOGIN {100000}\r\n');
      assert.match(await client.readLine(), /^c1 BAD \[TOOBIG\]/);
      await client.login('alice@example.com', 'pw');
      client.write('c2 APPEND INBOX {5000}\r\n');
      assert.match(await client.readLine(), /^c2 NO \[TOOBIG\]/);
      // A non-synchronizing one is read and dropped; the next command still works.
      client.write(`c3 APPEND INBOX {5000+}\r\n${'y'.repeat(5000)}\r\nc4 NOOP\r\n`);
      assert.match(await client.readLine(), /^c3 NO \[TOOBIG\]/);
      assert.equal(await client.readLine(), 'c4 OK NOOP completed');
      // A literal within the limit gets its continuation and is stored.
      client.write('c5 APPEND INBOX {13}\r\n');
      assert.match(await client.readLine(), /^\+ /);
      client.write('Subject: x\r\n\r\n');
      assert.match((await client.until('c5')).tagged, /^c5 OK \[APPENDUID \d+ 1\]/);
    } finally {
      client.destroy();
    }
  });

  it('rejects bad arguments of authenticated commands with BAD or NO', async () => {
    const { client } = await Wire.connect(port);
    try {
      await client.login('alice@example.com', 'pw');
      // Well-formed syntax: NO, as Dovecot answers (imaptest atoms).
      assert.match((await client.commandLines('SELECT &Jjo!')).tagged, / NO \[CANNOT\] .*modified UTF-7/);
      assert.match((await client.commandLines('SELECT Nope')).tagged, / NO \[NONEXISTENT\]/);
      await client.commandLines('SELECT INBOX');
      assert.match((await client.commandLines('FETCH 1:x FLAGS')).tagged, / BAD invalid sequence set/);
      assert.match((await client.commandLines('FETCH 99 FLAGS')).tagged, / BAD invalid message sequence number/);
      assert.match((await client.commandLines('FETCH 1 (FLAGS')).tagged, / BAD /);
      assert.match((await client.commandLines('FETCH 1 BOGUS')).tagged, / BAD unknown fetch attribute/);
      assert.match((await client.commandLines('STORE 1 +FLAGS (\\Recent)')).tagged, / BAD /);
      assert.match((await client.commandLines('STORE 1 SETFLAGS (\\Seen)')).tagged, / BAD /);
      assert.match((await client.commandLines('SEARCH FOO')).tagged, / BAD /);
      assert.match((await client.commandLines('SEARCH CHARSET KOI8-R ALL')).tagged, / NO \[BADCHARSET/);
      assert.match((await client.commandLines('APPEND INBOX (\\Seen) "bad date" {1+}\r\nx')).tagged, / BAD /);
      assert.match((await client.commandLines('COPY 1 Nowhere')).tagged, / NO \[TRYCREATE\]/);
      assert.match((await client.commandLines('UID FETCH 1 FLAGS (VANISHED)')).tagged, / BAD /);
      assert.match((await client.commandLines('NOOP')).tagged, / OK /);
    } finally {
      client.destroy();
    }
  });

  it('hangs up on HTTP sent to the IMAP port, and after too many bad commands', async () => {
    const { client } = await Wire.connect(port);
    client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(await client.readLine(), /^\* BYE /);
    await client.untilClosed();

    const limited = await startTestServer({ overrides: { limits: { badCommands: 3 } } });
    try {
      const { client: noisy } = await Wire.connect(limited.port('imap'));
      noisy.write('x1 BOGUS\r\nx2 BOGUS\r\nx3 BOGUS\r\nx4 NOOP\r\n');
      assert.match(await noisy.readLine(), /^x1 BAD/);
      assert.match(await noisy.readLine(), /^x2 BAD/);
      assert.match(await noisy.readLine(), /^x3 BAD/);
      assert.match(await noisy.readLine(), /^\* BYE too many bad commands/);
      await noisy.untilClosed();
    } finally {
      await limited.stop();
    }
  });
});
