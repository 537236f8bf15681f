// Mailbox commands (RFC 3501 6.3.3-6.3.10): CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
// LIST, LSUB, STATUS; hierarchy with "/", modified UTF-7 names (5.1.3); CHILDREN (RFC 3348),
// SPECIAL-USE (RFC 6154), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { capabilities, flow, imaplib, pyOk, quote, removeMailbox, requires, scratch, target, uniqueName, wire } from './kit.js';
import { str, type Reply, type Value, type Wire } from '../clients/imap.js';

interface Listed {
  flags: string[];
  separator: string | null;
  name: string;
}

function listed(reply: Reply, kind = 'LIST'): Listed[] {
  return reply.all(kind).map((response) => {
    const [, flags, separator, name] = response.values as [string, string[], string | null, Value];
    return { flags: flags.map((flag) => flag.toLowerCase()), separator, name: str(name) };
  });
}

function names(reply: Reply, kind = 'LIST'): string[] {
  return listed(reply, kind)
    .map((entry) => entry.name)
    .sort();
}

/** A unique top-level name removed (with its children) after the test. */
function fresh(t: TestContext, prefix = 'qm'): string {
  const name = uniqueName(prefix);
  t.after(() => removeMailbox(name));
  return name;
}

const msg = (subject: string): Buffer => Buffer.from(`From: a@example.com\r\nTo: b@example.com\r\nSubject: ${subject}\r\n\r\nbody ${subject}\r\n`);

async function status(raw: Wire, name: string, items = 'MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT'): Promise<Record<string, number>> {
  const reply = (await raw.command(`STATUS ${quote(name)} (${items})`)).ok();
  const [response] = reply.all('STATUS');
  assert.ok(response, String(reply));
  const [, mailbox, values] = response.values as [string, Value, string[]];
  assert.equal(str(mailbox), name);
  const out: Record<string, number> = {};
  for (let i = 0; i < values.length; i += 2) out[values[i]!.toUpperCase()] = Number(values[i + 1]);
  return out;
}

test('CREATE, LIST, then DELETE; CREATE of an existing name and DELETE of a missing one get NO', async (t) => {
  const raw = await wire(t);
  const name = fresh(t);
  (await raw.command(`CREATE ${quote(name)}`)).ok();
  assert.deepEqual(names((await raw.command(`LIST "" ${quote(name)}`)).ok()), [name]);
  const again = await raw.command(`CREATE ${quote(name)}`);
  assert.equal(again.status, 'NO', String(again));
  (await raw.command(`DELETE ${quote(name)}`)).ok();
  assert.deepEqual(names((await raw.command(`LIST "" ${quote(name)}`)).ok()), []);
  const missing = await raw.command(`DELETE ${quote(name)}`);
  assert.equal(missing.status, 'NO', String(missing));
  const inbox = await raw.command('DELETE INBOX');
  assert.equal(inbox.status, 'NO', String(inbox));
});

test('RENAME into its own child is refused; CREATE INBOX never makes a second INBOX', async (t) => {
  const raw = await wire(t);
  const top = fresh(t);
  (await raw.command(`CREATE ${quote(top)}`)).ok();
  const into = await raw.command(`RENAME ${quote(top)} ${quote(`${top}/inside`)}`);
  assert.match(into.status, /^(NO|BAD)$/, String(into));
  assert.deepEqual(names((await raw.command(`LIST "" ${quote(`${top}*`)}`)).ok()), [top]);
  // RFC 3501 6.3.3 calls it an error; Dovecot answers OK and changes nothing. Either way one INBOX stays.
  const inbox = await raw.command('CREATE INBOX');
  assert.match(inbox.status, /^(NO|OK)$/, String(inbox));
  assert.deepEqual(names((await raw.command('LIST "" INBOX')).ok()), ['INBOX']);
  (await raw.command('EXAMINE INBOX')).ok();
});

