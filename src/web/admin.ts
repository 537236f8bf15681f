// The admin API under /api/admin (issue 9, documented in docs/admin.md): the cluster and the
// store, users, domains, the outbound queue, read-only raw views of a user's data, and the
// audit log. Every route lives in this one encapsulated plugin, whose onRequest hook refuses
// anyone but an administrator (403) before a body is even read: a route added here cannot
// skip the check. Every state change and every raw view writes an audit entry.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isAlive } from '../cluster/membership.js';
import { headerBlock } from '../queue/dsn.js';
import type { ServiceDeps } from '../service.js';
import { isGroupedStore } from '../store/grouped-store.js';
import type { Directory, Mailbox, Mailstore, Member, MemberRequest, OutboundEntry, Store, StoreStatus, User } from '../store/types.js';
import { moveUser } from '../store/user-move.js';
import { hashPassword } from '../util/password.js';
import { Errors, HttpError } from './errors.js';
import { accountOf } from './sessions.js';

/** How long the store's status (file size, host roles, lag) is reused between console refreshes. */
const STORE_STATUS_TTL_MS = 3_000;

/** Raw message views are cut here (the contract's 1 MB). */
export const RAW_VIEW_MAX_BYTES = 1 << 20;

const address = { type: 'string', minLength: 3, maxLength: 320 } as const;
const domainName = { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$' } as const;
const password = { type: 'string', minLength: 8, maxLength: 1024 } as const;
const quotaBytes = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
const positiveId = { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } as const;
const offset = { type: 'integer', minimum: 0, maximum: 10_000_000 } as const;
const limit = { type: 'integer', minimum: 1, maximum: 500 } as const;

function params<P extends Record<string, unknown>>(properties: P) {
  return { type: 'object', required: Object.keys(properties), additionalProperties: false, properties } as const;
}
const addressParams = params({ address });
const nodeParams = params({ id: { type: 'string', minLength: 1, maxLength: 200 } });
const queueParams = params({ id: positiveId });
const mailboxParams = params({ address, mailboxId: positiveId });

// A plain mailbox address, as sign-up accepts.
const NEW_ADDRESS = /^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9])?@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$/i;

/** Drive listing as the drive store offers it (issue 8); looked up at run time so this works before and after drive exists. */
interface DriveLister {
  listDrive(userId: number, parentId: number | null): Promise<{ id: number; kind: string; [key: string]: unknown }[]>;
}
const DRIVE_VIEW_MAX_OBJECTS = 10_000;

/** The PostgreSQL group a user's data lives in; null on a store of one group. */
async function groupOf(store: Store, user: User): Promise<string | null> {
  return isGroupedStore(store) ? (await store.groupForId(user.id)).info.name : null;
}

function adminUser(user: User, group: string | null) {
  return {
    address: user.address,
    isAdmin: user.isAdmin,
    disabled: user.disabled,
    quotaBytes: user.quotaBytes,
    usedBytes: user.usedBytes,
    createdAt: user.createdAt.toISOString(),
    group,
  };
}

function queueEntry(entry: OutboundEntry) {
  return {
    id: entry.id,
    from: entry.sender,
    recipients: [entry.recipient],
    status: entry.status,
    attempts: entry.attempts,
    nextAttemptAt: entry.nextAttemptAt.toISOString(),
    lastError: entry.lastError,
    size: entry.size,
    createdAt: entry.createdAt.toISOString(),
    warned: entry.warned,
  };
}

function clusterMember(member: Member, now: number) {
  return {
    id: member.id,
    kind: member.kind,
    state: member.state,
    requestedState: member.requestedState,
    version: member.version,
    addresses: member.addresses,
    load: member.load,
    startedAt: member.startedAt.toISOString(),
    beatAt: member.beatAt.toISOString(),
    alive: isAlive(member, now),
  };
}

