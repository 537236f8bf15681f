// Live updates (server-sent events): the store's change feed, filtered to the session's
// user, so an open page sees mail arriving by SMTP and changes made over IMAP.
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../service.js';
import type { ChangeEvent, Directory, Mailstore, WebState } from '../store/types.js';
import { accountOf } from './sessions.js';

const KEEPALIVE_MS = 25_000;
/** A client this far behind is dropped (EventSource reconnects and the page reloads its lists). */
const MAX_BUFFERED_BYTES = 1024 * 1024;

export function eventRoutes(app: FastifyInstance, deps: ServiceDeps<Directory & WebState & Mailstore>, streams: Set<ServerResponse>): void {
  const { store } = deps;

  app.get('/events', async (request, reply) => {
    const { user, session } = accountOf(request);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    const send = (text: string) => {
      if (res.writableLength > MAX_BUFFERED_BYTES) res.destroy();
      else res.write(text);
    };
    const names = new Map<number, string | null>();
    const mailboxName = async (id: number | null) => {
      if (id === null) return null;
      if (!names.has(id)) names.set(id, (await store.getMailboxById(id))?.name ?? null);
      return names.get(id) ?? null;
    };
    // Events go out in feed order although naming a mailbox may take a store read.
    let previous = Promise.resolve();
    const onChange = (event: ChangeEvent) => {
      if (event.userId !== user.id) return;
      if (event.kind === 'mailbox') names.clear();
      previous = previous
        .then(() => mailboxName(event.mailboxId))
        .catch(() => null)
        .then((mailbox) => send(`event: ${event.kind}\ndata: ${JSON.stringify({ kind: event.kind, mailbox })}\n\n`));
    };
    const unsubscribe = store.onChange(onChange);
    // Keeps proxies from timing the stream out, and ends it once the session is gone (logout).
    const keepalive = setInterval(() => {
      store.getSession(session.idHash).then(
        (alive) => (alive ? send(': keepalive\n\n') : res.end()),
        () => send(': keepalive\n\n'),
      );
    }, KEEPALIVE_MS);
    streams.add(res);
    res.once('close', () => {
      clearInterval(keepalive);
      unsubscribe();
      streams.delete(res);
    });
    // Sent once subscribed: a client that sees it will not miss a later change.
    send('retry: 3000\n: subscribed\n\n');
  });
}
