// Malformed input over raw sockets: every bad command gets BAD (tagged when a tag was read,
// RFC 3501 7.1.3), the session goes on, and oversized or hostile input never crashes or
// hangs the server: afterwards a new connection still logs in and works.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { quote, scratch, target, Wire, wire } from './kit.js';

/** A fresh connection logs in, selects INBOX read-only and answers NOOP. */
async function stillServing(): Promise<void> {
  const raw = await Wire.login(await target());
  (await raw.command('EXAMINE INBOX')).ok();
  (await raw.command('NOOP')).ok();
  await raw.close();
}

/** Sends raw bytes on a new connection (after the greeting); returns what came back until `until` matches, a close, or waitMs. */
async function exchange(data: Buffer | string, until?: RegExp, waitMs = 5000): Promise<{ text: string; closed: boolean }> {
  const where = await target();
  const socket = connect(where.port, where.host);
  const chunks: Buffer[] = [];
  let closed = false;
  let matched: () => void = () => {};
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    if (until?.test(Buffer.concat(chunks).toString('latin1'))) matched();
  });
  socket.on('error', () => {});
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.write(data);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, waitMs);
    matched = () => {
      clearTimeout(timer);
      resolve();
    };
    socket.once('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve();
    });
  });
  socket.destroy();
  return { text: Buffer.concat(chunks).toString('latin1'), closed };
}

test('syntax errors get a tagged BAD and the session goes on', async (t) => {
  const name = await scratch(t, [Buffer.from('Subject: x\r\n\r\nx\r\n')]);
  const bad = [
    'SELECT',
    'FETCH 1 (FLAGS',
    'FETCH 1 FLAGS)',
    'FETCH 0 FLAGS',
    'FETCH a:b FLAGS',
    'FETCH 1 (NOT-AN-ITEM)',
    'FETCH 1 BODY[TEXT',
    'FETCH 1 BODY[HEADER.FIELDS]',
    'FETCH 1 BODY[]<abc>',
    'CREATE "unterminated',
    'SEARCH SINCE 32-Foo-2020',
    'SEARCH (FLAGGED',
    'STORE 1 FLAGZ (\\Seen)',
    'UID NOT-A-COMMAND 1',
    'XYZZY',
  ];
  const problems: string[] = [];
  // Five per connection: servers may hang up after too many bad commands in one session.
  for (let i = 0; i < bad.length; i += 5) {
    const raw = await Wire.login(await target());
    (await raw.command(`SELECT ${quote(name)}`)).ok();
    for (const command of bad.slice(i, i + 5)) {
      const reply = await raw.command(command);
      if (reply.status !== 'BAD') problems.push(`${command} -> ${reply.tagged.text}`);
      (await raw.command('NOOP')).ok();
    }
    await raw.close();
  }
  assert.deepEqual(problems, [], 'every malformed command gets a tagged BAD');
});

test('invalid arguments of a well-formed command: bad dates, flags and mailbox names are refused', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, [Buffer.from('Subject: x\r\n\r\nx\r\n')]);
  const date = await raw.command([`APPEND ${quote(name)} "31-Foo-2020 99:00:00 +0000" `, Buffer.from('Subject: y\r\n\r\ny\r\n')]);
  assert.equal(date.status, 'BAD', String(date));
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const flag = await raw.command('STORE 1 +FLAGS (\\Bogus)');
  assert.match(flag.status, /^(BAD|NO)$/, String(flag));
  const utf7 = await raw.command('CREATE "&Jjo"');
  assert.match(utf7.status, /^(BAD|NO)$/, String(utf7));
  const status = (await raw.command(`STATUS ${quote(name)} (MESSAGES)`)).ok();
  assert.match(status.all('STATUS')[0]?.text ?? '', /\(MESSAGES 1\)/);
});

test('an invalid tag or an empty line gets an untagged BAD, then the next command works', async () => {
  // After login: servers may hang up after a few bad commands before it (Dovecot after three).
  const { user, pass } = (await target()).accounts[0]!;
  const { text } = await exchange(`T0 LOGIN ${quote(user)} ${quote(pass)}\r\n\r\n* NOOP\r\n+ NOOP\r\nT9 NOOP\r\n`, /^T9 /m);
  const lines = text.split('\r\n');
  assert.ok(lines.filter((line) => /^\* BAD\b/.test(line)).length >= 2, text);
  assert.ok(lines.some((line) => /^T9 OK\b/.test(line)), text);
});