test('LIST "" "%" includes INBOX and the top-level mailboxes, not their children', async (t) => {
  const raw = await wire(t);
  const top = fresh(t);
  (await raw.command(`CREATE ${quote(`${top}/kid`)}`)).ok();
  const all = names((await raw.command('LIST "" "%"')).ok());
  assert.ok(all.includes('INBOX'), JSON.stringify(all));
  assert.ok(all.includes(top), JSON.stringify(all));
  assert.ok(!all.includes(`${top}/kid`));
});

test('hierarchy: CREATE a/b/c makes the parents; "%" stops at a level, "*" does not; a reference prefixes the pattern', async (t) => {
  const raw = await wire(t);
  const top = fresh(t);
  (await raw.command(`CREATE ${quote(`${top}/a/b`)}`)).ok();
  (await raw.command(`CREATE ${quote(`${top}/c/`)}`)).ok();
  assert.deepEqual(names((await raw.command(`LIST "" ${quote(`${top}/*`)}`)).ok()), [`${top}/a`, `${top}/a/b`, `${top}/c`]);
  assert.deepEqual(names((await raw.command(`LIST "" ${quote(`${top}/%`)}`)).ok()), [`${top}/a`, `${top}/c`]);
  assert.deepEqual(names((await raw.command(`LIST "" ${quote(`${top}%`)}`)).ok()), [top]);
  assert.deepEqual(names((await raw.command(`LIST ${quote(`${top}/`)} "%"`)).ok()), [`${top}/a`, `${top}/c`]);
  const entries = listed((await raw.command(`LIST "" ${quote(`${top}/*`)}`)).ok());
  assert.ok(entries.every((entry) => entry.separator === '/'), JSON.stringify(entries));
});

test('quoted strings: a mailbox name with a quote, a backslash and spaces round-trips', async (t) => {
  const raw = await wire(t);
  const top = fresh(t);
  const name = `${top}/say "hi" \\ there`;
  (await raw.command(`CREATE ${quote(name)}`)).ok();
  assert.deepEqual(names((await raw.command(`LIST "" ${quote(`${top}/*`)}`)).ok()), [name]);
  (await raw.command([`APPEND `, Buffer.from(name), ' ', msg('quoted')])).ok();
  assert.equal((await status(raw, name, 'MESSAGES')).MESSAGES, 1);
});

test('an implied parent is consistent: if SELECT refuses it, LIST marks it \\Noselect or \\NonExistent', async (t) => {
  const raw = await wire(t);
  const top = fresh(t);
  (await raw.command(`CREATE ${quote(`${top}/a/b`)}`)).ok();
  for (const parent of [top, `${top}/a`]) {
    const select = await raw.command(`SELECT ${quote(parent)}`);
    const [entry] = listed((await raw.command(`LIST "" ${quote(parent)}`)).ok());
    assert.ok(entry, `LIST shows ${parent}`);
    const unselectable = entry.flags.includes('\\noselect') || entry.flags.includes('\\nonexistent');
    assert.equal(select.status === 'OK', !unselectable, `SELECT ${parent}: ${select.tagged.text}; LIST: ${JSON.stringify(entry)}`);
  }
});

test('LIST "" "" answers the hierarchy separator with \\Noselect and an empty name', async (t) => {
  const raw = await wire(t);
  const [entry, ...rest] = listed((await raw.command('LIST "" ""')).ok());
  assert.equal(rest.length, 0);
  assert.ok(entry);
  assert.equal(entry.separator, '/');
  assert.equal(entry.name, '');
  assert.ok(entry.flags.includes('\\noselect'), JSON.stringify(entry));
});

test('CHILDREN: \\HasChildren and \\HasNoChildren follow CREATE and DELETE', async (t) => {
  if (!(await requires(t, 'CHILDREN'))) return;
  const raw = await wire(t);
  const top = fresh(t);
  (await raw.command(`CREATE ${quote(top)}`)).ok();
  let [entry] = listed((await raw.command(`LIST "" ${quote(top)}`)).ok());
  assert.ok(entry?.flags.includes('\\hasnochildren'), JSON.stringify(entry));
  (await raw.command(`CREATE ${quote(`${top}/kid`)}`)).ok();
  [entry] = listed((await raw.command(`LIST "" ${quote(top)}`)).ok());
  assert.ok(entry?.flags.includes('\\haschildren'), JSON.stringify(entry));
  (await raw.command(`DELETE ${quote(`${top}/kid`)}`)).ok();
  [entry] = listed((await raw.command(`LIST "" ${quote(top)}`)).ok());
  assert.ok(entry?.flags.includes('\\hasnochildren'), JSON.stringify(entry));
});

test('DELETE of a mailbox with children never removes the children', async (t) => {
  const raw = await wire(t);
  const top = fresh(t);
  (await raw.command(`CREATE ${quote(`${top}/kid`)}`)).ok();
  const reply = await raw.command(`DELETE ${quote(top)}`);
  // RFC 3501 6.3.4: either refused, or the name stays as \Noselect with its children.
  assert.match(reply.status, /^(OK|NO)$/, String(reply));
  assert.deepEqual(names((await raw.command(`LIST "" ${quote(`${top}/*`)}`)).ok()), [`${top}/kid`]);
  if (reply.status === 'OK') {
    const [entry] = listed((await raw.command(`LIST "" ${quote(top)}`)).ok());
    assert.ok(entry?.flags.includes('\\noselect'), JSON.stringify(entry));
  }
});

test('RENAME moves the mailbox with its messages and children; onto an existing or from a missing name gets NO', async (t) => {
  const raw = await wire(t);
  const from = fresh(t);
  const to = fresh(t);
  (await raw.command(`CREATE ${quote(from)}`)).ok();
  (await raw.command(`CREATE ${quote(`${from}/kid`)}`)).ok();
  (await raw.command([`APPEND ${quote(from)} `, msg('one')])).ok();
  (await raw.command([`APPEND ${quote(`${from}/kid`)} `, msg('two')])).ok();
  const before = await status(raw, from);
  (await raw.command(`RENAME ${quote(from)} ${quote(to)}`)).ok();
  assert.deepEqual(names((await raw.command(`LIST "" ${quote(`${from}*`)}`)).ok()), []);
  assert.deepEqual(names((await raw.command(`LIST "" ${quote(`${to}*`)}`)).ok()), [to, `${to}/kid`]);
  const after = await status(raw, to);
  assert.equal(after.MESSAGES, 1);
  assert.equal((await status(raw, `${to}/kid`)).MESSAGES, 1);
  assert.equal(after.UIDVALIDITY === before.UIDVALIDITY || after.UIDVALIDITY! > 0, true);
  const onto = await raw.command(`RENAME ${quote(`${to}/kid`)} ${quote(to)}`);
  assert.equal(onto.status, 'NO', String(onto));
  const missing = await raw.command(`RENAME ${quote(`${from}-missing`)} ${quote(`${from}-other`)}`);
  assert.equal(missing.status, 'NO', String(missing));
});

test('RENAME to a name whose parents do not exist makes them', async (t) => {
  const raw = await wire(t);
  const from = fresh(t);
  const to = fresh(t);
  (await raw.command(`CREATE ${quote(from)}`)).ok();
  (await raw.command(`RENAME ${quote(from)} ${quote(`${to}/x/y`)}`)).ok();
  const all = names((await raw.command(`LIST "" ${quote(`${to}*`)}`)).ok());
  assert.ok(all.includes(`${to}/x/y`), JSON.stringify(all));
  (await raw.command(`SELECT ${quote(`${to}/x/y`)}`)).ok();
});

test('a mailbox deleted and created again under the same name never reuses UIDs with the same UIDVALIDITY', async (t) => {
  const raw = await wire(t);
  const name = fresh(t);
  (await raw.command(`CREATE ${quote(name)}`)).ok();
  (await raw.command([`APPEND ${quote(name)} `, msg('old')])).ok();
  const before = await status(raw, name, 'UIDNEXT UIDVALIDITY');
  (await raw.command(`DELETE ${quote(name)}`)).ok();
  (await raw.command(`CREATE ${quote(name)}`)).ok();
  (await raw.command([`APPEND ${quote(name)} `, msg('new')])).ok();
  const after = await status(raw, name, 'UIDNEXT UIDVALIDITY');
  // RFC 3501 2.3.1.1.
  assert.ok(after.UIDVALIDITY !== before.UIDVALIDITY || after.UIDNEXT! > before.UIDNEXT!, `before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
});

test('LSUB "%" shows the unsubscribed parent of a subscribed child as \\Noselect', async (t) => {
  const raw = await wire(t);
  const top = fresh(t);
  (await raw.command(`CREATE ${quote(`${top}/kid`)}`)).ok();
  for (const each of [top, `${top}/kid`]) await raw.command(`UNSUBSCRIBE ${quote(each)}`);
  (await raw.command(`SUBSCRIBE ${quote(`${top}/kid`)}`)).ok();
  // RFC 3501 6.3.9.
  const entries = listed((await raw.command(`LSUB "" ${quote(`${top}%`)}`)).ok(), 'LSUB');
  assert.deepEqual(entries.map((e) => e.name), [top], JSON.stringify(entries));
  assert.ok(entries[0]!.flags.includes('\\noselect'), JSON.stringify(entries));
  (await raw.command(`UNSUBSCRIBE ${quote(`${top}/kid`)}`)).ok();
});

test('SUBSCRIBE and UNSUBSCRIBE show in LSUB', async (t) => {
  const raw = await wire(t);
  const name = fresh(t);
  (await raw.command(`CREATE ${quote(name)}`)).ok();
  (await raw.command(`SUBSCRIBE ${quote(name)}`)).ok();
  assert.deepEqual(names((await raw.command(`LSUB "" ${quote(`${name}*`)}`)).ok(), 'LSUB'), [name]);
  (await raw.command(`UNSUBSCRIBE ${quote(name)}`)).ok();
  assert.deepEqual(names((await raw.command(`LSUB "" ${quote(`${name}*`)}`)).ok(), 'LSUB'), []);
});

test('STATUS counts MESSAGES, UNSEEN, RECENT and agrees with SELECT on UIDVALIDITY and UIDNEXT', async (t) => {
  const raw = await wire(t);
  const name = await scratch(t, [msg('1'), { body: msg('2'), flags: ['\\Seen'] }, msg('3')]);
  const counts = await status(raw, name);
  assert.equal(counts.MESSAGES, 3);
  assert.equal(counts.UNSEEN, 2);
  assert.ok(counts.RECENT! >= 0 && counts.RECENT! <= 3);
  assert.ok(counts.UIDVALIDITY! > 0);
  const selected = (await raw.command(`SELECT ${quote(name)}`)).ok();
  const codes = selected.untagged.map((response) => response.code ?? '');
  assert.ok(codes.includes(`UIDVALIDITY ${counts.UIDVALIDITY}`), String(selected));
  assert.ok(codes.includes(`UIDNEXT ${counts.UIDNEXT}`), String(selected));
  const missing = await raw.command(`STATUS ${quote(`${name}-missing`)} (MESSAGES)`);
  assert.equal(missing.status, 'NO', String(missing));
});

test('STATUS stays right for a mailbox another session has selected, as messages arrive, change and go', async (t) => {
  const reader = await wire(t);
  const asker = await wire(t);
  const name = await scratch(t, [msg('1'), { body: msg('2'), flags: ['\\Seen'] }, msg('3'), msg('4')]);
  (await reader.command(`SELECT ${quote(name)}`)).ok();
  const first = await status(asker, name, 'MESSAGES UNSEEN UIDNEXT');
  assert.deepEqual([first.MESSAGES, first.UNSEEN], [4, 3]);
  (await asker.command([`APPEND ${quote(name)} (\\Seen) `, msg('5')])).ok();
  (await asker.command([`APPEND ${quote(name)} `, msg('6')])).ok();
  (await reader.command('STORE 1 +FLAGS.SILENT (\\Seen)')).ok();
  (await reader.command('STORE 3 +FLAGS.SILENT (\\Deleted)')).ok();
  (await reader.command('EXPUNGE')).ok();
  const after = await status(asker, name, 'MESSAGES UNSEEN UIDNEXT');
  // 1..4, 5 (seen), 6; 1 and 2 seen; 3 expunged: 5 messages, 4 and 6 unseen.
  assert.deepEqual([after.MESSAGES, after.UNSEEN, after.UIDNEXT], [5, 2, first.UIDNEXT! + 2]);
  const reselected = (await asker.command(`EXAMINE ${quote(name)}`)).ok();
  assert.ok(reselected.untagged.some((r) => /^\* 5 EXISTS$/i.test(r.text)), String(reselected));
  assert.ok(reselected.untagged.some((r) => r.code === `UIDNEXT ${after.UIDNEXT}`), String(reselected));
});

test('modified UTF-7 names: non-ASCII and "&" round-trip through CREATE, LIST and STATUS', async (t) => {
  const raw = await wire(t);
  const top = fresh(t);
  // "Entwürfe & 日本" in modified UTF-7 (RFC 3501 5.1.3).
  const encoded = `${top}/Entw&APw-rfe &- &ZeVnLA-`;
  (await raw.command(`CREATE ${quote(encoded)}`)).ok();
  assert.deepEqual(names((await raw.command(`LIST "" ${quote(`${top}/*`)}`)).ok()), [encoded]);
  (await raw.command([`APPEND ${quote(encoded)} `, msg('utf7')])).ok();
  assert.equal((await status(raw, encoded, 'MESSAGES')).MESSAGES, 1);
  const client = await flow(t);
  const paths = (await client.list()).map((entry) => entry.path);
  assert.ok(paths.includes(`${top}/Entwürfe & 日本`), JSON.stringify(paths.filter((p) => p.startsWith(top))));
});

test('SPECIAL-USE: the default mailboxes carry RFC 6154 attributes, in LIST and with RETURN (SPECIAL-USE)', async (t) => {
  if (!(await requires(t, 'SPECIAL-USE'))) return;
  const raw = await wire(t);
  const known = new Set(['\\all', '\\archive', '\\drafts', '\\flagged', '\\junk', '\\sent', '\\trash', '\\important']);
  const all = listed((await raw.command('LIST "" "*"')).ok());
  const special = all.filter((entry) => entry.flags.some((flag) => known.has(flag)));
  const uses = special.flatMap((entry) => entry.flags.filter((flag) => known.has(flag)));
  for (const use of ['\\sent', '\\drafts', '\\trash']) assert.ok(uses.includes(use), `${use} missing in ${JSON.stringify(all)}`);
  if ((await capabilities()).has('LIST-EXTENDED')) {
    const selected = listed((await raw.command('LIST (SPECIAL-USE) "" "*"')).ok());
    assert.deepEqual(selected.map((entry) => entry.name).sort(), special.map((entry) => entry.name).sort());
    const returned = listed((await raw.command('LIST "" "*" RETURN (SPECIAL-USE)')).ok());
    assert.deepEqual(returned.filter((entry) => entry.flags.some((flag) => known.has(flag))).map((e) => e.name).sort(), special.map((e) => e.name).sort());
  }
  const client = await flow(t);
  const uses2 = (await client.list()).map((entry) => entry.specialUse).filter(Boolean);
  assert.ok(uses2.includes('\\Sent') && uses2.includes('\\Trash'), JSON.stringify(uses2));
});

test('LIST-EXTENDED: (SUBSCRIBED) selection, several patterns, RETURN (CHILDREN)', async (t) => {
  if (!(await requires(t, 'LIST-EXTENDED'))) return;
  const raw = await wire(t);
  const top = fresh(t);
  (await raw.command(`CREATE ${quote(`${top}/a/x`)}`)).ok();
  (await raw.command(`CREATE ${quote(`${top}/b`)}`)).ok();
  // Some servers subscribe on CREATE; only b is meant to be subscribed here.
  for (const other of ['a', 'a/x']) await raw.command(`UNSUBSCRIBE ${quote(`${top}/${other}`)}`);
  (await raw.command(`SUBSCRIBE ${quote(`${top}/b`)}`)).ok();
  const subscribed = listed((await raw.command(`LIST (SUBSCRIBED) "" ${quote(`${top}/*`)}`)).ok());
  assert.deepEqual(subscribed.map((e) => e.name), [`${top}/b`]);
  assert.ok(subscribed[0]!.flags.includes('\\subscribed'), JSON.stringify(subscribed));
  const two = names((await raw.command(`LIST "" (${quote(`${top}/a`)} ${quote(`${top}/b`)})`)).ok());
  assert.deepEqual(two, [`${top}/a`, `${top}/b`]);
  const children = listed((await raw.command(`LIST "" ${quote(`${top}/%`)} RETURN (CHILDREN)`)).ok());
  const a = children.find((e) => e.name === `${top}/a`);
  const b = children.find((e) => e.name === `${top}/b`);
  assert.ok(a?.flags.includes('\\haschildren'), JSON.stringify(children));
  assert.ok(b?.flags.includes('\\hasnochildren'), JSON.stringify(children));
  (await raw.command(`UNSUBSCRIBE ${quote(`${top}/b`)}`)).ok();
});

test('LIST-STATUS: LIST ... RETURN (STATUS (MESSAGES UNSEEN)) adds a STATUS per mailbox', async (t) => {
  if (!(await requires(t, 'LIST-STATUS'))) return;
  const raw = await wire(t);
  const name = await scratch(t, [msg('a'), { body: msg('b'), flags: ['\\Seen'] }]);
  const reply = (await raw.command(`LIST "" ${quote(name)} RETURN (STATUS (MESSAGES UNSEEN))`)).ok();
  assert.deepEqual(names(reply), [name]);
  const [response] = reply.all('STATUS');
  assert.ok(response, String(reply));
  const [, mailbox, items] = response.values as [string, Value, string[]];
  assert.equal(str(mailbox), name);
  const map = Object.fromEntries(items.flatMap((v, i) => (i % 2 ? [] : [[v.toUpperCase(), Number(items[i + 1])]])));
  assert.deepEqual(map, { MESSAGES: 2, UNSEEN: 1 });
});

test('imapflow: create, rename, status, list and delete a mailbox', async (t) => {
  const client = await flow(t);
  const name = fresh(t);
  const created = await client.mailboxCreate([name, 'child']);
  assert.equal(created.path, `${name}/child`);
  await client.append(`${name}/child`, msg('flow'), ['\\Seen']);
  const renamed = await client.mailboxRename(`${name}/child`, `${name}/renamed`);
  assert.equal(renamed.newPath, `${name}/renamed`);
  const st = await client.status(`${name}/renamed`, { messages: true, unseen: true, uidNext: true });
  assert.ok(st);
  assert.equal(st.messages, 1);
  assert.equal(st.unseen, 0);
  const paths = (await client.list()).map((e) => e.path).filter((p) => p.startsWith(name));
  assert.deepEqual(paths.sort(), [name, `${name}/renamed`]);
  await client.mailboxDelete(`${name}/renamed`);
  assert.deepEqual((await client.list()).map((e) => e.path).filter((p) => p.startsWith(`${name}/`)), []);
});

test('imaplib: create, list, subscribe, lsub, rename, status, delete', async (t) => {
  const where = await target();
  const name = fresh(t);
  const results = await imaplib(where.accounts[0]!, [
    ['create', name],
    ['list', '""', quote(`${name}*`)],
    ['subscribe', name],
    ['lsub', '""', quote(`${name}*`)],
    ['rename', name, `${name}-r`],
    ['status', `${name}-r`, '(MESSAGES UIDNEXT)'],
    ['unsubscribe', name],
    ['delete', `${name}-r`],
    ['list', '""', quote(`${name}*`)],
  ]);
  assert.equal(pyOk(results[0])[0], 'OK');
  assert.match(String(pyOk(results[1])[1][0]), new RegExp(`"/" "?${name}"?$`));
  assert.match(String(pyOk(results[3])[1][0]), new RegExp(`"?${name}"?$`));
  assert.equal(pyOk(results[4])[0], 'OK');
  assert.match(String(pyOk(results[5])[1][0]), /MESSAGES 0/);
  assert.equal(pyOk(results[7])[0], 'OK');
  assert.deepEqual(pyOk(results[8])[1], [null]);
});
