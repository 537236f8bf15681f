// Conversations: messages grouped by Message-ID, In-Reply-To and References (RFC 5322 §3.6.4),
// and, for a reply that carries none of them, by its subject without the Re:/Fwd: prefixes
// (the fallback of RFC 5256 THREAD=REFERENCES §2.1, simplified).

export interface Threadable {
  uid: number;
  subject: string;
  messageId: string | null;
  inReplyTo: string | null;
  references: string[];
}

const PREFIX = /^\s*(?:(?:re|fwd?|aw|sv|vs|antw)\s*(?:\[\d+\])?\s*:|\[[^\]]{1,40}\]\s*)\s*/i;

/** The subject a thread shares: without reply and forward prefixes or list tags. */
export function baseSubject(subject: string): { base: string; reply: boolean } {
  let base = subject.trim();
  let reply = false;
  for (let match = PREFIX.exec(base); match && match[0].length > 0; match = PREFIX.exec(base)) {
    if (!match[0].trimStart().startsWith('[')) reply = true;
    base = base.slice(match[0].length);
  }
  return { base: base.replace(/\s+/g, ' ').toLowerCase(), reply };
}

/** Groups messages into threads; each thread lists its messages in the order given. */
export function groupThreads<T extends Threadable>(messages: T[]): T[][] {
  const parent = new Map<string, string>();
  const find = (key: string): string => {
    let root = key;
    while (parent.has(root) && parent.get(root) !== root) root = parent.get(root)!;
    parent.set(key, root);
    return root;
  };
  const union = (a: string, b: string) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent.set(ra, rb);
  };
  const keyOf = (message: T) => `uid:${message.uid}`;
  const bySubject = new Map<string, string>();
  // Oldest first, so a subject's thread is the one its first message started.
  const oldestFirst = [...messages].reverse();
  for (const message of oldestFirst) {
    const key = keyOf(message);
    find(key);
    const ids = [message.messageId, message.inReplyTo, ...message.references].filter((id): id is string => !!id);
    for (const id of ids) union(key, `id:${id.toLowerCase()}`);
    const { base, reply } = baseSubject(message.subject);
    if (!base) continue;
    const earlier = bySubject.get(base);
    if (earlier && reply && ids.length <= 1) union(key, earlier);
    if (!earlier) bySubject.set(base, key);
  }
  const threads = new Map<string, T[]>();
  for (const message of messages) {
    const root = find(keyOf(message));
    const thread = threads.get(root);
    if (thread) thread.push(message);
    else threads.set(root, [message]);
  }
  return [...threads.values()];
}
