// Connection states and the commands of any state and the not-authenticated state (RFC 3501
// 6.1, 6.2), with ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342) and SASL-IR (RFC 4959).
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { test } from 'node:test';
import { capabilities, flow, imaplib, preLoginCapabilities, pyOk, quote, requires, target, Wire, wire } from './kit.js';

const plainToken = (user: string, pass: string): string => Buffer.from(`\0${user}\0${pass}`).toString('base64');

test('greeting is an untagged OK and CAPABILITY lists IMAP4rev1 before and after login', async (t) => {
  const where = await target();
  const raw = await Wire.open(where);
  t.after(() => raw.close());
  assert.match(raw.greeting.text, /^\* OK\b/);
  const before = (await raw.command('CAPABILITY')).ok();
  assert.equal(before.all('CAPABILITY').length, 1, String(before));
  assert.ok((await preLoginCapabilities()).has('IMAP4REV1'));
  assert.ok((await capabilities()).has('IMAP4REV1'));
});

test('NOOP succeeds in every state', async () => {
  const where = await target();
  const raw = await Wire.open(where);
  try {
    (await raw.command('NOOP')).ok();
    (await raw.command(`LOGIN ${quote(where.accounts[0]!.user)} ${quote(where.accounts[0]!.pass)}`)).ok();
    (await raw.command('NOOP')).ok();
    (await raw.command('EXAMINE INBOX')).ok();
    (await raw.command('NOOP')).ok();
  } finally {
    await raw.close();
  }
});

test('LOGOUT sends BYE, then the tagged OK, then closes the connection', async () => {
  const raw = await Wire.login(await target());
  const reply = (await raw.command('LOGOUT')).ok();
  assert.equal(reply.all('BYE').length, 1, String(reply));
  await raw.next(5000).then(
    (extra) => assert.fail(`unexpected response after LOGOUT: ${extra.text}`),
    (error: Error) => assert.match(error.message, /closed/),
  );
});

test('LOGIN: wrong password gets NO and the session goes on; a literal password works', async () => {
  const where = await target();
  const { user, pass } = where.accounts[0]!;
  const raw = await Wire.open(where);
  try {
    const bad = await raw.command(`LOGIN ${quote(user)} ${quote(`${pass}-wrong`)}`);
    assert.equal(bad.status, 'NO', String(bad));
    const unknown = await raw.command(`LOGIN ${quote(`nobody-${Date.now()}`)} x`);
    assert.equal(unknown.status, 'NO', String(unknown));
    (await raw.command([`LOGIN ${quote(user)} `, Buffer.from(pass)])).ok();
    (await raw.command('SELECT INBOX')).ok();
  } finally {
    await raw.close();
  }
});

test('AUTHENTICATE PLAIN with a continuation; "*" cancels with BAD; bad credentials get NO', async (t) => {
  if (!(await preLoginCapabilities()).has('AUTH=PLAIN')) return t.skip('server does not advertise AUTH=PLAIN');
  const where = await target();
  const { user, pass } = where.accounts[0]!;
  const raw = await Wire.open(where);
  t.after(() => raw.close());

  raw.write('A1 AUTHENTICATE PLAIN\r\n');
  assert.equal((await raw.next()).kind, 'continuation');
  raw.write('*\r\n');
  const cancelled = await raw.finish('A1', 'AUTHENTICATE PLAIN (cancelled)');
  assert.equal(cancelled.status, 'BAD', String(cancelled));

  raw.write('A2 AUTHENTICATE PLAIN\r\n');
  assert.equal((await raw.next()).kind, 'continuation');
  raw.write(`${plainToken(user, `${pass}-wrong`)}\r\n`);
  const refused = await raw.finish('A2', 'AUTHENTICATE PLAIN (wrong password)');
  assert.equal(refused.status, 'NO', String(refused));

  raw.write('A3 AUTHENTICATE PLAIN\r\n');
  assert.equal((await raw.next()).kind, 'continuation');
  raw.write(`${plainToken(user, pass)}\r\n`);
  (await raw.finish('A3', 'AUTHENTICATE PLAIN')).ok();
  (await raw.command('EXAMINE INBOX')).ok();
});

