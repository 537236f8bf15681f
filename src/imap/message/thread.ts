// THREAD (RFC 5256 3): ORDEREDSUBJECT and REFERENCES, on the cached parse only.
// Results are trees of message numbers (sequence numbers or UIDs, as the caller chooses).
import { sentTime, type SortMessage } from './sort.js';
import { asciiCasemap, baseSubject } from './subject.js';

export interface ThreadNode {
  /** Message number, or null for a dummy (only at the top level after pruning). */
  id: number | null;
  children: ThreadNode[];
}

export type ThreadAlgorithm = 'ORDEREDSUBJECT' | 'REFERENCES';
export const THREAD_ALGORITHMS: ThreadAlgorithm[] = ['ORDEREDSUBJECT', 'REFERENCES'];

interface Item {
  msg: SortMessage;
  id: number;
  date: number;
  subject: string;
  replyOrForward: boolean;
}

function items(messages: SortMessage[], idOf: (m: SortMessage) => number): Item[] {
  return messages.map((msg) => {
    const subject = baseSubject(text(msg.parsed?.root.envelope?.[1]));
    return { msg, id: idOf(msg), date: sentTime(msg), subject: asciiCasemap(subject.base), replyOrForward: subject.replyOrForward };
  });
}

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Sent date, then sequence number (RFC 5256 2.2). */
const byDate = (a: Item, b: Item): number => a.date - b.date || a.msg.seq - b.msg.seq;

/** RFC 5256 3 ORDEREDSUBJECT: group by base subject, then one level of children per group. */
export function threadOrderedSubject(messages: SortMessage[], idOf: (m: SortMessage) => number): ThreadNode[] {
  const sorted = items(messages, idOf).sort((a, b) => (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : byDate(a, b)));
  const threads: { first: Item; node: ThreadNode }[] = [];
  let current: { first: Item; node: ThreadNode } | undefined;
  for (const item of sorted) {
    if (current && current.first.subject === item.subject) {
      current.node.children.push({ id: item.id, children: [] });
    } else {
      current = { first: item, node: { id: item.id, children: [] } };
      threads.push(current);
    }
  }
  threads.sort((a, b) => byDate(a.first, b.first));
  return threads.map((t) => t.node);
}

interface Container {
  item?: Item;
  parent?: Container;
  children: Container[];
}

/** Message IDs of a header value, `<...>` each (RFC 5256 3 REFERENCES, step 1). */
function messageIds(value: string | undefined | null): string[] {
  if (!value) return [];
  return [...value.matchAll(/<([^<>\s]+)>/g)].map((m) => m[1]!);
}

function isAncestor(candidate: Container, of: Container): boolean {
  for (let c: Container | undefined = of; c; c = c.parent) if (c === candidate) return true;
  return false;
}

function link(parent: Container, child: Container): void {
  if (child.parent) child.parent.children.splice(child.parent.children.indexOf(child), 1);
  child.parent = parent;
  parent.children.push(child);
}

