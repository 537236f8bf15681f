// The POP3 listener (RFC 1939): accepts connections within the connection limits and runs a
// Session on each. Shutdown lets sessions in the UPDATE state finish their deletions.
import net, { type Socket } from 'node:net';
import { splitHostPort } from '../config/config.js';
import { listen } from '../net/listen.js';
import { processMetrics } from '../metrics/metrics.js';
import { acceptClient, gatewayTrust } from '../net/gateway-link.js';
import type { Service, ServiceDeps } from '../service.js';
import { RESP_CODE } from './errors.js';
import { CrlfCache, MaildropLocks } from './maildrop.js';
import { Session, type Pop3Store, type SessionContext } from './session.js';

// How long a refused connection may take to read its one line before it is destroyed.
const REFUSED_GRACE_MS = 5000;

export async function startPop3(deps: ServiceDeps<Pop3Store>): Promise<Service> {
  const { host, port } = splitHostPort(deps.config.listen.pop3);
  const limits = deps.config.limits;
  const log = deps.logger.child({ proto: 'pop3' });
  const metrics = processMetrics();
  const node = deps.nodeId ?? 'local';
  const accepted = metrics.connections.labels(node, 'pop3');
  const context: SessionContext = {
    deps,
    log,
    locks: new MaildropLocks(),
    crlf: new CrlfCache(),
    metrics: { commands: metrics.commandsOf(node, 'pop3'), auth: metrics.authOf(node, 'pop3') },
  };
  const sessions = new Set<Session>();
  const sockets = new Set<Socket>();
  const perIp = new Map<string, number>();
  const trust = gatewayTrust(deps.config);
  let nextId = 1;
  let closing = false;

  function refuse(socket: Socket, reason: string): void {
    log.warn({ remote: socket.remoteAddress, reason }, 'connection refused');
    socket.end(`-ERR ${RESP_CODE.sysTemp} ${reason}, try again later\r\n`);
    setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
  }

  // Per-address limits apply to clients, not to gateway links: the gateway applies them itself.
  function accept(socket: Socket, ip: string, viaGateway: boolean): void {
    const fromIp = viaGateway ? 0 : (perIp.get(ip) ?? 0);
    if (closing) return refuse(socket, 'server shutting down');
    if (sessions.size >= limits.connections) return refuse(socket, 'too many connections');
    if (fromIp >= limits.connectionsPerIp) return refuse(socket, 'too many connections from your address');
    if (!viaGateway) perIp.set(ip, fromIp + 1);
    accepted.inc();
    const session = new Session(context, socket, ip, nextId++);
    sessions.add(session);
    void session.done.finally(() => {
      sessions.delete(session);
      if (viaGateway) return;
      const count = (perIp.get(ip) ?? 1) - 1;
      if (count > 0) perIp.set(ip, count);
      else perIp.delete(ip);
    });
  }

  // allowHalfOpen: a client may send its last commands (QUIT) and close its side at once;
  // those commands still run.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined); // logged by the session; refused sockets just go
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Behind a gateway, limits, lockout and the loopback rule apply to the client's own address.
    acceptClient(socket, trust, (error) => log.warn({ remote: socket.remoteAddress, err: error.message }, 'bad gateway link header'), accept, '-ERR [AUTH] gateway link not authenticated\r\n');
  });
  server.on('error', (error) => log.error({ err: error.message }, 'listener error'));

  const bound = await listen(server, host, port);

  return {
    name: 'pop3',
    host,
    port: bound,
    connections: () => sessions.size,
    async close(deadline: Date) {
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      // Only sessions in UPDATE have work worth waiting for; the rest end without deleting.
      for (const session of sessions) if (session.state !== 'UPDATE') session.abort('shutdown');
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline.getTime() - Date.now()))));
      await Promise.race([Promise.allSettled([...sessions].map((session) => session.done)), timeout]);
      clearTimeout(timer);
      for (const session of sessions) session.abort('shutdown');
      for (const socket of sockets) socket.destroy(); // refused ones still reading their line
      await stopped;
      log.info('pop3 stopped');
    },
  };
}
