// Compose and send from the browser, through the same path as SMTP submission: recipients
// resolved like RCPT TO, local copies and outbound queue entries in one deliver, plus a copy
// in the sender's Sent. MailComposer adds Message-ID and Date and leaves Bcc out of the header.
import type { FastifyInstance } from 'fastify';
import MailComposer from 'nodemailer/lib/mail-composer';
import type { ServiceDeps } from '../service.js';
import { SmtpReply } from '../smtp/codes.js';
import { resolveRecipient, storeMessage, type Recipient } from '../smtp/delivery.js';
import type { Store } from '../store/types.js';
import { Errors, HttpError } from './errors.js';
import { accountOf } from './sessions.js';

const addressList = { type: 'array', maxItems: 1000, items: { type: 'string', minLength: 3, maxLength: 320, pattern: '^[^\\s@<>",;]+@[^\\s@<>",;]+$' } } as const;

interface SendBody {
  to?: string[];
  cc?: string[];
  bcc?: string[];
  subject: string;
  text?: string;
  html?: string;
  inReplyTo?: string;
  references?: string[];
  attachments?: { filename: string; contentType?: string; content: string }[];
}

const sendSchema = {
  body: {
    type: 'object',
    required: ['subject'],
    additionalProperties: false,
    properties: {
      to: addressList,
      cc: addressList,
      bcc: addressList,
      subject: { type: 'string', maxLength: 998 },
      text: { type: 'string' },
      html: { type: 'string' },
      inReplyTo: { type: 'string', maxLength: 998 },
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
    },
  },
} as const;

/** Like RCPT TO: a local address must exist and have room; anything else goes out. */
async function resolveAll(store: Store, addresses: string[]): Promise<Recipient[]> {
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

export function sendRoutes(app: FastifyInstance, deps: ServiceDeps): void {
  const { store, config } = deps;
  const maxBytes = config.limits.messageSize;

  app.post<{ Body: SendBody }>('/send', { schema: sendSchema, bodyLimit: Math.ceil(maxBytes * 1.4) + 1024 * 1024 }, async (request, reply) => {
    const { user } = accountOf(request);
    const body = request.body;
    const recipients = [...new Set([...(body.to ?? []), ...(body.cc ?? []), ...(body.bcc ?? [])].map((a) => a.trim().toLowerCase()))];
    if (recipients.length === 0) throw Errors.badRequest('no recipients');
    if (recipients.length > config.limits.recipients) throw Errors.badRequest(`at most ${config.limits.recipients} recipients`);
    const resolved = await resolveAll(store, recipients);

    const composer = new MailComposer({
      from: user.address,
      to: body.to,
      cc: body.cc,
      bcc: body.bcc,
      subject: body.subject,
      text: body.text ?? '',
      html: body.html,
      inReplyTo: body.inReplyTo,
      references: body.references,
      attachments: body.attachments?.map((a) => ({ filename: a.filename, contentType: a.contentType, content: Buffer.from(a.content, 'base64') })),
      // Content comes only from this request: never a file path or URL on the server.
      disableFileAccess: true,
      disableUrlAccess: true,
    });
    const message = composer.compile();
    const raw = await message.build();
    if (raw.length > maxBytes) throw new HttpError(413, `message is larger than ${maxBytes} bytes`);
    const result = await storeMessage(store, raw, resolved, { sender: user.address, sentCopyUserId: user.id });
    void reply.code(201);
    return { messageId: message.messageId(), size: raw.length, queued: result.outboundIds.length };
  });
}
