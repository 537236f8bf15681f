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
