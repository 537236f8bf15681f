// The gateway's own small HTTP endpoint (config gateway.adminListen, `quill gateway --admin`):
// GET /healthz (the process answers), /readyz (the store answers and at least one live node
// can take sessions) and /metrics (Prometheus text; a bearer token when metrics.token is set).
// Its public HTTP port is the nodes' web app; this one is for operators and load balancers.
import http from 'node:http';
import { splitHostPort } from '../config/config.js';
import { Counter } from 'prom-client';
import { processMetrics, scrapeAllowed, type Metrics } from '../metrics/metrics.js';
import { listen } from '../net/listen.js';
import type { StoreHandle } from '../store/types.js';
import type { Logger } from '../util/logger.js';
import type { NodeDirectory } from './directory.js';
import { gatewayStats } from './imap-front.js';

export interface GatewayAdmin {
  readonly port: number;
  close(): Promise<void>;
}

export interface GatewayAdminDeps {
  address: string;
  gatewayId: string;
  store: StoreHandle;
  directory: NodeDirectory;
  token: string | undefined;
  logger: Logger;
}

/** Nodes able to take new sessions now: healthy at the last probe and active. */
export function liveNodes(directory: NodeDirectory): number {
  return directory.list().filter((node) => node.healthy && !node.stale && node.member.state === 'active').length;
}

/** Open sessions per protocol and known nodes by health, read at scrape time; returns the removal. */
export function watchGateway(metrics: Metrics, gateway: string, directory: NodeDirectory, sessions: () => Iterable<[string, number]>): () => void {
  const stopSessions = metrics.watchGatewaySessions((set) => {
    // A protocol with a plain and an implicit-TLS listener counts both.
    const open = new Map<string, number>();
    for (const [protocol, count] of sessions()) open.set(protocol, (open.get(protocol) ?? 0) + count);
    for (const [protocol, count] of open) set({ gateway, protocol }, count);
  });
  exportImapFrontStats(metrics);
  const stopNodes = metrics.watchGatewayNodes((set) => {
    const nodes = directory.list();
    const healthy = nodes.filter((node) => node.healthy && !node.stale).length;
    set({ gateway, health: 'healthy' }, healthy);
    set({ gateway, health: 'unhealthy' }, nodes.length - healthy);
  });
  return () => {
    stopSessions();
    stopNodes();
  };
}

let imapStatsExported = false;

/** The IMAP front end's process-wide counters (gatewayStats), read at scrape time. */
function exportImapFrontStats(metrics: Metrics): void {
  if (imapStatsExported) return;
  imapStatsExported = true;
  const events: [keyof typeof gatewayStats, string][] = [
    ['imapFailovers', 'failover'],
    ['imapMigrations', 'drain_migration'],
    ['imapReplays', 'command_replayed'],
    ['imapFailoverByes', 'failover_bye'],
    ['imapReconciled', 'reconciled_response'],
  ];
  const counter: Counter<'event'> = new Counter({
    name: 'quill_gateway_imap_events_total',
    help: "The gateway IMAP front end's session moves: failovers, moves off draining nodes, replayed commands, moves ended in BYE, responses sent to reconcile views",
    labelNames: ['event'],
    registers: [metrics.registry],
    collect() {
      counter.reset();
      for (const [key, event] of events) counter.inc({ event }, gatewayStats[key]);
    },
  });
}

function send(res: http.ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export async function startGatewayAdmin(deps: GatewayAdminDeps): Promise<GatewayAdmin> {
  const metrics = processMetrics();
  const gateway = deps.gatewayId;

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'only GET' });
    switch (path) {
      case '/healthz':
        return send(res, 200, { status: 'ok', gateway });
      case '/readyz': {
        try {
          await deps.store.ping();
        } catch (error) {
          return send(res, 503, { status: 'unavailable', gateway, error: (error as Error).message });
        }
        const nodes = liveNodes(deps.directory);
        if (nodes === 0) return send(res, 503, { status: 'no live node', gateway, nodes });
        return send(res, 200, { status: 'ready', gateway, nodes });
      }
      case '/metrics':
        if (!scrapeAllowed(req.headers.authorization, deps.token)) {
          res.setHeader('www-authenticate', 'Bearer realm="metrics"');
          return send(res, 401, { error: 'a bearer token is needed for /metrics' });
        }
        return send(res, 200, await metrics.render(), metrics.contentType);
      default:
        return send(res, 404, { error: 'not found' });
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      deps.logger.warn({ err: (error as Error).message }, 'gateway admin: request failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  const { host, port } = splitHostPort(deps.address);
  const bound = await listen(server, host, port);
  deps.logger.info({ port: bound }, 'gateway: admin endpoint listening (/metrics, /healthz, /readyz)');
  return {
    port: bound,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
