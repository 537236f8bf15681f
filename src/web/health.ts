// /healthz (alive: the store answers) and /readyz (should get traffic: store answers and this
// node is not draining). The gateway probes /healthz and reads `node` from it.
import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../service.js';
import type { Cluster, StoreHandle } from '../store/types.js';

export function healthRoutes(app: FastifyInstance, deps: ServiceDeps<StoreHandle & Cluster>): void {
  app.get('/healthz', async (_request, reply) => {
    try {
      await deps.store.ping();
    } catch (error) {
      deps.logger.warn({ err: (error as Error).message }, 'health check: store unavailable');
      return reply.code(503).send({ status: 'unavailable', error: (error as Error).message });
    }
    return { status: 'ok', store: deps.store.kind, node: deps.nodeId };
  });

  app.get('/readyz', async (_request, reply) => {
    let state = 'active';
    try {
      await deps.store.ping();
      const self = deps.nodeId === undefined ? undefined : (await deps.store.listMembers()).find((member) => member.id === deps.nodeId);
      // An operator's drain request counts at once, before the node's next beat obeys it.
      if (self) state = self.requestedState !== null && self.requestedState !== 'active' ? self.requestedState : self.state;
    } catch (error) {
      return reply.code(503).send({ status: 'unavailable', error: (error as Error).message });
    }
    if (state !== 'active') return reply.code(503).send({ status: state, node: deps.nodeId });
    return { status: 'ready', node: deps.nodeId };
  });
}
