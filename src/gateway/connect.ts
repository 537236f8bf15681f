// A plain connection from the gateway to a node, given up after a timeout. Open connections are
// kept by the node's address, so that a node found hung can have them all cut at once. With a
// cluster secret, each starts with the gateway's proof (src/net/gateway-link.ts).
import net from 'node:net';
import { splitHostPort } from '../config/config.js';
import { gatewayHello } from '../net/gateway-link.js';

const open = new Map<string, Set<net.Socket>>();

export function connectNode(address: string, timeoutMs: number, secret?: string): Promise<net.Socket> {
  const { host, port } = splitHostPort(address);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    // Written ahead of everything else the link carries; sent once connected.
    if (secret) socket.write(gatewayHello(secret));
    const timer = setTimeout(() => socket.destroy(new Error('connect timeout')), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', reject);
      socket.setNoDelay(true);
      let sockets = open.get(address);
      if (!sockets) open.set(address, (sockets = new Set()));
      sockets.add(socket);
      // Watched from its first byte: what the link wrote before the watchdog's first look counts as owed.
      watched.set(socket, { written: 0, read: 0 });
      socket.once('close', () => {
        sockets.delete(socket);
        if (sockets.size === 0 && open.get(address) === sockets) open.delete(address);
      });
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/**
 * Cuts every open connection to these addresses (a node that stopped answering but whose
 * connections stay open: stopped, hung, or cut off). Each front end sees its link close, as when
 * the node dies, and moves or replays the session. The number of connections cut.
 */
export function dropConnections(addresses: Iterable<string>): number {
  let dropped = 0;
  for (const address of addresses) {
    for (const socket of open.get(address) ?? []) {
      socket.destroy();
      dropped++;
    }
  }
  return dropped;
}

/** What the watchdog last saw of a link: bytes each way, and since when a reply is owed. */
interface Watched {
  written: number;
  read: number;
  owedSince?: number;
}
const watched = new WeakMap<net.Socket, Watched>();

/**
 * Watches every open link for a node that owes a reply: the gateway wrote to it and has read
 * nothing back for longer than `overdueMs`. `onOverdue` is called with the node's address (at most
 * once per overdue stretch of a link); the caller decides with a fast probe whether the node hangs.
 * Returns a function that stops the watch.
 */
export function watchLinks(overdueMs: number, onOverdue: (address: string) => void): () => void {
  const tick = Math.max(10, Math.floor(overdueMs / 4));
  const timer = setInterval(() => {
    const now = Date.now();
    for (const [address, sockets] of open) {
      for (const socket of sockets) {
        let seen = watched.get(socket);
        if (!seen) watched.set(socket, (seen = { written: socket.bytesWritten, read: socket.bytesRead }));
        if (socket.bytesRead !== seen.read) {
          // The node said something: whatever was owed may be answered; a new write starts a new wait.
          seen.read = socket.bytesRead;
          seen.written = socket.bytesWritten;
          seen.owedSince = undefined;
          continue;
        }
        if (socket.bytesWritten !== seen.written) {
          seen.written = socket.bytesWritten;
          seen.owedSince ??= now;
        }
        if (seen.owedSince !== undefined && now - seen.owedSince > overdueMs) {
          seen.owedSince = Number.POSITIVE_INFINITY; // told once until the node speaks again
          onOverdue(address);
        }
      }
    }
  }, tick);
  timer.unref();
  return () => clearInterval(timer);
}
