// PROXY v1 headers on the HTTP port: a gateway that names its clients starts each connection
// with one line; a node takes it only from trusted gateways, and (unlike the mail ports)
// optionally, since the gateway's own /healthz probes come without one.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { fromTrustedGateway, readProxyHeader } from '../net/proxy-header.js';
import type { Logger } from '../util/logger.js';

const PREFIX = Buffer.from('PROXY ');
const HEADER_TIMEOUT_MS = 5_000;

/**
 * Puts PROXY-header reading in front of the HTTP server's connection handling. Returns the
 * client address a socket's header named, if any.
 */
export function acceptProxyHeaders(server: Server, trusted: readonly string[], logger: Logger): (socket: Socket) => string | undefined {
  const proxied = new WeakMap<Socket, string>();
  if (trusted.length === 0) return () => undefined;
  const handlers = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const handOver = (socket: Socket) => {
    socket.setTimeout(0);
    for (const handler of handlers) handler.call(server, socket);
    socket.resume();
  };
  server.on('connection', (socket: Socket) => {
    if (!fromTrustedGateway(socket.remoteAddress, trusted)) return handOver(socket);
    socket.setTimeout(HEADER_TIMEOUT_MS, () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      const head = chunk.subarray(0, PREFIX.length);
      if (!PREFIX.subarray(0, head.length).equals(head)) return handOver(socket);
      readProxyHeader(socket, HEADER_TIMEOUT_MS).then(
        (address) => {
          if (address) proxied.set(socket, address.remoteAddress);
          handOver(socket);
        },
        (error: Error) => {
          logger.warn({ remote: socket.remoteAddress, err: error.message }, 'bad PROXY header');
          socket.destroy();
        },
      );
      socket.resume(); // readProxyHeader reads in flowing mode, and pauses again when done
    });
  });
  return (socket) => proxied.get(socket);
}
