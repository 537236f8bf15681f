// Webmail API: mailboxes with counts (create, rename, delete), message lists with paging,
// sort and search, message view, attachment download, flags, move, and delete (to Trash;
// from Trash for good).
import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../service.js';
import { mailboxNameProblem } from '../store/mailbox-name.js';
import type { Blobs, Directory, Mailbox, Mailstore, MessageMeta, WebState } from '../store/types.js';
import { contactRoutes } from './contacts.js';
import { Errors } from './errors.js';
import { contentDisposition, parseMessage, summarize, viewMessage, type AddressOut } from './message-view.js';
import { accountOf } from './sessions.js';
import { groupThreads } from './threads.js';

const SORTS = ['date', '-date', 'size', '-size', 'uid', '-uid'] as const;
type Sort = (typeof SORTS)[number];

const SORT_KEYS: Record<'date' | 'size' | 'uid', (meta: MessageMeta) => number> = {
  date: (meta) => meta.internalDate.getTime(),
  size: (meta) => meta.size,
  uid: (meta) => meta.uid,
};

function sortMessages(metas: MessageMeta[], sort: Sort): MessageMeta[] {
  const descending = sort.startsWith('-');
  const key = SORT_KEYS[sort.replace('-', '') as keyof typeof SORT_KEYS];
  // UID breaks ties, so pages never overlap.
  return metas.sort((a, b) => (key(a) - key(b) || a.uid - b.uid) * (descending ? -1 : 1));
}

/** Messages a search looks at, in the list's sort order; the answer says when it stopped short. */
const SEARCH_SCAN = 5000;

function matchesSearch(summary: { subject: string; from: AddressOut[]; to: AddressOut[] }, needle: string): boolean {
  const fields = [summary.subject, ...[...summary.from, ...summary.to].flatMap((a) => [a.name, a.address])];
  return fields.some((field) => field.toLowerCase().includes(needle));
}

// RFC 3501 flag names: system flags (\Seen) and keywords (atoms).
const flagList = { type: 'array', maxItems: 20, items: { type: 'string', pattern: '^\\\\?[A-Za-z0-9$_.-]{1,64}$' } } as const;

// A new mailbox name: '/'-separated levels, none empty; no control characters or IMAP wildcards.
/** The rule IMAP CREATE and import use too (src/store/mailbox-name.ts): no "." or ".." levels among others. */
function checkMailboxName(name: string): void {
  const problem = mailboxNameProblem(name);
  if (problem) throw Errors.badRequest(problem);
}

const mailboxName = { type: 'string', minLength: 1, maxLength: 200, pattern: '^(?!/)(?!.*//)(?!.*/$)[^\\u0000-\\u001f\\u007f%*]+$' } as const;
const nameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1, maxLength: 1000 } } } as const;

const messageParams = {
  type: 'object',
  required: ['mailbox', 'uid'],
  properties: { mailbox: { type: 'string', minLength: 1, maxLength: 1000 }, uid: { type: 'integer', minimum: 1 } },
} as const;

interface MessageParams {
  mailbox: string;
  uid: number;
}

async function mailboxOf(store: Mailstore, userId: number, name: string): Promise<Mailbox> {
  const mailbox = await store.getMailbox(userId, name);
  if (!mailbox) throw Errors.notFound(`no mailbox ${name}`);
  return mailbox;
}

export async function messageOf(store: Mailstore & Blobs, userId: number, params: MessageParams): Promise<{ mailbox: Mailbox; meta: MessageMeta; raw: Buffer }> {
  const mailbox = await mailboxOf(store, userId, params.mailbox);
  const meta = await store.getMessage(mailbox.id, params.uid);
  const raw = meta && (await store.getBlob(meta.blobHash));
  if (!meta || !raw) throw Errors.notFound('no such message');
  return { mailbox, meta, raw };
}