/** The stored bytes as text: UTF-8 when they are valid UTF-8, else latin1 (one character per byte). */
export function rawText(bytes: Buffer): { raw: string; encoding: 'utf8' | 'latin1'; truncated: boolean } {
  const truncated = bytes.length > RAW_VIEW_MAX_BYTES;
  const shown = truncated ? bytes.subarray(0, RAW_VIEW_MAX_BYTES) : bytes;
  try {
    return { raw: new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(shown), encoding: 'utf8', truncated };
  } catch {
    return { raw: shown.toString('latin1'), encoding: 'latin1', truncated };
  }
}

async function userOrThrow(store: Directory, wanted: string): Promise<User> {
  const user = await store.getUser(wanted);
  if (!user) throw Errors.notFound(`no user ${wanted.toLowerCase()}`);
  return user;
}

async function mailboxOf(store: Mailstore, user: User, mailboxId: number): Promise<Mailbox> {
  const mailbox = await store.getMailboxById(mailboxId);
  if (!mailbox || mailbox.userId !== user.id) throw Errors.notFound(`no mailbox ${mailboxId} of ${user.address}`);
  return mailbox;
}

/** Registers every admin route; call as `api.register((admin) => adminRoutes(admin, deps), { prefix: '/admin' })`. */
export async function adminRoutes(app: FastifyInstance, deps: ServiceDeps): Promise<void> {
  const { store } = deps;

  // The gate: after the API's session check (401), before the body is read.
  app.addHook('onRequest', async (request) => {
    if (!accountOf(request).user.isAdmin) throw Errors.forbidden('administrators only');
  });

  const audit = async (request: FastifyRequest, action: string, target: string, detail: Record<string, unknown> | null = null) => {
    await store.addAudit({ actor: accountOf(request).user.address, action, target, detail, node: deps.nodeId ?? null });
  };

  // ---- cluster ---------------------------------------------------------------

  // The console polls every few seconds; PostgreSQL's status opens a connection to every host, so it is kept briefly.
  let storeStatus: { at: number; value: Promise<StoreStatus> } | undefined;
  const currentStoreStatus = () => {
    if (!storeStatus || Date.now() - storeStatus.at > STORE_STATUS_TTL_MS) {
      const value = store.status();
      storeStatus = { at: Date.now(), value };
      value.catch(() => (storeStatus = undefined));
    }
    return storeStatus.value;
  };

  app.get('/cluster', async () => {
    const now = Date.now();
    const [members, status] = await Promise.all([store.listMembers(), currentStoreStatus()]);
    const storeView =
      status.kind === 'sqlite' ? { kind: 'sqlite' as const, path: status.path, sizeBytes: status.sizeBytes + (status.walBytes ?? 0), walBytes: status.walBytes } : status;
    return { members: members.map((m) => clusterMember(m, now)), store: storeView };
  });

  const nodeActions: [string, MemberRequest | null][] = [
    ['drain', 'draining'],
    ['undrain', 'active'],
    ['stop', 'stopping'],
    ['restart', 'restarting'],
  ];
  for (const [name, state] of nodeActions) {
    app.post<{ Params: { id: string } }>(`/nodes/:id/${name}`, { schema: { params: nodeParams } }, async (request) => {
      const { id } = request.params;
      const member = (await store.listMembers()).find((m) => m.id === id);
      if (!member) throw Errors.notFound(`no node ${id}`);
      if (name === 'stop' || name === 'restart') {
        // Nodes and gateways alike: each obeys at its next beat.
        if (!isAlive(member)) throw Errors.conflict(`${member.kind} ${id} is not running`);
      } else if (member.kind !== 'node') {
        throw Errors.conflict(`${id} is a gateway; only nodes drain`);
      }
      if (!(await store.requestMemberState(id, state))) throw Errors.notFound(`no node ${id}`);
      await audit(request, `node.${name}`, id, { requestedState: state });
      return { ok: true };
    });
  }

  // ---- users -----------------------------------------------------------------

  app.get<{ Querystring: { q?: string; offset?: number; limit?: number } }>(
    '/users',
    {
      schema: {
        querystring: { type: 'object', additionalProperties: false, properties: { q: { type: 'string', maxLength: 320 }, offset, limit } },
      },
    },
    async (request) => {
      const { q, offset: from = 0, limit: count = 50 } = request.query;
      const { users, total } = await store.searchUsers({ q: q || undefined, offset: from, limit: count });
      return { users: await Promise.all(users.map(async (u) => adminUser(u, await groupOf(store, u)))), total };
    },
  );

  app.post<{ Body: { address: string; password: string; quotaBytes?: number; isAdmin?: boolean } }>(
    '/users',
    {
      schema: {
        body: {
          type: 'object',
          required: ['address', 'password'],
          additionalProperties: false,
          properties: { address, password, quotaBytes, isAdmin: { type: 'boolean' } },
        },
      },
    },
    async (request, reply) => {
      const wanted = request.body.address.trim().toLowerCase();
      if (!NEW_ADDRESS.test(wanted)) throw Errors.badRequest('not a valid address');
      const domain = wanted.slice(wanted.lastIndexOf('@') + 1);
      if (!(await store.getDomain(domain))) throw Errors.badRequest(`${domain} is not a domain of this server; add it first`);
      const user = await store.addUser({
        address: wanted,
        passwordHash: await hashPassword(request.body.password),
        quotaBytes: request.body.quotaBytes ?? 0,
        isAdmin: request.body.isAdmin ?? false,
      });
      await audit(request, 'user.add', user.address, { quotaBytes: user.quotaBytes, isAdmin: user.isAdmin });
      void reply.code(201);
      return { user: adminUser(user, await groupOf(store, user)) };
    },
  );

  for (const [name, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    app.post<{ Params: { address: string } }>(`/users/:address/${name}`, { schema: { params: addressParams } }, async (request) => {
      const user = await userOrThrow(store, request.params.address);
      if (disabled && user.id === accountOf(request).user.id) throw Errors.conflict('you cannot disable yourself');
      await store.setUserDisabled(user.address, disabled);
      // A disabled user's browser sessions end; IMAP, POP3 and SMTP refuse new logins.
      if (disabled) await store.deleteUserSessions(user.id);
      await audit(request, `user.${name}`, user.address);
      return { ok: true };
    });
  }

  app.post<{ Params: { address: string }; Body: { password: string } }>(
    '/users/:address/password',
    { schema: { params: addressParams, body: { type: 'object', required: ['password'], additionalProperties: false, properties: { password } } } },
    async (request) => {
      const user = await userOrThrow(store, request.params.address);
      await store.setPassword(user.address, await hashPassword(request.body.password));
      // Logins with the old password end, except the admin's own current one.
      await store.deleteUserSessions(user.id, user.id === accountOf(request).user.id ? accountOf(request).session.idHash : undefined);
      await audit(request, 'user.password', user.address);
      return { ok: true };
    },
  );

  app.post<{ Params: { address: string }; Body: { quotaBytes: number } }>(
    '/users/:address/quota',
    { schema: { params: addressParams, body: { type: 'object', required: ['quotaBytes'], additionalProperties: false, properties: { quotaBytes } } } },
    async (request) => {
      const user = await userOrThrow(store, request.params.address);
      await store.setQuota(user.address, request.body.quotaBytes);
      await audit(request, 'user.quota', user.address, { from: user.quotaBytes, to: request.body.quotaBytes });
      return { ok: true };
    },
  );

  app.post<{ Params: { address: string }; Body: { group: string } }>(
    '/users/:address/move',
    {
      schema: {
        params: addressParams,
        body: { type: 'object', required: ['group'], additionalProperties: false, properties: { group: { type: 'string', minLength: 1, maxLength: 200 } } },
      },
    },
    async (request) => {
      const user = await userOrThrow(store, request.params.address);
      if (!isGroupedStore(store)) throw new HttpError(501, 'this store has no groups to move users between (quill group add)');
      // Online: copy, a short fence, switch (src/store/user-move.ts). 404 unknown group, 400 same group.
      const moved = await moveUser(store, user.address, request.body.group);
      await audit(request, 'user.move', user.address, { from: moved.from, to: moved.to, messages: moved.messages });
      return { ok: true };
    },
  );

  // ---- domains ---------------------------------------------------------------

  app.get('/domains', async () => {
    const [domains, users] = await Promise.all([store.listDomains(), store.listUsers()]);
    const counts = new Map<number, number>();
    for (const user of users) counts.set(user.domainId, (counts.get(user.domainId) ?? 0) + 1);
    return { domains: domains.map((d) => ({ name: d.name, users: counts.get(d.id) ?? 0, createdAt: d.createdAt.toISOString() })) };
  });

  app.post<{ Body: { name: string } }>(
    '/domains',
    { schema: { body: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: domainName } } } },
    async (request, reply) => {
      const domain = await store.addDomain(request.body.name);
      await audit(request, 'domain.add', domain.name);
      void reply.code(201);
      return { domain: { name: domain.name, users: 0, createdAt: domain.createdAt.toISOString() } };
    },
  );

  app.delete<{ Params: { name: string } }>('/domains/:name', { schema: { params: params({ name: domainName }) } }, async (request) => {
    await store.removeDomain(request.params.name); // 404 unknown, 409 while it has users
    await audit(request, 'domain.remove', request.params.name.toLowerCase());
    return { ok: true };
  });

  // ---- outbound queue --------------------------------------------------------

  app.get('/queue', async () => ({ entries: (await store.listOutbound()).map(queueEntry) }));

  app.get<{ Params: { id: number } }>('/queue/:id', { schema: { params: queueParams } }, async (request) => {
    const entry = await store.getOutbound(request.params.id);
    if (!entry) throw Errors.notFound(`no queue entry ${request.params.id}`);
    return { entry: queueEntry(entry) };
  });

  const queueActions: [string, 'POST' | 'DELETE', string, (id: number) => Promise<boolean>][] = [
    ['retry', 'POST', '/queue/:id/retry', (id) => store.setOutboundStatus(id, 'queued')],
    ['hold', 'POST', '/queue/:id/hold', (id) => store.setOutboundStatus(id, 'held')],
    ['release', 'POST', '/queue/:id/release', (id) => store.setOutboundStatus(id, 'queued')],
    ['delete', 'DELETE', '/queue/:id', (id) => store.deleteOutbound(id)],
  ];
  for (const [name, method, url, act] of queueActions) {
    app.route<{ Params: { id: number } }>({
      method,
      url,
      schema: { params: queueParams },
      handler: async (request) => {
        const { id } = request.params;
        const entry = await store.getOutbound(id);
        if (!entry || !(await act(id))) throw Errors.notFound(`no queue entry ${id}`);
        await audit(request, `queue.${name}`, String(id), { from: entry.sender, to: entry.recipient });
        return { ok: true };
      },
    });
  }

  // ---- raw data views (read only, each audited as 'view') ----------------------

  app.get<{ Params: { address: string } }>('/raw/users/:address/mailboxes', { schema: { params: addressParams } }, async (request) => {
    const user = await userOrThrow(store, request.params.address);
    const mailboxes = await store.listMailboxes(user.id);
    const counted = await Promise.all(
      mailboxes.map(async (m) => ({
        id: m.id,
        name: m.name,
        uidvalidity: m.uidvalidity,
        uidnext: m.uidnext,
        highestModseq: m.highestModseq,
        messages: (await store.mailboxStatus(m.id)).messages,
        specialUse: m.specialUse,
        subscribed: m.subscribed,
      })),
    );
    await audit(request, 'view', user.address, { what: 'mailboxes' });
    return { mailboxes: counted };
  });

  app.get<{ Params: { address: string; mailboxId: number }; Querystring: { offset?: number; limit?: number } }>(
    '/raw/users/:address/mailboxes/:mailboxId/messages',
    { schema: { params: mailboxParams, querystring: { type: 'object', additionalProperties: false, properties: { offset, limit } } } },
    async (request) => {
      const user = await userOrThrow(store, request.params.address);
      const mailbox = await mailboxOf(store, user, request.params.mailboxId);
      const { offset: from = 0, limit: count = 100 } = request.query;
      const uids = await store.listUids(mailbox.id);
      const page = uids.slice(from, from + count);
      const messages = page.length === 0 ? [] : await store.listMessages(mailbox.id, { fromUid: page[0], toUid: page[page.length - 1] });
      await audit(request, 'view', user.address, { what: 'messages', mailbox: mailbox.name, mailboxId: mailbox.id, offset: from, limit: count });
      return {
        messages: messages.map((m) => ({ uid: m.uid, size: m.size, flags: m.flags, internalDate: m.internalDate.toISOString(), modseq: m.modseq, blobHash: m.blobHash })),
        total: uids.length,
      };
    },
  );

  app.get<{ Params: { address: string; mailboxId: number; uid: number } }>(
    '/raw/users/:address/mailboxes/:mailboxId/messages/:uid',
    { schema: { params: params({ address, mailboxId: positiveId, uid: positiveId }) } },
    async (request) => {
      const user = await userOrThrow(store, request.params.address);
      const mailbox = await mailboxOf(store, user, request.params.mailboxId);
      const meta = await store.getMessage(mailbox.id, request.params.uid);
      if (!meta) throw Errors.notFound(`no message ${request.params.uid} in ${mailbox.name}`);
      const bytes = await store.getBlob(meta.blobHash);
      if (!bytes) throw Errors.notFound(`the bytes of message ${meta.uid} are missing`);
      await audit(request, 'view', user.address, { what: 'message', mailbox: mailbox.name, mailboxId: mailbox.id, uid: meta.uid });
      return {
        meta: {
          address: user.address,
          mailbox: mailbox.name,
          mailboxId: mailbox.id,
          uidvalidity: mailbox.uidvalidity,
          uid: meta.uid,
          size: meta.size,
          flags: meta.flags,
          internalDate: meta.internalDate.toISOString(),
          modseq: meta.modseq,
          blobHash: meta.blobHash,
          headerBytes: headerBlock(bytes).length,
        },
        ...rawText(bytes),
      };
    },
  );

  app.get<{ Params: { address: string } }>('/raw/users/:address/drive', { schema: { params: addressParams } }, async (request) => {
    const user = await userOrThrow(store, request.params.address);
    const drive = store as unknown as Partial<DriveLister>;
    if (typeof drive.listDrive !== 'function') throw new HttpError(501, 'this store has no drive');
    // Breadth first through the folders, so every object comes with its parent before it.
    const objects: Record<string, unknown>[] = [];
    const folders: (number | null)[] = [null];
    while (folders.length > 0 && objects.length < DRIVE_VIEW_MAX_OBJECTS) {
      for (const node of await drive.listDrive.call(store, user.id, folders.shift()!)) {
        objects.push(node);
        if (node.kind === 'folder') folders.push(node.id);
      }
    }
    await audit(request, 'view', user.address, { what: 'drive', objects: objects.length });
    return { objects: objects.slice(0, DRIVE_VIEW_MAX_OBJECTS), truncated: objects.length >= DRIVE_VIEW_MAX_OBJECTS };
  });

  // ---- audit log -------------------------------------------------------------

  app.get<{ Querystring: { limit?: number; before?: number } }>(
    '/audit',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { limit, before: positiveId } } } },
    async (request) => {
      const entries = await store.listAudit({ limit: request.query.limit ?? 100, before: request.query.before });
      return { entries: entries.map((e) => ({ id: e.id, at: e.at.toISOString(), actor: e.actor, action: e.action, target: e.target, detail: e.detail, node: e.node })) };
    },
  );
}
