// The mailbox list: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, STATUS (RFC 3501
// 6.3.3-6.3.10), LIST and LSUB with LIST-EXTENDED (RFC 5258), CHILDREN (RFC 3348),
// SPECIAL-USE (RFC 6154) and LIST-STATUS (RFC 5819). Names travel in modified UTF-7 and
// are matched in that form; the store keeps them in Unicode.
import { mailboxNameProblem } from '../../store/mailbox-name.js';
import type { Mailbox, Mailstore } from '../../store/types.js';
import { astring, atomText, list, mailboxName } from '../args.js';
import { bad, CODE, no } from '../errors.js';
import { MailboxPattern } from '../mailbox-pattern.js';
import { encodeMailboxName } from '../mutf7.js';
import type { CommandInfo, Session } from '../session.js';
import { atom, type ImapValue } from '../value.js';
import { mailboxValue } from '../writer.js';
import { arity } from './types.js';

const SEP = '/';

// RFC 3501 6.3.3: superior names are created as needed; a trailing separator is dropped.
export async function create(s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 1, 2);
  const name = mailboxName(args[0]).replace(/\/+$/, '');
  if (name === '') throw no('mailbox name is empty', CODE.cannot);
  if (name === 'INBOX') throw no('INBOX exists', CODE.alreadyExists);
  checkName(name);
  const { store } = s.ctx.deps;
  if (await store.getMailbox(s.userId, name)) throw no(`mailbox ${name} exists`, CODE.alreadyExists);
  await createParents(store, s.userId, name);
  // RFC 3501 6.3.3 does not subscribe the new mailbox (a subscription kept from a deleted one returns).
  await store.createMailbox(s.userId, name, null, false);
}

/** RFC 3501 5.1 and 6.3.3: no empty, "." or ".." levels, control characters or wildcards. */
function checkName(name: string): void {
  const problem = mailboxNameProblem(name);
  if (problem) throw no(problem, CODE.cannot);
}

async function createParents(store: Mailstore, userId: number, name: string): Promise<void> {
  const levels = name.split(SEP);
  for (let i = 1; i < levels.length; i++) {
    const parent = levels.slice(0, i).join(SEP);
    if (!(await store.getMailbox(userId, parent))) {
      try {
        await store.createMailbox(userId, parent, null, false);
      } catch {
        // created meanwhile by another session
      }
    }
  }
}

// RFC 3501 6.3.4: INBOX cannot go; inferior names stay (their parent then lists as \Noselect).
export async function del(s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 1);
  const name = mailboxName(args[0]);
  if (name === 'INBOX') throw no('INBOX cannot be deleted', CODE.cannot);
  const { store } = s.ctx.deps;
  const mailbox = await store.getMailbox(s.userId, name);
  if (!mailbox) throw no(`no mailbox ${name}`, CODE.nonexistent);
  if (s.selected?.id === mailbox.id) {
    s.selected = undefined;
    s.state = 'authenticated';
  }
  await store.deleteMailbox(mailbox.id);
}

// RFC 3501 6.3.5: renaming INBOX moves its messages to the new mailbox and leaves INBOX empty.
export async function rename(s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 2);
  const from = mailboxName(args[0]);
  const to = mailboxName(args[1]).replace(/\/+$/, '');
  if (to === 'INBOX') throw no('INBOX exists', CODE.alreadyExists);
  if (to === '') throw no('mailbox name is empty', CODE.cannot);
  checkName(to);
  const { store } = s.ctx.deps;
  if (!(await store.getMailbox(s.userId, from))) throw no(`no mailbox ${from}`, CODE.nonexistent);
  if (await store.getMailbox(s.userId, to)) throw no(`mailbox ${to} exists`, CODE.alreadyExists);
  if (to.startsWith(from + SEP)) throw no('cannot move a mailbox into itself', CODE.cannot);
  await createParents(store, s.userId, to);
  await store.renameMailbox(s.userId, from, to);
}

// RFC 3501 6.3.6-7
export async function subscribe(s: Session, args: ImapValue[], info: CommandInfo): Promise<void> {
  arity(args, 1);
  const name = mailboxName(args[0]);
  const { store } = s.ctx.deps;
  const mailbox = await store.getMailbox(s.userId, name);
  // RFC 3501 6.3.7: a subscription kept after its mailbox was deleted can be dropped.
  if (!mailbox && info.name === 'UNSUBSCRIBE' && (await store.dropLostSubscription(s.userId, name))) return;
  if (!mailbox) throw no(`no mailbox ${name}`, CODE.nonexistent);
  await store.setSubscribed(mailbox.id, info.name === 'SUBSCRIBE');
}

const STATUS_ITEMS = new Set(['MESSAGES', 'RECENT', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'HIGHESTMODSEQ', 'SIZE', 'APPENDLIMIT']);

