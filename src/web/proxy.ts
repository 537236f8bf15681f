// PROXY v1 headers on the HTTP port: a gateway that names its clients starts each connection
// with one line; a node takes it only from trusted gateways, and (unlike the mail ports)
// optionally, since the gateway's own /healthz probes come without one.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { expectsGatewayLink, HELLO_VERB, markGatewayLink, readGatewayHello, type GatewayTrust } from '../net/gateway-link.js';
import { readProxyHeader } from '../protocol/proxy-header.js';
import type { Logger } from '../util/logger.js';

const PREFIX = Buffer.from('PROXY ');
const HEADER_TIMEOUT_MS = 5_000;

/**
 * Puts PROXY-header reading in front of the HTTP server's connection handling. Returns the
 * client address a socket's header named, if any. A connection from a trusted address is a
 * gateway link (src/net/gateway-link.ts: its forwarded headers are believed) when it starts with
 * the cluster secret's proof, or, with no secret configured, by its address alone; one without
 * the proof is served as any client's.
 */
export function acceptProxyHeaders(server: Server, trust: GatewayTrust, logger: Logger): (socket: Socket) => string | undefined {
  const proxied = new WeakMap<Socket, string>();
  if (trust.trusted.length === 0) return () => undefined;
  const handlers = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const handOver = (socket: Socket) => {
    socket.setTimeout(0);
    for (const handler of handlers) handler.call(server, socket);
    socket.resume();
  };
  const fail = (socket: Socket, error: Error) => {
    logger.warn({ remote: socket.remoteAddress, err: error.message }, 'bad gateway link header');
    socket.destroy();
  };
  /** The PROXY line, if the connection starts with one; then the HTTP server. */
  const proxyThenServe = (socket: Socket) =>
    firstBytes(socket, (chunk) => {
      if (!startsWith(chunk, PREFIX)) return handOver(socket);
      readProxyHeader(socket, HEADER_TIMEOUT_MS).then(
        (address) => {
          if (address) proxied.set(socket, address.remoteAddress);
          handOver(socket);
        },
        (error: Error) => fail(socket, error),
      );
      socket.resume(); // readProxyHeader reads in flowing mode, and pauses again when done
    });
  server.on('connection', (socket: Socket) => {
    if (!expectsGatewayLink(trust, socket.remoteAddress)) return handOver(socket);
    socket.setTimeout(HEADER_TIMEOUT_MS, () => socket.destroy());
    if (!trust.proofs) {
      markGatewayLink(socket);
      return proxyThenServe(socket);
    }
    firstBytes(socket, (chunk) => {
      // Without the proof: an ordinary client (the gateway's own /healthz probe, or anyone).
      if (!startsWith(chunk, HELLO)) return handOver(socket);
      readGatewayHello(socket, trust, HEADER_TIMEOUT_MS).then(
        () => {
          markGatewayLink(socket);
          proxyThenServe(socket);
        },
        (error: Error) => fail(socket, error),
      );
    });
  });
  return (socket) => proxied.get(socket);
}

const HELLO = Buffer.from(`${HELLO_VERB} `);

/** Calls `then` with the socket's first bytes, put back and the socket paused. */
function firstBytes(socket: Socket, then: (chunk: Buffer) => void): void {
  socket.once('data', (chunk: Buffer) => {
    socket.pause();
    socket.unshift(chunk);
    then(chunk);
  });
  socket.resume();
}

/** Whether the bytes so far agree with the prefix (a short first read counts as agreeing). */
function startsWith(chunk: Buffer, prefix: Buffer): boolean {
  const head = chunk.subarray(0, prefix.length);
  return prefix.subarray(0, head.length).equals(head);
}
