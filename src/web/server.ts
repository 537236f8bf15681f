// The node's HTTP port (Fastify): /healthz and /readyz, the single-page app, and the JSON
// API under /api for it (accounts, webmail, live events).
import type { ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import cookie from '@fastify/cookie';
import { splitHostPort } from '../config/config.js';
import { gatewayTrust, isGatewayLink } from '../net/gateway-link.js';
import type { Service, ServiceDeps } from '../service.js';
import { errorHandler } from './errors.js';
import { accountRoutes } from './accounts.js';
import { adminRoutes } from './admin.js';
import { eventRoutes } from './events.js';
import { healthRoutes } from './health.js';
import { startHttps } from './https.js';
import { metricsRoutes } from './metrics.js';
import { driveRoutes } from './drive.js';
import { acceptProxyHeaders } from './proxy.js';
import { mailRoutes } from './mail.js';
import { collectOpenApi } from './openapi.js';
import { sendRoutes } from './send.js';
import { requireAccount } from './sessions.js';
import { staticRoutes } from './static.js';

/** The web service; `httpsPort` is set when listen.https is. */
export interface WebService extends Service {
  readonly httpsPort?: number;
}

export async function startWeb(deps: ServiceDeps): Promise<WebService> {
  const { host, port } = splitHostPort(deps.config.listen.http);
  const logger = deps.logger.child({ part: 'web' });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // No limit on a whole request: a multi-GB drive upload (src/web/drive.ts) takes as long as
    // it takes, and Node's requestTimeout cannot be set per route. Slow or stalled clients are
    // cut instead by the headers timeout (Node's 60 s default, still enforced when
    // requestTimeout is 0) and by an idle-socket timeout: 60 s with no byte either way (the
    // event stream's keepalive comes every 25 s).
    requestTimeout: 0,
    connectionTimeout: 60_000,
    // Unknown keys are refused (400), not silently dropped.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
  });
  // Only JSON bodies: a cross-site form post (text/plain) cannot reach a handler without a preflight.
  app.removeContentTypeParser('text/plain');
  await app.register(cookie);
  app.setErrorHandler(errorHandler(logger));
  app.setNotFoundHandler((_request, reply) => {
    void reply.code(404).send({ error: 'not found' });
  });

  // Behind a gateway, lockout and limits apply to the client's own address.
  const proxiedAddress = acceptProxyHeaders(app.server, gatewayTrust(deps.config), logger);
  app.decorateRequest('clientIp', '');
  app.decorateRequest('overTls', false);
  app.addHook('onRequest', async (request) => {
    request.clientIp = proxiedAddress(request.socket) ?? request.ip;
    // TLS ends at the gateway; its HTTP front end says how the browser came (a client's own header is dropped there).
    const viaGateway = isGatewayLink(request.socket);
    request.overTls = request.protocol === 'https' || (viaGateway && request.headers['x-forwarded-proto'] === 'https');
  });

  let open = 0;
  app.server.on('connection', (socket) => {
    open++;
    socket.once('close', () => open--);
  });

  healthRoutes(app, deps);
  metricsRoutes(app, deps);
  staticRoutes(app);

  const streams = new Set<ServerResponse>();
  await app.register(
    async (api) => {
      const openApi = collectOpenApi(api, '/api');
      api.get('/openapi.json', { config: { public: true } }, async () => openApi());
      api.decorateRequest('account', null);
      api.addHook('onRequest', requireAccount(deps.store));
      api.addHook('onSend', async (_request, reply, payload) => {
        void reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff');
        return payload;
      });
      accountRoutes(api, deps);
      mailRoutes(api, deps);
      sendRoutes(api, deps);
      driveRoutes(api, deps);
      eventRoutes(api, deps, streams);
      await api.register((admin) => adminRoutes(admin, deps), { prefix: '/admin' });
    },
    { prefix: '/api' },
  );

  await app.listen({ host, port });
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  const https = deps.config.listen.https ? await startHttps(app, deps.config.listen.https, deps.tls).catch((error: unknown) => app.close().then(() => Promise.reject(error))) : undefined;
  if (https) logger.info({ port: https.port }, 'https listening');
  return {
    name: 'http',
    host,
    port: bound,
    httpsPort: https?.port,
    connections: () => open + (https?.connections() ?? 0),
    async close(deadline) {
      for (const stream of streams) stream.end();
      const httpsClosed = https?.close(deadline);
      // Requests in flight may finish until the deadline; then their connections are cut.
      const cut = setTimeout(() => app.server.closeAllConnections(), Math.max(0, deadline.getTime() - Date.now()));
      await app.close();
      await httpsClosed;
      clearTimeout(cut);
    },
  };
}

