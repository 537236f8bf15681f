// GET /metrics on the node's HTTP port (Prometheus text format), and the count of every web
// request by route and status. Open by default (bind the port privately); with
// metrics.token set a scrape needs `Authorization: Bearer <token>`. A request a gateway
// carried in from its public HTTP port never gets them: scrapers talk to nodes directly (from
// any address, a gateway's host included).
import type { FastifyInstance } from 'fastify';
import { processMetrics, scrapeAllowed } from '../metrics/metrics.js';
import { fromTrustedGateway } from '../protocol/proxy-header.js';
import type { ServiceDeps } from '../service.js';

type Child = { inc(): void };

export function metricsRoutes(app: FastifyInstance, deps: ServiceDeps<unknown>): void {
  const metrics = processMetrics();
  const node = deps.nodeId ?? 'local';
  const token = deps.config.metrics.token;

  app.get('/metrics', async (request, reply) => {
    // The gateway's HTTP front end marks every request it carries with X-Forwarded-Proto (a client's own copy is
    // dropped there); a scraper on a gateway's host that connects directly is served.
    const carried = fromTrustedGateway(request.socket.remoteAddress, deps.config.trustedGateways) && request.headers['x-forwarded-proto'] !== undefined;
    if (carried) return reply.code(404).send({ error: 'not found' });
    if (!scrapeAllowed(request.headers.authorization, token)) {
      return reply.code(401).header('www-authenticate', 'Bearer realm="metrics"').send({ error: 'a bearer token is needed for /metrics' });
    }
    const text = await metrics.render();
    return reply.header('content-type', metrics.contentType).header('cache-control', 'no-store').send(text);
  });

  // Route templates (not raw URLs) keep the label set small; children are cached per route and status.
  const children = new Map<string, Map<number, Child>>();
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    let byStatus = children.get(route);
    if (!byStatus) children.set(route, (byStatus = new Map()));
    let child = byStatus.get(reply.statusCode);
    if (!child) byStatus.set(reply.statusCode, (child = metrics.httpRequests.labels(node, route, String(reply.statusCode))));
    child.inc();
  });
}
