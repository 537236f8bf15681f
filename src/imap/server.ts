// The IMAP listener: accepts connections within the connection limits, runs a Session on
// each, and owns what sessions share: the change hub (one subscription to the store's
// change feed) and the parsed-message cache. With imap.processes > 1 on the embedded SQLite
// store the sessions run in child processes instead (processes.ts); this process accepts.
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

/** Refuses a connection with a BYE it may read before the hang-up. */
export function refuseConnection(socket: Socket, reason: string): void {
  socket.end(status('*', 'BYE', `${reason}, try again later`, 'UNAVAILABLE'));
  setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
}

/** What runs IMAP sessions on accepted sockets: in the listening process, or in an IMAP child process. */
export interface SessionHost {
  /** Reads the gateway link header if the peer is a gateway, then runs a session (`admit` may refuse first). */
  take(socket: Socket, admit?: (ip: string, viaGateway: boolean) => string | undefined, ended?: () => void): void;
  readonly sessions: number;
  close(deadline: Date): Promise<void>;
}

/** `sharedStore`: other processes write to the store too (an IMAP child process): each command reads their changes first. */
export function sessionHost(deps: ServiceDeps, options: { sharedStore?: boolean } = {}): SessionHost {
  const log = deps.logger.child({ proto: 'imap' });
  const hub = new ChangeHub(deps.store);
  const metrics = processMetrics();
  const node = deps.nodeId ?? 'local';
  const accepted = metrics.connections.labels(node, 'imap');
  const context: ImapContext = { deps, log, hub, cache: new MessageCache(deps.store), metrics: { commands: metrics.commandsOf(node, 'imap'), auth: metrics.authOf(node, 'imap') }, syncFirst: options.sharedStore };
  const sessions = new Set<Session>();
  const sockets = new Set<Socket>();
  const trust = gatewayTrust(deps.config);
  let nextId = 1;
  let closing = false;

  return {
    get sessions() {
      return sessions.size;
    },
    take(socket, admit, ended) {
      socket.on('error', () => undefined);
      sockets.add(socket);
      let done = false;
      const end = () => {
        if (done) return;
        done = true;
        ended?.();
      };
      socket.once('close', () => {
        sockets.delete(socket);
        end();
      });
      // Behind a gateway: the PROXY v1 line names the client, for limits, lockout and the plaintext rule.
      const onBadHeader = (error: Error) => log.warn({ remote: socket.remoteAddress, err: error.message }, 'bad gateway link header');
      acceptClient(
        socket,
        trust,
        onBadHeader,
        (socket, ip, viaGateway) => {
          const refusal = closing ? 'server shutting down' : admit?.(ip, viaGateway);
          if (refusal) {
            log.warn({ remote: socket.remoteAddress, reason: refusal }, 'connection refused');
            return refuseConnection(socket, refusal);
          }
          accepted.inc();
          socket.setNoDelay(true);
          const session = new Session(context, socket, nextId++, false, ip);
          socket.resume(); // left paused after a PROXY header (and by a hand-over from the listening process)
          sessions.add(session);
          void session.done.finally(() => {
            sessions.delete(session);
            end();
          });
        },
        '* BYE [UNAVAILABLE] gateway link not authenticated\r\n',
      );
    },
    async close(deadline) {
      closing = true;
      for (const session of sessions) session.abort('server shutting down');
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, Math.min(deadline.getTime() - Date.now(), 2000)))));
      await Promise.race([Promise.allSettled([...sessions].map((session) => session.done)), timeout]);
      clearTimeout(timer);
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      hub.close();
    },
  };
}

export async function startImap(deps: ServiceDeps): Promise<Service> {
  if (deps.config.imap.processes > 1 && (deps.store as { kind?: string }).kind === 'sqlite' && !deps.config.store.url) {
    const { startImapProcesses } = await import('./processes.js');
    return startImapProcesses(deps, deps.config.imap.processes);
  }
  const { host, port } = splitHostPort(deps.config.listen.imap);
  const limits = deps.config.limits;
  const log = deps.logger.child({ proto: 'imap' });
  const sessionsHere = sessionHost(deps);
  const perIp = new Map<string, number>();
  let closing = false;

  // Per-address limits apply to clients, not to gateway links: the gateway applies them itself.
  function admit(ip: string, viaGateway: boolean): string | undefined {
    if (closing) return 'server shutting down';
    if (sessionsHere.sessions >= limits.connections) return 'too many connections';
    if (viaGateway) return undefined;
    const fromIp = perIp.get(ip) ?? 0;
    if (fromIp >= limits.connectionsPerIp) return 'too many connections from your address';
    perIp.set(ip, fromIp + 1);
    return undefined;
  }

  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    let counted: string | undefined;
    sessionsHere.take(
      socket,
      (ip, viaGateway) => {
        const refusal = admit(ip, viaGateway);
        if (!refusal && !viaGateway) counted = ip;
        return refusal;
      },
      () => {
        if (counted === undefined) return;
        const count = (perIp.get(counted) ?? 1) - 1;
        if (count > 0) perIp.set(counted, count);
        else perIp.delete(counted);
      },
    );
  });

  server.on('error', (error) => log.error({ err: error.message }, 'listener error'));

  const bound = await listen(server, host, port);

  return {
    name: 'imap',
    host,
    port: bound,
    connections: () => sessionsHere.sessions,
    async close(deadline: Date) {
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await sessionsHere.close(deadline);
      await stopped;
      log.info('imap stopped');
    },
  };
}
