// Compose and send from the browser, through the same path as SMTP submission: recipients
// resolved like RCPT TO, local copies and outbound queue entries in one deliver, plus a copy
// in the sender's Sent. MailComposer adds Message-ID and Date and leaves Bcc out of the header.
// Drafts are the same message kept in the Drafts mailbox (Bcc included).
import type { FastifyInstance } from 'fastify';
import MailComposer from 'nodemailer/lib/mail-composer';
import type { ServiceDeps } from '../service.js';
import { SmtpReply } from '../smtp/codes.js';
import { resolveRecipient, storeMessage, type Recipient } from '../smtp/delivery.js';
import type { Blobs, Directory, Mailstore, User, WebState } from '../store/types.js';
import { DISPLAY_NAME } from './accounts.js';
import { Errors, HttpError, humanBytes } from './errors.js';
import { messageOf, specialMailbox } from './mail.js';
import { parseMessage } from './message-view.js';
import { accountOf } from './sessions.js';

// One recipient: a bare address, or `Display Name <address>` (RFC 5322 §3.4 name-addr; the
// name may be quoted and hold commas).
const ADDR = '[^\\s@<>",;]+@[^\\s@<>",;]+';
const addressList = { type: 'array', maxItems: 1000, items: { type: 'string', minLength: 3, maxLength: 400, pattern: `^\\s*(?:${ADDR}|[^<>]*<${ADDR}>)\\s*$` } } as const;

interface Mailbox {
  name: string;
  address: string;
}

/** `Bob Builder <bob@example.com>`, `"Builder, Bob" <bob@example.com>` or `bob@example.com`. */
export function parseRecipient(value: string): Mailbox {
  const match = /^\s*(.*?)\s*<([^<>]+)>\s*$/.exec(value);
  if (!match) return { name: '', address: value.trim() };
  const name = match[1]!.replace(/^"(.*)"$/, '$1').replace(/\\(.)/g, '$1');
  return { name, address: match[2]!.trim() };
}

const recipients = (list: string[] | undefined): Mailbox[] => (list ?? []).map(parseRecipient);

interface ComposeBody {
  to?: string[];
  cc?: string[];
  bcc?: string[];
  subject: string;
  text?: string;
  html?: string;
  inReplyTo?: string;
  references?: string[];
  attachments?: { filename: string; contentType?: string; content: string }[];
  /** A message whose attachments go along (forward). */
  forward?: { mailbox: string; uid: number };
  /** The sender's display name for From; without it, the one in the user's settings. */
  fromName?: string;
}

const composeProperties = {
  to: addressList,
  cc: addressList,
  bcc: addressList,
  subject: { type: 'string', maxLength: 998 },
  text: { type: 'string' },
  html: { type: 'string' },
  inReplyTo: { type: 'string', maxLength: 998 },
  fromName: DISPLAY_NAME,
  references: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 998 } },
  attachments: {
    type: 'array',
    maxItems: 100,
    items: {
      type: 'object',
      required: ['filename', 'content'],
      additionalProperties: false,
      properties: {
        filename: { type: 'string', minLength: 1, maxLength: 255 },
        contentType: { type: 'string', maxLength: 255, pattern: '^[\\w.+-]+/[\\w.+-]+$' },
        // base64
        content: { type: 'string', pattern: '^[A-Za-z0-9+/]*={0,2}$' },
      },
    },
  },
  forward: {
    type: 'object',
    required: ['mailbox', 'uid'],
    additionalProperties: false,
    properties: { mailbox: { type: 'string', minLength: 1, maxLength: 1000 }, uid: { type: 'integer', minimum: 1 } },
  },
} as const;

/** UID of a draft in Drafts: sending it, or saving a newer version, removes it. */
const draftUid = { type: 'integer', minimum: 1 } as const;

const sendSchema = {
  body: { type: 'object', required: ['subject'], additionalProperties: false, properties: { ...composeProperties, draft: draftUid } },
} as const;

const draftSchema = {
  body: { type: 'object', required: ['subject'], additionalProperties: false, properties: { ...composeProperties, replaces: draftUid } },
} as const;