function statusItems(v: ImapValue | undefined): string[] {
  const items = list(v, 'status items').map((item) => atomText(item) ?? '');
  if (items.length === 0) throw bad('no status items');
  for (const item of items) if (!STATUS_ITEMS.has(item)) throw bad(`unknown status item ${item}`);
  return items;
}

async function sendStatus(s: Session, mailbox: Mailbox, items: string[]): Promise<void> {
  // A mailbox this process holds an index of is counted there; others in the store.
  const counted = await s.ctx.hub.indexes.peek(mailbox.id)?.status(mailbox.recentUid);
  const status = counted ? { ...counted, uidvalidity: mailbox.uidvalidity } : await s.ctx.deps.store.mailboxStatus(mailbox.id);
  const values: Record<string, number> = {
    MESSAGES: status.messages,
    RECENT: status.recent,
    UIDNEXT: status.uidnext,
    UIDVALIDITY: status.uidvalidity,
    UNSEEN: status.unseen,
    HIGHESTMODSEQ: status.highestModseq,
    SIZE: status.size,
    APPENDLIMIT: s.ctx.deps.config.limits.messageSize,
  };
  s.send([atom('STATUS'), mailboxValue(encodeMailboxName(mailbox.name)), items.flatMap((item) => [atom(item), values[item]!])]);
}

// RFC 3501 6.3.10
export async function status(s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 2);
  const name = mailboxName(args[0]);
  const items = statusItems(args[1]);
  const mailbox = await s.ctx.hub.mailbox(s.userId, name);
  if (!mailbox) throw no(`no mailbox ${name}`, CODE.nonexistent);
  await sendStatus(s, mailbox, items);
}

interface ListRequest {
  extended: boolean;
  subscribedOnly: boolean;
  /** RFC 5258 3.5: also list unsubscribed names with subscribed children the patterns miss, with CHILDINFO. */
  recursiveMatch?: boolean;
  specialUseOnly: boolean;
  returnSubscribed: boolean;
  returnStatus?: string[];
  patterns: string[];
}

// RFC 3501 6.3.8, RFC 5258 (LIST-EXTENDED)
export async function listCommand(s: Session, args: ImapValue[]): Promise<void> {
  const request = parseList(args);
  await runList(s, request, 'LIST');
}

// RFC 3501 6.3.9
export async function lsub(s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 2);
  const reference = astring(args[0], 'reference');
  const pattern = astring(args[1], 'mailbox pattern');
  await runList(s, { extended: false, subscribedOnly: true, specialUseOnly: false, returnSubscribed: false, patterns: [joinPattern(reference, pattern)] }, 'LSUB');
}

function parseList(args: ImapValue[]): ListRequest {
  const request: ListRequest = { extended: false, subscribedOnly: false, specialUseOnly: false, returnSubscribed: false, patterns: [] };
  let i = 0;
  if (Array.isArray(args[0])) {
    request.extended = true;
    for (const option of args[0]) {
      const name = atomText(option);
      if (name === 'SUBSCRIBED') request.subscribedOnly = request.returnSubscribed = true;
      else if (name === 'SPECIAL-USE') request.specialUseOnly = true;
      else if (name === 'RECURSIVEMATCH') request.recursiveMatch = true;
      else if (name === 'REMOTE') continue;
      else throw bad(`unknown LIST selection option ${name ?? ''}`);
    }
    // RFC 5258 3: RECURSIVEMATCH only refines another selection option (REMOTE does not count).
    if (request.recursiveMatch && !request.subscribedOnly) throw bad('RECURSIVEMATCH needs SUBSCRIBED');
    i = 1;
  }
  const reference = astring(args[i], 'reference');
  const patternArg = args[i + 1];
  if (patternArg === undefined) throw bad('missing mailbox pattern');
  const patterns = Array.isArray(patternArg) ? patternArg.map((p) => astring(p, 'mailbox pattern')) : [astring(patternArg, 'mailbox pattern')];
  if (Array.isArray(patternArg)) request.extended = true;
  if (patterns.length === 0) throw bad('missing mailbox pattern');
  request.patterns = patterns.map((p) => joinPattern(reference, p));
  i += 2;
  if (i < args.length) {
    if (atomText(args[i]) !== 'RETURN') throw bad('expected RETURN');
    request.extended = true;
    const options = list(args[i + 1], 'RETURN options');
    for (let j = 0; j < options.length; j++) {
      const name = atomText(options[j]);
      if (name === 'SUBSCRIBED') request.returnSubscribed = true;
      else if (name === 'CHILDREN' || name === 'SPECIAL-USE') continue;
      else if (name === 'STATUS') request.returnStatus = statusItems(options[++j]);
      else throw bad(`unknown LIST return option ${name ?? ''}`);
    }
    if (i + 2 !== args.length) throw bad('too many arguments');
  }
  if (request.subscribedOnly && request.specialUseOnly) throw bad('SUBSCRIBED and SPECIAL-USE cannot be combined');
  return request;
}

