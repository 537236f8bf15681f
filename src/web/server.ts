// The node's HTTP port (Fastify): /healthz and /readyz, and the JSON API under /api for the
// browser (accounts, webmail, live events).
import Fastify, { type FastifyBaseLogger } from 'fastify';
import cookie from '@fastify/cookie';
import { splitHostPort } from '../config/config.js';
import type { Service, ServiceDeps } from '../service.js';
import { errorHandler } from './errors.js';
import { healthRoutes } from './health.js';

export async function startWeb(deps: ServiceDeps): Promise<Service> {
  const { host, port } = splitHostPort(deps.config.listen.http);
  const logger = deps.logger.child({ part: 'web' });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    disableRequestLogging: true,
    requestTimeout: 30_000,
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

  let open = 0;
  app.server.on('connection', (socket) => {
    open++;
    socket.once('close', () => open--);
  });

  healthRoutes(app, deps);

  await app.listen({ host, port });
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  return {
    name: 'http',
    host,
    port: bound,
    connections: () => open,
    async close() {
      await app.close();
    },
  };
}