/** Like RCPT TO: a local address must exist and have room; anything else goes out. */
async function resolveAll(store: Directory, addresses: string[]): Promise<Recipient[]> {
  const out: Recipient[] = [];
  for (const address of addresses) {
    try {
      out.push(await resolveRecipient(store, address, 0));
    } catch (error) {
      if (!(error instanceof SmtpReply)) throw error;
      // A permanent refusal is the sender's to fix; a temporary one (mailbox full) may pass later.
      throw new HttpError(error.responseCode >= 500 ? 400 : 503, `${address}: ${error.message.replace(/^\d\.\d+\.\d+ /, '')}`);
    }
  }
  return out;
}

/** The message as RFC 5322 bytes; Bcc in the header only when kept as a draft. */
async function compose(store: Mailstore & Blobs, user: User, body: ComposeBody, options: { keepBcc: boolean; maxBytes: number; fromName?: string }): Promise<{ raw: Buffer; messageId: string }> {
  const attachments: { filename: string; contentType?: string; content: Buffer }[] = (body.attachments ?? []).map((a) => ({
    filename: a.filename,
    contentType: a.contentType,
    content: Buffer.from(a.content, 'base64'),
  }));
  if (body.forward) {
    const { raw } = await messageOf(store, user.id, body.forward);
    for (const original of (await parseMessage(raw)).attachments) {
      attachments.push({ filename: original.filename ?? 'attachment', contentType: original.contentType, content: original.content });
    }
  }
  const fromName = options.fromName || user.displayName;
  const message = new MailComposer({
    from: fromName ? { name: fromName, address: user.address } : user.address,
    to: recipients(body.to),
    cc: recipients(body.cc),
    bcc: recipients(body.bcc),
    subject: body.subject,
    text: body.text ?? '',
    html: body.html,
    inReplyTo: body.inReplyTo,
    references: body.references,
    attachments,
    // Content comes only from this request: never a file path or URL on the server.
    disableFileAccess: true,
    disableUrlAccess: true,
  }).compile();
  message.keepBcc = options.keepBcc;
  const raw = await message.build();
  if (raw.length > options.maxBytes) throw new HttpError(413, `The message is ${humanBytes(raw.length)}, larger than the ${humanBytes(options.maxBytes)} allowed. Leave out an attachment or send it as a Drive link.`);
  return { raw, messageId: message.messageId() };
}

async function dropDraft(store: Mailstore, userId: number, uid: number | undefined): Promise<void> {
  if (uid === undefined) return;
  const drafts = await specialMailbox(store, userId, '\\Drafts', 'Drafts');
  await store.setFlags(drafts.id, [uid], 'add', ['\\Deleted']);
  await store.expunge(drafts.id, [uid]);
}

export function sendRoutes(app: FastifyInstance, deps: ServiceDeps<Directory & WebState & Mailstore & Blobs>): void {
  const { store, config } = deps;
  const maxBytes = config.limits.messageSize;
  const bodyLimit = Math.ceil(maxBytes * 1.4) + 1024 * 1024; // base64 attachments in JSON

  app.post<{ Body: ComposeBody & { draft?: number } }>('/send', { schema: sendSchema, bodyLimit }, async (request, reply) => {
    const { user } = accountOf(request);
    const body = request.body;
    const all = [...recipients(body.to), ...recipients(body.cc), ...recipients(body.bcc)];
    const addresses = [...new Set(all.map((a) => a.address.toLowerCase()))];
    if (addresses.length === 0) throw Errors.badRequest('Add at least one recipient in To, Cc or Bcc.');
    if (addresses.length > config.limits.recipients) throw Errors.badRequest(`A message can go to at most ${config.limits.recipients} recipients.`);
    const resolved = await resolveAll(store, addresses);
    const { raw, messageId } = await compose(store, user, body, { keepBcc: false, maxBytes, fromName: body.fromName });
    const result = await storeMessage(store, raw, resolved, { sender: user.address, sentCopyUserId: user.id });
    await dropDraft(store, user.id, body.draft);
    void reply.code(201);
    return { messageId, size: raw.length, queued: result.outboundIds.length };
  });

  app.post<{ Body: ComposeBody & { replaces?: number } }>('/drafts', { schema: draftSchema, bodyLimit }, async (request, reply) => {
    const { user } = accountOf(request);
    const { raw } = await compose(store, user, request.body, { keepBcc: true, maxBytes, fromName: request.body.fromName });
    const drafts = await specialMailbox(store, user.id, '\\Drafts', 'Drafts');
    const { uid } = await store.append(drafts.id, raw, ['\\Draft', '\\Seen']);
    await dropDraft(store, user.id, request.body.replaces);
    void reply.code(201);
    return { mailbox: drafts.name, uid };
  });
}