/** A special mailbox of the user (RFC 6154): by its special use, else by name, created when missing. */
export async function specialMailbox(store: Mailstore, userId: number, use: '\\Trash' | '\\Drafts', name: string): Promise<Mailbox> {
  const mailboxes = await store.listMailboxes(userId);
  return mailboxes.find((m) => m.specialUse === use) ?? mailboxes.find((m) => m.name === name) ?? (await store.createMailbox(userId, name, use));
}

type Summary = Awaited<ReturnType<typeof summarize>>;

/** INBOX first, then the special mailboxes in the order people look for them, then the rest. */
const SPECIAL_ORDER = ['\\Drafts', '\\Sent', '\\Archive', '\\Junk', '\\Trash'];
function mailboxRank(mailbox: Mailbox): number {
  if (mailbox.name === 'INBOX') return 0;
  const special = mailbox.specialUse ? SPECIAL_ORDER.indexOf(mailbox.specialUse) : -1;
  return special >= 0 ? 1 + special : 10;
}

/** Conversations are built from this many of the newest messages of a mailbox. */
const THREAD_SCAN = 5000;

const BULK_ACTIONS = ['move', 'delete', 'read', 'unread', 'flag', 'unflag'] as const;
type BulkAction = (typeof BULK_ACTIONS)[number];

/** List summaries kept by content hash (a few hundred bytes each), least recently used out first. */
const SUMMARY_CACHE = 50_000;