test('AUTHENTICATE PLAIN: an authorization identity of another user is refused, one\'s own is accepted', async (t) => {
  if (!(await preLoginCapabilities()).has('AUTH=PLAIN')) return t.skip('server does not advertise AUTH=PLAIN');
  const where = await target();
  const [me, other] = where.accounts as [{ user: string; pass: string }, { user: string; pass: string }];
  const token = (authz: string): string => Buffer.from(`${authz}\0${me.user}\0${me.pass}`).toString('base64');
  for (const [authz, expected] of [[other.user, 'NO'], [me.user, 'OK']] as const) {
    const raw = await Wire.open(where);
    raw.write('Z1 AUTHENTICATE PLAIN\r\n');
    assert.equal((await raw.next()).kind, 'continuation');
    raw.write(`${token(authz)}\r\n`);
    const reply = await raw.finish('Z1', `AUTHENTICATE PLAIN as ${authz}`);
    assert.equal(reply.status, expected, `authzid ${authz}: ${reply}`);
    await raw.close();
  }
});

test('SASL-IR: AUTHENTICATE PLAIN with an initial response', async (t) => {
  if (!(await requires(t, 'SASL-IR'))) return;
  const where = await target();
  const { user, pass } = where.accounts[0]!;
  const raw = await Wire.open(where);
  t.after(() => raw.close());
  const bad = await raw.command(`AUTHENTICATE PLAIN ${plainToken(user, 'not-the-password')}`);
  assert.equal(bad.status, 'NO', String(bad));
  (await raw.command(`AUTHENTICATE PLAIN ${plainToken(user, pass)}`)).ok();
  (await raw.command('EXAMINE INBOX')).ok();
});

