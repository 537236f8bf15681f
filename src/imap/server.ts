// The IMAP listener: accepts connections within the connection limits, runs a Session on
// each, and owns what sessions share: the change hub (one subscription to the store's
// change feed) and the parsed-message cache.
import net, { type Socket } from 'node:net';
import { splitHostPort } from '../config/config.js';
import { listen } from '../net/listen.js';
import { processMetrics } from '../metrics/metrics.js';
import { acceptClient, gatewayTrust } from '../net/gateway-link.js';
import type { Service, ServiceDeps } from '../service.js';
import { ChangeHub } from './hub.js';
import { MessageCache } from './message/parsed.js';
import { Session, type ImapContext } from './session.js';
import { status } from './writer.js';

// How long a refused connection may stay open to read its BYE.
const REFUSED_GRACE_MS = 2000;

export async function startImap(deps: ServiceDeps): Promise<Service> {
  const { host, port } = splitHostPort(deps.config.listen.imap);
  const limits = deps.config.limits;
  const log = deps.logger.child({ proto: 'imap' });
  const hub = new ChangeHub(deps.store);
  const metrics = processMetrics();
  const node = deps.nodeId ?? 'local';
  const accepted = metrics.connections.labels(node, 'imap');
  const context: ImapContext = { deps, log, hub, cache: new MessageCache(deps.store), metrics: { commands: metrics.commandsOf(node, 'imap'), auth: metrics.authOf(node, 'imap') } };
  const sessions = new Set<Session>();
  const sockets = new Set<Socket>();
  const perIp = new Map<string, number>();
  const trust = gatewayTrust(deps.config);
  let nextId = 1;
  let closing = false;

  function refuse(socket: Socket, reason: string): void {
    log.warn({ remote: socket.remoteAddress, reason }, 'connection refused');
    socket.end(status('*', 'BYE', `${reason}, try again later`, 'UNAVAILABLE'));
    setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
  }

  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Behind a gateway: the PROXY v1 line names the client, for limits, lockout and the plaintext rule.
    acceptClient(socket, trust, (error) => log.warn({ remote: socket.remoteAddress, err: error.message }, 'bad gateway link header'), accept, '* BYE [UNAVAILABLE] gateway link not authenticated\r\n');
  });

  // Per-address limits apply to clients, not to gateway links: the gateway applies them itself.
  function accept(socket: Socket, ip: string, viaGateway: boolean): void {
    const fromIp = viaGateway ? 0 : (perIp.get(ip) ?? 0);
    if (closing) return refuse(socket, 'server shutting down');
    if (sessions.size >= limits.connections) return refuse(socket, 'too many connections');
    if (fromIp >= limits.connectionsPerIp) return refuse(socket, 'too many connections from your address');
    if (!viaGateway) perIp.set(ip, fromIp + 1);
    accepted.inc();
    socket.setNoDelay(true);
    const session = new Session(context, socket, nextId++, false, ip);
    socket.resume(); // left paused after a PROXY header
    sessions.add(session);
    void session.done.finally(() => {
      sessions.delete(session);
      if (viaGateway) return;
      const count = (perIp.get(ip) ?? 1) - 1;
      if (count > 0) perIp.set(ip, count);
      else perIp.delete(ip);
    });
  }

  server.on('error', (error) => log.error({ err: error.message }, 'listener error'));

  const bound = await listen(server, host, port);

  return {
    name: 'imap',
    host,
    port: bound,
    connections: () => sessions.size,
    async close(deadline: Date) {
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.abort('server shutting down');
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, Math.min(deadline.getTime() - Date.now(), 2000)))));
      await Promise.race([Promise.allSettled([...sessions].map((session) => session.done)), timeout]);
      clearTimeout(timer);
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      hub.close();
      await stopped;
      log.info('imap stopped');
    },
  };
}