export function mailRoutes(app: FastifyInstance, deps: ServiceDeps<Directory & WebState & Mailstore & Blobs>): void {
  const { store } = deps;
  // Parsing headers is most of a list's or a search's time, and the same messages are listed
  // again and again; a summary depends only on the bytes its hash names, so users can share it.
  const summaries = new Map<string, Summary>();
  const summaryOfBlob = async (hash: string): Promise<Summary | undefined> => {
    const hit = summaries.get(hash);
    if (hit) {
      summaries.delete(hash);
      summaries.set(hash, hit);
      return hit;
    }
    const raw = await store.getBlob(hash);
    if (!raw) return undefined;
    const summary = await summarize(raw);
    summaries.set(hash, summary);
    if (summaries.size > SUMMARY_CACHE) summaries.delete(summaries.keys().next().value!);
    return summary;
  };

  contactRoutes(app, store, summaryOfBlob);

  app.get('/mailboxes', async (request) => {
    const { user } = accountOf(request);
    const mailboxes = (await store.listMailboxes(user.id)).sort((a, b) => mailboxRank(a) - mailboxRank(b) || a.name.localeCompare(b.name));
    const out = [];
    for (const mailbox of mailboxes) {
      const status = await store.mailboxStatus(mailbox.id);
      out.push({ name: mailbox.name, specialUse: mailbox.specialUse, subscribed: mailbox.subscribed, messages: status.messages, unseen: status.unseen, size: status.size });
    }
    return { mailboxes: out };
  });

  app.post<{ Body: { name: string } }>(
    '/mailboxes',
    { schema: { body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: mailboxName } } } },
    async (request, reply) => {
      const { user } = accountOf(request);
      checkMailboxName(request.body.name);
      const mailbox = await store.createMailbox(user.id, request.body.name);
      void reply.code(201);
      return { name: mailbox.name };
    },
  );

  app.post<{ Params: { name: string }; Body: { to: string } }>(
    '/mailboxes/:name/rename',
    { schema: { params: nameParams, body: { type: 'object', required: ['to'], additionalProperties: false, properties: { to: mailboxName } } } },
    async (request) => {
      const { user } = accountOf(request);
      checkMailboxName(request.body.to);
      await store.renameMailbox(user.id, request.params.name, request.body.to);
      return { name: (await mailboxOf(store, user.id, request.body.to)).name };
    },
  );

  app.delete<{ Params: { name: string } }>('/mailboxes/:name', { schema: { params: nameParams } }, async (request) => {
    const { user } = accountOf(request);
    const mailbox = await mailboxOf(store, user.id, request.params.name);
    if (mailbox.name === 'INBOX' || mailbox.specialUse) throw Errors.badRequest(`${mailbox.name} is a special mailbox and stays`);
    await store.deleteMailbox(mailbox.id);
    return { deleted: true };
  });

  /** A page of a mailbox's list, and its search string, for the messages and the conversations. */
  const LIST_PAGE = {
    offset: { type: 'integer', minimum: 0, default: 0 },
    limit: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
  } as const;
  const LIST_SEARCH = { q: { type: 'string', minLength: 1, maxLength: 200 } } as const;

  app.get<{ Params: { name: string }; Querystring: { offset: number; limit: number; sort: Sort; q?: string } }>(
    '/mailboxes/:name/messages',
    {
      schema: {
        params: nameParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ...LIST_PAGE,
            sort: { type: 'string', enum: SORTS, default: '-date' },
            ...LIST_SEARCH,
          },
        },
      },
    },
    async (request) => {
      const { user } = accountOf(request);
      const { offset, limit, sort, q } = request.query;
      const mailbox = await mailboxOf(store, user.id, request.params.name);
      const all = sortMessages(await store.listMessages(mailbox.id), sort);
      if (q === undefined) {
        const messages = [];
        for (const meta of all.slice(offset, offset + limit)) {
          const summary = await summaryRow(meta);
          if (summary) messages.push(summary);
        }
        return { mailbox: mailbox.name, total: all.length, offset, limit, sort, messages };
      }
      // Search, in sort order, over at most SEARCH_SCAN messages.
      const matches = await searchMatcher(mailbox, q);
      const found = [];
      for (const meta of all.slice(0, SEARCH_SCAN)) {
        const summary = await summaryRow(meta);
        if (summary && matches(summary)) found.push(summary);
      }
      return { mailbox: mailbox.name, total: found.length, offset, limit, sort, q, complete: all.length <= SEARCH_SCAN, messages: found.slice(offset, offset + limit) };
    },
  );

  type Row = NonNullable<Awaited<ReturnType<typeof summaryRow>>>;
  async function summaryRow(meta: MessageMeta) {
    const summary = await summaryOfBlob(meta.blobHash);
    return summary && { uid: meta.uid, flags: meta.flags, size: meta.size, internalDate: meta.internalDate.toISOString(), ...summary };
  }
  async function threadsOf(mailbox: Mailbox, q?: string): Promise<{ threads: Row[][]; complete: boolean }> {
    const all = sortMessages(await store.listMessages(mailbox.id), '-date');
    const rows: Row[] = [];
    for (const meta of all.slice(0, THREAD_SCAN)) {
      const row = await summaryRow(meta);
      if (row) rows.push(row);
    }
    const threads = groupThreads(rows);
    if (!q) return { threads, complete: true };
    const matches = await searchMatcher(mailbox, q);
    return { threads: threads.filter((thread) => thread.some(matches)), complete: all.length <= THREAD_SCAN };
  }

  /** The webmail's search: subject and addresses of the summary, body words through the store's full-text index. */
  async function searchMatcher(mailbox: Mailbox, q: string): Promise<(row: Row) => boolean> {
    const needle = q.toLowerCase();
    const inBody = new Set(await store.searchText(mailbox.id, q));
    return (row) => inBody.has(row.uid) || matchesSearch(row, needle);
  }

  // The message list as conversations, newest activity first (issue 21).
  app.get<{ Params: { name: string }; Querystring: { offset: number; limit: number; q?: string } }>(
    '/mailboxes/:name/conversations',
    {
      schema: {
        params: nameParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ...LIST_PAGE,
            ...LIST_SEARCH,
          },
        },
      },
    },
    async (request) => {
      const { user } = accountOf(request);
      const { offset, limit, q } = request.query;
      const mailbox = await mailboxOf(store, user.id, request.params.name);
      const { threads, complete } = await threadsOf(mailbox, q);
      const conversations = threads.slice(offset, offset + limit).map((thread) => {
        const newest = thread[0]!;
        const oldest = thread.at(-1)!;
        const senders = new Map<string, AddressOut>();
        for (const row of [...thread].reverse()) for (const a of row.from) senders.set(a.address.toLowerCase(), a);
        return {
          uid: newest.uid,
          uids: thread.map((row) => row.uid),
          count: thread.length,
          unseen: thread.filter((row) => !row.flags.includes('\\Seen')).length,
          flagged: thread.some((row) => row.flags.includes('\\Flagged')),
          hasAttachments: thread.some((row) => row.hasAttachments),
          subject: oldest.subject,
          from: [...senders.values()],
          to: newest.to,
          date: newest.date ?? newest.internalDate,
          preview: newest.preview,
        };
      });
      return { mailbox: mailbox.name, total: threads.length, offset, limit, complete, ...(q ? { q } : {}), conversations };
    },
  );

  // One conversation: the thread that holds a message, oldest first.
  app.get<{ Params: MessageParams }>('/mailboxes/:mailbox/threads/:uid', { schema: { params: messageParams } }, async (request) => {
    const { user } = accountOf(request);
    const mailbox = await mailboxOf(store, user.id, request.params.mailbox);
    const { threads } = await threadsOf(mailbox);
    const thread = threads.find((t) => t.some((row) => row.uid === request.params.uid));
    if (!thread) throw Errors.notFound('That message is no longer here.');
    return { mailbox: mailbox.name, messages: [...thread].reverse() };
  });

  // Many messages at once (multi-select); the UID map lets the page undo a move or delete.
  app.post<{ Params: { name: string }; Body: { uids: number[]; action: BulkAction; to?: string } }>(
    '/mailboxes/:name/bulk',
    {
      schema: {
        params: nameParams,
        body: {
          type: 'object',
          required: ['uids', 'action'],
          additionalProperties: false,
          properties: {
            uids: { type: 'array', minItems: 1, maxItems: 5000, items: { type: 'integer', minimum: 1 } },
            action: { type: 'string', enum: BULK_ACTIONS },
            to: { type: 'string', minLength: 1, maxLength: 1000 },
          },
        },
      },
    },
    async (request) => {
      const { user } = accountOf(request);
      const { uids, action, to } = request.body;
      const mailbox = await mailboxOf(store, user.id, request.params.name);
      const flagChange: Record<string, ['add' | 'remove', string]> = { read: ['add', '\\Seen'], unread: ['remove', '\\Seen'], flag: ['add', '\\Flagged'], unflag: ['remove', '\\Flagged'] };
      if (action in flagChange) {
        const [op, flag] = flagChange[action]!;
        await store.setFlags(mailbox.id, uids, op, [flag]);
        return { mailbox: mailbox.name, count: uids.length };
      }
      let target: Mailbox;
      if (action === 'move') {
        if (!to) throw Errors.badRequest('Choose the folder to move to.');
        target = await mailboxOf(store, user.id, to);
        if (target.id === mailbox.id) throw Errors.badRequest(`Those messages are already in ${mailbox.name}.`);
      } else {
        target = await specialMailbox(store, user.id, '\\Trash', 'Trash');
        if (target.id === mailbox.id) {
          await store.setFlags(mailbox.id, uids, 'add', ['\\Deleted']);
          const gone = await store.expunge(mailbox.id, uids);
          return { mailbox: mailbox.name, deleted: true, count: gone.length };
        }
      }
      const { map } = await store.move(mailbox.id, uids, target.id);
      return { mailbox: target.name, deleted: false, count: map.length, map };
    },
  );

  app.get<{ Params: MessageParams; Querystring: { images?: 0 | 1 } }>(
    '/messages/:mailbox/:uid',
    { schema: { params: messageParams, querystring: { type: 'object', additionalProperties: false, properties: { images: { type: 'integer', enum: [0, 1] } } } } },
    async (request) => {
      const { user } = accountOf(request);
      const { mailbox, meta, raw } = await messageOf(store, user.id, request.params);
      const view = await viewMessage(raw, { images: request.query.images === 1 });
      return { mailbox: mailbox.name, uid: meta.uid, flags: meta.flags, size: meta.size, internalDate: meta.internalDate.toISOString(), ...view };
    },
  );

  app.get<{ Params: MessageParams & { index: number } }>(
    '/messages/:mailbox/:uid/attachments/:index',
    { schema: { params: { ...messageParams, required: [...messageParams.required, 'index'], properties: { ...messageParams.properties, index: { type: 'integer', minimum: 0 } } } } },
    async (request, reply) => {
      const { user } = accountOf(request);
      const { raw } = await messageOf(store, user.id, request.params);
      const attachment = (await parseMessage(raw)).attachments[request.params.index];
      if (!attachment) throw Errors.notFound('no such attachment');
      // Always a download, never rendered on our origin (an HTML attachment must not run here).
      return reply
        .header('content-type', attachment.contentType || 'application/octet-stream')
        .header('content-disposition', contentDisposition(attachment.filename ?? null, request.params.index))
        .header('content-security-policy', "default-src 'none'; sandbox")
        .send(attachment.content);
    },
  );

  app.post<{ Params: MessageParams; Body: { add?: string[]; remove?: string[] } }>(
    '/messages/:mailbox/:uid/flags',
    { schema: { params: messageParams, body: { type: 'object', additionalProperties: false, properties: { add: flagList, remove: flagList } } } },
    async (request) => {
      const { user } = accountOf(request);
      const { mailbox, meta } = await messageOf(store, user.id, request.params);
      const { add = [], remove = [] } = request.body;
      if (add.length > 0) await store.setFlags(mailbox.id, [meta.uid], 'add', add);
      if (remove.length > 0) await store.setFlags(mailbox.id, [meta.uid], 'remove', remove);
      const after = await store.getMessage(mailbox.id, meta.uid);
      return { flags: after?.flags ?? [] };
    },
  );

  app.post<{ Params: MessageParams; Body: { to: string } }>(
    '/messages/:mailbox/:uid/move',
    {
      schema: {
        params: messageParams,
        body: { type: 'object', required: ['to'], additionalProperties: false, properties: { to: { type: 'string', minLength: 1, maxLength: 1000 } } },
      },
    },
    async (request) => {
      const { user } = accountOf(request);
      const { mailbox, meta } = await messageOf(store, user.id, request.params);
      const target = await mailboxOf(store, user.id, request.body.to);
      if (target.id === mailbox.id) throw Errors.badRequest('the message is already there');
      const { map } = await store.move(mailbox.id, [meta.uid], target.id);
      if (map.length === 0) throw Errors.notFound('no such message');
      return { mailbox: target.name, uid: map[0]![1] };
    },
  );

  app.delete<{ Params: MessageParams }>('/messages/:mailbox/:uid', { schema: { params: messageParams } }, async (request) => {
    const { user } = accountOf(request);
    const { mailbox, meta } = await messageOf(store, user.id, request.params);
    const trash = await specialMailbox(store, user.id, '\\Trash', 'Trash');
    if (mailbox.id !== trash.id) {
      const { map } = await store.move(mailbox.id, [meta.uid], trash.id);
      return { deleted: false, mailbox: trash.name, uid: map[0]?.[1] ?? null };
    }
    // Already in Trash: gone for good (RFC 3501 \Deleted then EXPUNGE of just this UID).
    await store.setFlags(mailbox.id, [meta.uid], 'add', ['\\Deleted']);
    await store.expunge(mailbox.id, [meta.uid]);
    return { deleted: true };
  });
}
