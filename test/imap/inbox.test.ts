// INBOX rules (RFC 3501 5.1, 6.3.5): case-insensitive name, children below it, RENAME INBOX
// moves the messages and leaves an empty INBOX. The only file that changes an INBOX, and
// only the second account's; it puts the messages back afterwards.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { quote, removeMailbox, scratch, target, uniqueName, Wire } from './kit.js';
import { fetches, str, type Value } from '../clients/imap.js';

const msg = (subject: string): Buffer => Buffer.from(`From: a@example.com\r\nSubject: ${subject}\r\n\r\nbody ${subject}\r\n`);

async function second(): Promise<Wire> {
  const where = await target();
  return Wire.login(where, where.accounts[1]);
}

test('INBOX is case-insensitive and LIST names it INBOX', async (t) => {
  const raw = await second();
  t.after(() => raw.close());
  (await raw.command('EXAMINE inbox')).ok();
  (await raw.command('EXAMINE InBoX')).ok();
  const listed = (await raw.command('LIST "" inbox')).ok().all('LIST');
  assert.equal(listed.length, 1);
  assert.equal(str(listed[0]!.values[3] as Value), 'INBOX');
});

test('mailboxes can be created below INBOX', async (t) => {
  const where = await target();
  const raw = await second();
  const child = `INBOX/${uniqueName('qi')}`;
  t.after(async () => {
    await raw.close();
    await removeMailbox(child, where.accounts[1]);
  });
  (await raw.command(`CREATE ${quote(child)}`)).ok();
  const names = (await raw.command('LIST "" "INBOX/*"')).ok().all('LIST').map((r) => str(r.values[3] as Value));
  assert.ok(names.includes(child), JSON.stringify(names));
  (await raw.command([`APPEND ${quote(child)} `, msg('child')])).ok();
  (await raw.command(`SELECT ${quote(child)}`)).ok();
});

test('RENAME INBOX moves its messages to the new name, leaves INBOX empty and keeps its children', async (t) => {
  const where = await target();
  const raw = await second();
  const moved = uniqueName('qinbox');
  const child = `INBOX/${uniqueName('qkid')}`;
  t.after(async () => {
    await removeMailbox(child, where.accounts[1]);
    await removeMailbox(`${moved}/${child.slice('INBOX/'.length)}`, where.accounts[1]);
    // Put back whatever INBOX held before, then drop the renamed mailbox.
    const restore = await second();
    const select = await restore.command(`SELECT ${quote(moved)}`);
    if (select.status === 'OK') {
      const marker = (await restore.command('SEARCH HEADER Subject inbox-rename-marker')).ok();
      const ours = marker.all('SEARCH')[0]?.text.split(' ').slice(2) ?? [];
      if (ours.length) (await restore.command(`STORE ${ours.join(',')} +FLAGS.SILENT (\\Deleted)`)).ok();
      (await restore.command('EXPUNGE')).ok();
      const left = await restore.command('SEARCH ALL');
      if ((left.all('SEARCH')[0]?.text.split(' ').length ?? 2) > 2) (await restore.command('COPY 1:* INBOX')).ok();
      (await restore.command('CLOSE')).ok();
    }
    await restore.close();
    await raw.close();
    await removeMailbox(moved, where.accounts[1]);
  });
  (await raw.command(['APPEND INBOX ', msg('inbox-rename-marker')])).ok();
  (await raw.command(`CREATE ${quote(child)}`)).ok();
  const before = (await raw.command('STATUS INBOX (MESSAGES)')).ok();
  const count = Number(/MESSAGES (\d+)/.exec(before.all('STATUS')[0]?.text ?? '')?.[1]);
  assert.ok(count >= 1);
  (await raw.command(`RENAME INBOX ${quote(moved)}`)).ok();
  // RFC 3501 6.3.5 says inferior names of INBOX are unaffected; Dovecot moves them along.
  // Either way the child must exist exactly once.
  const kids = (await raw.command(`LIST "" ${quote(child)}`)).ok().all('LIST').length;
  const movedKids = (await raw.command(`LIST "" ${quote(`${moved}/*`)}`)).ok().all('LIST').length;
  assert.equal(kids + movedKids, 1, `the child of INBOX: ${kids} in place, ${movedKids} moved`);
  const inbox = (await raw.command('STATUS INBOX (MESSAGES)')).ok();
  assert.match(inbox.all('STATUS')[0]?.text ?? '', /\(MESSAGES 0\)/, 'INBOX is empty after RENAME');
  const renamed = (await raw.command(`STATUS ${quote(moved)} (MESSAGES)`)).ok();
  assert.match(renamed.all('STATUS')[0]?.text ?? '', new RegExp(`\\(MESSAGES ${count}\\)`));
  (await raw.command(`EXAMINE ${quote(moved)}`)).ok();
  const subjects = [...fetches((await raw.command('FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]')).ok()).values()].map((item) => str(item['BODY[HEADER.FIELDS (SUBJECT)]']));
  assert.ok(subjects.some((s) => s.includes('inbox-rename-marker')));
  (await raw.command('SELECT INBOX')).ok();
});

test('one user never sees another user\'s mailboxes', async (t) => {
  const name = await scratch(t);
  const raw = await second();
  t.after(() => raw.close());
  const listed = (await raw.command(`LIST "" ${quote(name)}`)).ok();
  assert.equal(listed.all('LIST').length, 0, String(listed));
  const select = await raw.command(`SELECT ${quote(name)}`);
  assert.equal(select.status, 'NO', String(select));
});