test('NUL bytes and 8-bit garbage in a command line get BAD, never a crash', async () => {
  const { text } = await exchange(Buffer.concat([Buffer.from('T1 NOOP\0x\r\nT2 \xff\xfe\x80 NOOP\r\n', 'latin1'), Buffer.from('T3 NOOP\r\n')]), /^T3 /m);
  assert.match(text, /^T1 BAD\b/m, text);
  assert.match(text, /^(T2|\*) BAD\b/m, text);
  await stillServing();
});

test('a 100 KB command line is refused (BAD or hang-up) and the server keeps serving', async () => {
  const { text, closed } = await exchange(`T1 NOOP ${'x'.repeat(100_000)}\r\nT2 NOOP\r\n`, /^(T2 |\* BYE)/m);
  assert.ok(/^(T1|\*) (BAD|BYE)\b/m.test(text) || closed, `neither refused nor closed: ${text.slice(0, 200)}`);
  assert.doesNotMatch(text, /^T1 OK/m);
  await stillServing();
});

test('a huge literal before login is refused without a continuation', async () => {
  const { text } = await exchange('T1 LOGIN {999999999}\r\n', /^(T1 |\* BYE)/m);
  assert.doesNotMatch(text, /^\+/m, 'the server asked for a 1 GB literal before login');
  assert.match(text, /^(T1 (BAD|NO)|\* BYE)\b/m, text);
  await stillServing();
});

test('an APPEND literal far over any limit is refused without a continuation', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t);
  raw.write(`L1 APPEND ${quote(name)} {4000000000}\r\n`);
  const answer = await raw.next();
  assert.notEqual(answer.kind, 'continuation', 'the server asked for a 4 GB literal');
  assert.match(answer.text, /^(L1 (NO|BAD)|\* BYE)\b/, answer.text);
  await stillServing();
});

test('a bad literal header and a literal cut off by a hang-up leave nothing behind', async (t) => {
  const name = await scratch(t);
  const where = await target();
  const { user, pass } = where.accounts[0]!;
  const bad = await exchange(`T0 LOGIN ${quote(user)} ${quote(pass)}\r\nT1 CREATE {abc}\r\nT2 NOOP\r\n`, /^T2 /m);
  assert.match(bad.text, /^T0 OK\b/m, bad.text);
  assert.match(bad.text, /^T1 BAD\b/m, bad.text);
  assert.match(bad.text, /^T2 OK\b/m, bad.text);
  const raw = await Wire.login(where);
  raw.write(`C1 APPEND ${quote(name)} {100}\r\n`);
  assert.equal((await raw.next()).kind, 'continuation');
  raw.write('Subject: cut off\r\n');
  raw.socket.destroy();
  const check = await Wire.login(where);
  const status = (await check.command(`STATUS ${quote(name)} (MESSAGES)`)).ok();
  assert.match(status.all('STATUS')[0]?.text ?? '', /\(MESSAGES 0\)/);
  await check.close();
});

test('HTTP and TLS hellos on the IMAP port are refused and the server keeps serving', async () => {
  const http = await exchange('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n', /^(\S+ BAD|\* BYE)/m);
  assert.match(http.text, /^(\S+ BAD|\* BAD|\* BYE)\b/m, http.text);
  const hello = Buffer.from('16030100a5010000a10303', 'hex');
  await exchange(Buffer.concat([hello, Buffer.alloc(200, 0x41)]), undefined, 300);
  await stillServing();
});

test('pipelined commands are each answered with their own tag', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, [Buffer.from('Subject: p\r\n\r\np\r\n')]);
  raw.write(`P1 EXAMINE ${quote(name)}\r\nP2 FETCH 1 FLAGS\r\nP3 NOOP\r\nP4 BOGUS\r\nP5 SEARCH ALL\r\n`);
  const tags: string[] = [];
  while (tags.length < 5) {
    const response = await raw.next();
    if (response.kind === 'tagged') tags.push(response.text.split(' ').slice(0, 2).join(' '));
  }
  // RFC 3501 5.5: a server may run independent commands concurrently, so only P1 must come first.
  assert.equal(tags[0], 'P1 OK');
  assert.deepEqual(tags.sort(), ['P1 OK', 'P2 OK', 'P3 OK', 'P4 BAD', 'P5 OK']);
});
