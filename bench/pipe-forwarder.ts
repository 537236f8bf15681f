// The least a Node.js forwarder can do, as a floor for the gateway's cost in bench/gateway.ts:
// accept, connect to the node, send the PROXY v1 line, and pipe both ways without looking at a byte.
//   node --import tsx bench/pipe-forwarder.ts LISTEN_PORT NODE_PORT [LISTEN_PORT NODE_PORT ...]
import net from 'node:net';
import { proxyLine } from '../src/protocol/proxy-header.js';

const args = process.argv.slice(2).map(Number);
for (let i = 0; i + 1 < args.length; i += 2) {
  const nodePort = args[i + 1]!;
  net
    .createServer({ noDelay: true }, (client) => {
      const upstream = net.connect({ host: '127.0.0.1', port: nodePort, noDelay: true });
      upstream.write(proxyLine(client));
      client.pipe(upstream).on('error', () => undefined);
      upstream.pipe(client).on('error', () => undefined);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    })
    .listen(args[i], '127.0.0.1');
}