/** RFC 5256 3 REFERENCES. */
export function threadReferences(messages: SortMessage[], idOf: (m: SortMessage) => number): ThreadNode[] {
  const all = items(messages, idOf).sort((a, b) => a.msg.seq - b.msg.seq);
  const table = new Map<string, Container>();
  const containerFor = (id: string): Container => {
    let c = table.get(id);
    if (!c) table.set(id, (c = { children: [] }));
    return c;
  };
  let unique = 0;
  // Step 1.
  for (const item of all) {
    const envelope = item.msg.parsed?.root.envelope;
    const ownId = messageIds(text(envelope?.[9]))[0];
    let own: Container;
    const existing = ownId === undefined ? undefined : table.get(ownId);
    if (ownId !== undefined && (!existing || !existing.item)) {
      own = existing ?? containerFor(ownId);
    } else {
      // No Message-ID, or a duplicate: a unique id of its own.
      own = containerFor(`\0${unique++}`);
    }
    own.item = item;
    let refs = messageIds(item.msg.parsed?.references);
    if (refs.length === 0) refs = messageIds(text(envelope?.[8])).slice(0, 1);
    // 1A: link the references in order, keeping existing links and refusing loops.
    let prev: Container | undefined;
    for (const ref of refs) {
      const c = containerFor(ref);
      if (prev && c !== prev && !c.parent && !isAncestor(c, prev)) link(prev, c);
      prev = c;
    }
    // 1B: the last reference becomes the parent. Any earlier parent is removed first, even when the new
    // link is then refused because it would make a loop.
    if (own.parent) {
      own.parent.children.splice(own.parent.children.indexOf(own), 1);
      own.parent = undefined;
    }
    if (prev && prev !== own && !isAncestor(own, prev)) link(prev, own);
  }
  // Step 2: the root set.
  const root: Container = { children: [] };
  for (const c of table.values()) if (!c.parent) root.children.push(c);
  for (const c of root.children) c.parent = root;
  // Step 3: prune dummies.
  prune(root, true);
  // Step 4: sort the top level by date (a dummy by its first child after sorting those).
  for (const c of root.children) if (!c.item) c.children.sort(compareContainers);
  root.children.sort(compareContainers);
  // Step 5: gather threads with the same base subject.
  const subjectOf = (c: Container): Item | undefined => c.item ?? c.children[0]?.item;
  const subjects = new Map<string, Container>();
  for (const c of root.children) {
    const subject = subjectOf(c)?.subject;
    if (!subject) continue;
    const held = subjects.get(subject);
    if (!held) subjects.set(subject, c);
    else if (held.item && (!c.item || (held.item.replyOrForward && !c.item.replyOrForward))) subjects.set(subject, c);
  }
  for (const c of [...root.children]) {
    const subject = subjectOf(c)?.subject;
    if (!subject) continue;
    const held = subjects.get(subject)!;
    if (held === c) continue;
    const remove = (x: Container): void => {
      root.children.splice(root.children.indexOf(x), 1);
      x.parent = undefined;
    };
    if (!held.item && !c.item) {
      for (const child of [...c.children]) link(held, child);
      remove(c);
    } else if (!held.item) {
      remove(c);
      link(held, c);
    } else if (c.item?.replyOrForward && !held.item.replyOrForward) {
      remove(c);
      link(held, c);
    } else {
      const dummy: Container = { children: [], parent: root };
      root.children.splice(root.children.indexOf(held), 1, dummy);
      remove(c);
      held.parent = undefined;
      link(dummy, held);
      link(dummy, c);
      subjects.set(subject, dummy);
    }
  }
  // Step 6: sort every level, deepest first.
  sortDeep(root);
  return root.children.map(toNode);
}

function prune(container: Container, isRoot: boolean): void {
  for (let i = 0; i < container.children.length; ) {
    const child = container.children[i]!;
    prune(child, false);
    if (!child.item && child.children.length === 0) {
      container.children.splice(i, 1);
    } else if (!child.item && (!isRoot || child.children.length === 1)) {
      // Promote the children of a dummy (to the root only when there is just one).
      container.children.splice(i, 1, ...child.children);
      for (const c of child.children) c.parent = container;
      i += child.children.length;
    } else {
      i++;
    }
  }
}

function firstItem(c: Container): Item | undefined {
  return c.item ?? c.children[0]?.item;
}

function compareContainers(a: Container, b: Container): number {
  const x = firstItem(a);
  const y = firstItem(b);
  if (!x || !y) return 0;
  return byDate(x, y);
}

function sortDeep(c: Container): void {
  for (const child of c.children) sortDeep(child);
  c.children.sort(compareContainers);
}

function toNode(c: Container): ThreadNode {
  return { id: c.item ? c.item.id : null, children: c.children.map(toNode) };
}

/** The THREAD response data: `(1 2 (3)(4 5))(6)` (RFC 5256 4). */
export function formatThreads(threads: ThreadNode[]): string {
  return threads.map((t) => `(${chain(t)})`).join('');
}

function chain(node: ThreadNode): string {
  const head = node.id === null ? '' : String(node.id);
  if (node.children.length === 0) return head;
  if (node.children.length === 1 && node.id !== null) return `${head} ${chain(node.children[0]!)}`;
  const kids = node.children.map((c) => `(${chain(c)})`).join('');
  return head ? `${head} ${kids}` : kids;
}
