// Address suggestions for To/Cc/Bcc from mail already exchanged (issue 21): the people the
// user wrote to (To and Cc of Sent) and heard from (From of INBOX), most often first, then
// most recent. Built once from the cached header summaries of the newest messages and kept
// per user until INBOX or Sent gets a new message (their UIDNEXT moves), so a keystroke costs
// one mailbox listing and a filter, never a read of the mailboxes.
import type { FastifyInstance } from 'fastify';
import type { Mailstore } from '../store/types.js';
import type { AddressOut } from './message-view.js';
import { accountOf } from './sessions.js';

/** Newest messages of each of INBOX and Sent that suggestions are built from. */
const CONTACT_SCAN = 2000;
/** Users whose suggestions are kept, least recently asked out first. */
const CONTACT_USERS = 1000;

interface Contact {
  name: string;
  address: string;
  count: number;
  last: number;
}

interface Headers {
  from: AddressOut[];
  to: AddressOut[];
  cc?: AddressOut[];
}

/** Words of a name or address a query may start: `bob`, `builder`, `example`, `example.com` of `Bob Builder <bob@example.com>`. */
function matches(contact: Contact, needle: string): boolean {
  const name = contact.name.toLowerCase();
  const domain = contact.address.slice(contact.address.lastIndexOf('@') + 1);
  if (name.startsWith(needle) || contact.address.startsWith(needle) || domain.startsWith(needle)) return true;
  return [...name.split(/[\s,."'()-]+/), ...contact.address.split(/[@._+-]+/)].some((word) => word.startsWith(needle));
}

export function contactRoutes(app: FastifyInstance, store: Mailstore, summaryOfBlob: (hash: string) => Promise<Headers | undefined>): void {
  const cache = new Map<number, { key: string; contacts: Promise<Contact[]> }>();

  async function build(own: string, received: number | undefined, sent: number | undefined): Promise<Contact[]> {
    const byAddress = new Map<string, Contact>();
    const count = (people: AddressOut[], at: number, weight: number) => {
      for (const person of people) {
        const address = person.address.toLowerCase();
        if (!address.includes('@') || address === own) continue;
        const known = byAddress.get(address) ?? { name: '', address, count: 0, last: 0 };
        known.count += weight;
        // The name most recently seen with the address.
        if (person.name && at >= known.last) known.name = person.name;
        known.last = Math.max(known.last, at);
        byAddress.set(address, known);
      }
    };
    for (const [mailboxId, fromSent] of [
      [received, false],
      [sent, true],
    ] as const) {
      if (mailboxId === undefined) continue;
      const metas = await store.listMessages(mailboxId);
      for (const meta of metas.slice(-CONTACT_SCAN)) {
        const summary = await summaryOfBlob(meta.blobHash);
        if (!summary) continue;
        const at = meta.internalDate.getTime();
        // Someone written to counts more than someone heard from.
        if (fromSent) count([...summary.to, ...(summary.cc ?? [])], at, 2);
        else count(summary.from, at, 1);
      }
    }
    return [...byAddress.values()].sort((a, b) => b.count - a.count || b.last - a.last);
  }

  app.get<{ Querystring: { q: string; limit: number } }>(
    '/contacts',
    {
      schema: {
        querystring: {
          type: 'object',
          required: ['q'],
          additionalProperties: false,
          properties: { q: { type: 'string', minLength: 1, maxLength: 200 }, limit: { type: 'integer', minimum: 1, maximum: 20, default: 8 } },
        },
      },
    },
    async (request) => {
      const { user } = accountOf(request);
      const mailboxes = await store.listMailboxes(user.id);
      const inbox = mailboxes.find((m) => m.name === 'INBOX');
      const sent = mailboxes.find((m) => m.specialUse === '\\Sent') ?? mailboxes.find((m) => m.name === 'Sent');
      const key = `${inbox?.id}:${inbox?.uidnext} ${sent?.id}:${sent?.uidnext}`;
      let entry = cache.get(user.id);
      if (entry?.key !== key) {
        entry = { key, contacts: build(user.address.toLowerCase(), inbox?.id, sent?.id) };
        entry.contacts.catch(() => cache.delete(user.id));
      }
      cache.delete(user.id);
      cache.set(user.id, entry);
      if (cache.size > CONTACT_USERS) cache.delete(cache.keys().next().value!);
      const needle = request.query.q.trim().toLowerCase();
      const contacts = needle ? (await entry.contacts).filter((c) => matches(c, needle)) : [];
      return { contacts: contacts.slice(0, request.query.limit).map(({ name, address }) => ({ name, address })) };
    },
  );
}
