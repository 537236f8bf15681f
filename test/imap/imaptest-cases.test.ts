// Cases from Dovecot's imaptest scripted groups (src/tests in github.com/dovecot/imaptest) that
// Quillmail failed: each test names its group. Run the real imaptest as described in
// docs and issue 18; these keep the fixed behaviour from coming back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crlf } from '../fixtures/messages.js';
import { quote, requires, scratch, wire } from './kit.js';

const numbers = (text: string | undefined, name: string): number[] =>
  (text ?? '')
    .replace(new RegExp(`^\\* ${name} ?`, 'i'), '')
    .split(' ')
    .filter(Boolean)
    .map(Number);

test('imaptest sort-addresses: SORT (CC) sorts a group by its name (RFC 5256 3, first addr-mailbox)', async (t) => {
  if (!(await requires(t, 'SORT'))) return;
  const name = await scratch(t, [
    { body: crlf('From: user2@domain2.org\nCc: user2@domain2.org (foo bar)\n\n1\n'), date: '22-Feb-2008 00:06:23 +0000' },
    { body: crlf('From: user2@domain1.org\nCc: user2: blah@domain1.org;\n\n2\n'), date: '22-Feb-2008 01:06:23 +0000' },
    { body: crlf('From: user1@domain1.org\nCc: user1@domain1.org\n\n3\n'), date: '22-Feb-2008 02:06:23 +0000' },
  ]);
  const raw = await wire(t);
  (await raw.command(`EXAMINE ${quote(name)}`)).ok();
  const sort = async (keys: string): Promise<number[]> => numbers((await raw.command(`SORT (${keys}) US-ASCII ALL`)).ok().all('SORT')[0]?.text, 'SORT');
  assert.deepEqual(await sort('CC'), [3, 1, 2]);
  assert.deepEqual(await sort('REVERSE CC'), [1, 2, 3]);
  assert.deepEqual(await sort('CC REVERSE ARRIVAL'), [3, 2, 1]);
});

test('imaptest thread: REFERENCES drops an earlier parent even when the new link would loop (RFC 5256 3, 1B)', async (t) => {
  if (!(await requires(t, 'THREAD=REFERENCES'))) return;
  const name = await scratch(t, [
    { body: crlf('Message-ID: <a@b>\n\nbody\n'), date: '22-Feb-2008 17:06:23 +0000' },
    { body: crlf('Message-Id: <b@b>\nReferences: <a@b> <c@b>\n\nbody\n'), date: '22-Feb-2008 15:06:23 +0000' },
    { body: crlf('Message-Id: <c@b>\nReferences: <b@b>\n\nbody\n'), date: '22-Feb-2008 16:06:25 +0000' },
  ]);
  const raw = await wire(t);
  (await raw.command(`SELECT ${quote(name)}`)).ok();
  const thread = async (): Promise<string> => ((await raw.command('THREAD REFERENCES US-ASCII ALL')).ok().all('THREAD')[0]?.text ?? '').replace(/^\* THREAD ?/i, '');
  assert.equal(await thread(), '(3 2)(1)');
  (await raw.command('STORE 1 +FLAGS \\Deleted')).ok();
  (await raw.command('EXPUNGE')).ok();
  assert.equal(await thread(), '(2 1)');
});