test('STARTTLS: TLS handshake, then CAPABILITY without STARTTLS and LOGIN over TLS', async (t) => {
  if (!(await preLoginCapabilities()).has('STARTTLS')) return t.skip('server does not advertise STARTTLS');
  const where = await target();
  const raw = await Wire.open(where);
  (await raw.command('STARTTLS')).ok();
  raw.socket.removeAllListeners('data');
  const secure = tlsConnect({ socket: raw.socket, rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  const lines: string[] = [];
  secure.on('data', (chunk: Buffer) => lines.push(chunk.toString()));
  const { user, pass } = where.accounts[0]!;
  secure.write(`B1 CAPABILITY\r\nB2 LOGIN ${quote(user)} ${quote(pass)}\r\nB3 LOGOUT\r\n`);
  await new Promise((resolve) => secure.once('close', resolve));
  const text = lines.join('');
  assert.match(text, /^\* CAPABILITY .*IMAP4rev1/im);
  assert.doesNotMatch(/^\* CAPABILITY.*$/im.exec(text)?.[0] ?? '', /STARTTLS/i);
  assert.match(text, /^B1 OK/m);
  assert.match(text, /^B2 OK/m);
  assert.match(text, /^B3 OK/m);
});

test('commands outside their state are refused with the tag, and unknown commands get BAD', async (t) => {
  const where = await target();
  const raw = await Wire.open(where);
  t.after(() => raw.close());
  // Only two: servers may hang up after a few bad commands before login (Dovecot after three).
  for (const command of ['SELECT INBOX', 'FETCH 1 FLAGS']) {
    const reply = await raw.command(command);
    assert.match(reply.status, /^(BAD|NO)$/, `${command} before login: ${reply}`);
  }
  (await raw.command(`LOGIN ${quote(where.accounts[0]!.user)} ${quote(where.accounts[0]!.pass)}`)).ok();
  // Four per connection: servers may also limit bad commands per session.
  const inAuthenticated = ['FETCH 1 FLAGS', 'STORE 1 +FLAGS (\\Seen)', 'EXPUNGE', 'SEARCH ALL', 'CLOSE', 'LOGIN a b', 'AUTHENTICATE PLAIN', 'STARTTLS'];
  for (let i = 0; i < inAuthenticated.length; i += 4) {
    const session = await wire(t);
    for (const command of inAuthenticated.slice(i, i + 4)) {
      const reply = await session.command(command);
      assert.match(reply.status, /^(BAD|NO)$/, `${command} in authenticated state: ${reply}`);
    }
    (await session.command('NOOP')).ok();
  }
  const unknown = await raw.command('XYZZY-NOT-A-COMMAND');
  assert.equal(unknown.status, 'BAD', String(unknown));
  (await raw.command('NOOP')).ok();
});

test('ID: the server answers with its own ID list or NIL', async (t) => {
  if (!(await requires(t, 'ID'))) return;
  const raw = await wire(t);
  const reply = (await raw.command('ID ("name" "quill-conformance" "version" "1")')).ok();
  const [id] = reply.all('ID');
  assert.ok(id, String(reply));
  const [, params] = id.values;
  assert.ok(params === null || (Array.isArray(params) && params.length % 2 === 0), id.text);
  (await raw.command('ID NIL')).ok();
});

test('ENABLE: known extensions are listed in ENABLED, unknown ones are ignored', async (t) => {
  if (!(await requires(t, 'ENABLE', 'CONDSTORE'))) return;
  const raw = await wire(t);
  const reply = (await raw.command('ENABLE CONDSTORE X-NO-SUCH-EXTENSION')).ok();
  const enabled = reply.all('ENABLED').flatMap((response) => response.values.slice(1).map((v) => String(v).toUpperCase()));
  assert.deepEqual(enabled, ['CONDSTORE'], String(reply));
  if ((await capabilities()).has('QRESYNC')) {
    const qresync = (await raw.command('ENABLE QRESYNC')).ok();
    const words = qresync.all('ENABLED').flatMap((response) => response.values.slice(1).map((v) => String(v).toUpperCase()));
    assert.ok(words.includes('QRESYNC'), String(qresync));
  }
  const again = (await raw.command('ENABLE X-NO-SUCH-EXTENSION')).ok();
  assert.deepEqual(again.all('ENABLED').flatMap((r) => r.values.slice(1)), [], String(again));
});

test('NAMESPACE: a personal namespace with "/" as the hierarchy separator', async (t) => {
  if (!(await requires(t, 'NAMESPACE'))) return;
  const raw = await wire(t);
  const reply = (await raw.command('NAMESPACE')).ok();
  const [ns] = reply.all('NAMESPACE');
  assert.ok(ns, String(reply));
  const [, personal, other, shared] = ns.values as [string, [string, string][], unknown, unknown];
  assert.ok(Array.isArray(personal) && personal.length >= 1, ns.text);
  assert.equal(personal[0]![1], '/', ns.text);
  assert.ok(other === null || Array.isArray(other));
  assert.ok(shared === null || Array.isArray(shared));
});

test('imapflow connects, sees IMAP4rev1 and logs out', async (t) => {
  const client = await flow(t);
  assert.ok(client.capabilities.has('IMAP4rev1'));
  const box = await client.mailboxOpen('INBOX', { readOnly: true });
  assert.equal(box.path, 'INBOX');
  assert.ok(box.uidValidity > 0n);
});

test('imaplib: login, capability, noop, examine, logout', async () => {
  const where = await target();
  const results = await imaplib(where.accounts[0]!, [['capabilities'], ['noop'], ['select', 'INBOX', true], ['logout']]);
  const [, caps] = pyOk(results[0]);
  assert.ok(caps.includes('IMAP4REV1'), JSON.stringify(caps));
  assert.equal(pyOk(results[1])[0], 'OK');
  assert.equal(pyOk(results[2])[0], 'OK');
  assert.equal(pyOk(results[3])[0], 'BYE');
});

test('imaplib: AUTHENTICATE PLAIN', async (t) => {
  if (!(await preLoginCapabilities()).has('AUTH=PLAIN')) return t.skip('server does not advertise AUTH=PLAIN');
  const where = await target();
  const { user, pass } = where.accounts[0]!;
  const results = await imaplib(where.accounts[0]!, [['authenticate_plain', user, pass], ['select', 'INBOX', true], ['logout']], { login: false });
  assert.equal(pyOk(results[0])[0], 'OK');
  assert.equal(pyOk(results[1])[0], 'OK');
});
