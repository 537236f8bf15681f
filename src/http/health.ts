// The node's HTTP port. For now /healthz (200 while the store answers); the web app and
// API join it later.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { splitHostPort } from '../config/config.js';
import type { Service, ServiceDeps } from '../service.js';

export async function startHttp(deps: ServiceDeps): Promise<Service> {
  const { host, port } = splitHostPort(deps.config.listen.http);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/healthz') {
      deps.store.ping().then(
        () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ status: 'ok', store: deps.store.kind, node: deps.nodeId }));
        },
        (error: Error) => {
          deps.logger.warn({ err: error.message }, 'health check: store unavailable');
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ status: 'unavailable', error: error.message }));
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    name: 'http',
    host,
    port: bound,
    async close() {
      server.closeIdleConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