/** RFC 3501 6.3.8: the reference is a prefix of the pattern unless the pattern is absolute. */
function joinPattern(reference: string, pattern: string): string {
  return pattern.startsWith(SEP) ? pattern : reference + pattern;
}

async function runList(s: Session, request: ListRequest, command: 'LIST' | 'LSUB'): Promise<void> {
  const maxWildcards = s.ctx.deps.config.imap.listWildcards;
  for (const pattern of request.patterns) {
    if (MailboxPattern.wildcards(pattern) > maxWildcards) throw bad(`too many wildcards in the mailbox pattern (at most ${maxWildcards})`);
  }
  if (request.patterns.length === 1 && request.patterns[0] === '' && !request.extended) {
    // RFC 3501 6.3.8: an empty pattern asks for the hierarchy delimiter.
    s.send([atom(command), [atom('\\Noselect')], SEP, '']);
    return;
  }
  const { store } = s.ctx.deps;
  // Subscriptions are read from the store; the rest of the list is the hub's copy.
  const subscriptions = command === 'LSUB' || request.subscribedOnly || request.returnSubscribed || request.recursiveMatch === true;
  const mailboxes = subscriptions ? await store.listMailboxes(s.userId) : await s.ctx.hub.mailboxes(s.userId);
  const byWire = new Map<string, Mailbox>();
  for (const mailbox of mailboxes) byWire.set(encodeMailboxName(mailbox.name), mailbox);
  // Subscriptions whose mailbox is gone (RFC 3501 6.3.6): listed by LSUB and LIST (SUBSCRIBED) only.
  const lost = new Set<string>();
  if (command === 'LSUB' || request.subscribedOnly) {
    for (const name of await store.listLostSubscriptions(s.userId)) {
      const wire = encodeMailboxName(name);
      if (!byWire.has(wire)) lost.add(wire);
    }
  }
  const isSubscribed = (wire: string): boolean => lost.has(wire) || byWire.get(wire)?.subscribed === true;
  // Levels with no mailbox of their own that have mailboxes below them.
  const parents = new Set<string>();
  const hasChildren = new Set<string>();
  for (const wire of byWire.keys()) {
    const levels = wire.split(SEP);
    for (let i = 1; i < levels.length; i++) {
      const parent = levels.slice(0, i).join(SEP);
      hasChildren.add(parent);
      if (!byWire.has(parent)) parents.add(parent);
    }
  }
  const matchers = request.patterns.map((pattern) => new MailboxPattern(pattern, SEP));
  const matches = (wire: string): boolean => matchers.some((m) => m.matches(wire));
  // Levels above a subscribed name the patterns do not reach: LSUB with "%" lists them flagged
  // \Noselect (RFC 3501 6.3.9); LIST (SUBSCRIBED RECURSIVEMATCH) with CHILDINFO (RFC 5258 3.5).
  const subscribedBelow = new Set<string>();
  if (command === 'LSUB' || request.recursiveMatch) {
    for (const wire of [...byWire.keys(), ...lost]) {
      if (!isSubscribed(wire) || matches(wire)) continue;
      const levels = wire.split(SEP);
      for (let i = 1; i < levels.length; i++) subscribedBelow.add(levels.slice(0, i).join(SEP));
    }
  }
  const names = [...new Set([...byWire.keys(), ...parents, ...lost, ...subscribedBelow])].sort(compareNames);
  for (const wire of names) {
    if (!matches(wire)) continue;
    const mailbox = byWire.get(wire);
    const subscribed = isSubscribed(wire);
    const childInfo = request.recursiveMatch === true && !subscribed && subscribedBelow.has(wire);
    const placeholder = command === 'LSUB' && !subscribed;
    if (placeholder && !subscribedBelow.has(wire)) continue;
    if (command === 'LIST' && request.subscribedOnly && !subscribed && !childInfo) continue;
    if (request.specialUseOnly && !mailbox?.specialUse) continue;
    const attrs: string[] = [];
    if (!mailbox || placeholder) attrs.push(request.extended ? '\\NonExistent' : '\\Noselect');
    attrs.push(hasChildren.has(wire) ? '\\HasChildren' : '\\HasNoChildren');
    if (mailbox?.specialUse) attrs.push(mailbox.specialUse);
    if (subscribed && (request.returnSubscribed || request.subscribedOnly) && command === 'LIST') attrs.push('\\Subscribed');
    const response: ImapValue[] = [atom(command), attrs.map(atom), SEP, mailboxValue(wire)];
    if (childInfo) response.push(['CHILDINFO', ['SUBSCRIBED']]);
    s.send(response);
    if (mailbox && request.returnStatus) await sendStatus(s, mailbox, request.returnStatus);
  }
}

/** INBOX first, then by name. */
function compareNames(a: string, b: string): number {
  const ia = a === 'INBOX' || a.startsWith('INBOX/');
  const ib = b === 'INBOX' || b.startsWith('INBOX/');
  if (ia !== ib) return ia ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

