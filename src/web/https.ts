// listen.https: the node's web app and API over TLS on a second port, with the node's
// certificate (src/util/tls.ts). The same Fastify instance answers both ports; a request that
// came over TLS is `request.protocol === 'https'`, which is what gives cookies `Secure`.
import https from 'node:https';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { splitHostPort } from '../config/config.js';
import { listen } from '../net/listen.js';
import type { TlsMaterial } from '../util/tls.js';

export interface HttpsListener {
  readonly port: number;
  connections(): number;
  /** Stops accepting; requests in flight may finish until the deadline, then their connections are cut. */
  close(deadline: Date): Promise<void>;
}

export async function startHttps(app: FastifyInstance, address: string, tls: TlsMaterial): Promise<HttpsListener> {
  const { host, port } = splitHostPort(address);
  const server = https.createServer({ key: tls.key, cert: tls.cert }, app.routing);
  // The plain port's socket limits, so neither port is the easier one to hold open.
  server.setTimeout(app.initialConfig.connectionTimeout ?? 0);
  server.keepAliveTimeout = app.initialConfig.keepAliveTimeout ?? 72_000;
  server.requestTimeout = 0;
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', (_error, socket) => socket.destroy());
  const bound = await listen(server, host, port);
  return {
    port: bound,
    connections: () => sockets.size,
    async close(deadline) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const cut = setTimeout(() => server.closeAllConnections(), Math.max(0, deadline.getTime() - Date.now()));
      await closed;
      clearTimeout(cut);
    },
  };
}
