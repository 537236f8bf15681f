// The composition root: builds the store, TLS, authenticator and every protocol listener
// for one process (`quill start`), and tears them down in order.
import { hostname } from 'node:os';
import { Authenticator } from './auth/authenticator.js';
import { Membership, type StopRequest } from './cluster/membership.js';
import { watchFreezes } from './cluster/freeze.js';
import { CachingResolver, type Resolver } from './dns/resolver.js';
import { OutboundWorker } from './queue/worker.js';
import type { Config, ProtocolName } from './config/config.js';
import { startWeb } from './web/server.js';
import { startSmtp } from './smtp/mx.js';
import { startSubmission } from './smtp/submission.js';
import { startPop3 } from './pop3/server.js';
import { startImap } from './imap/server.js';
import type { Service, ServiceDeps } from './service.js';
import { openStore } from './store/open.js';
import type { PostgresOptions } from './store/postgres.js';
import { SqliteStore } from './store/sqlite.js';
import type { Store } from './store/types.js';
import { createLogger, type Logger } from './util/logger.js';
import { measuredStore } from './metrics/measured-store.js';
import { processMetrics } from './metrics/metrics.js';
import { watchNode } from './metrics/node-metrics.js';
import { configurePasswords } from './util/password.js';
import { loadTls } from './util/tls.js';
import { VERSION } from './version.js';

export interface RunningServer {
  store: Store;
  membership: Membership;
  services: Map<ProtocolName, Service>;
  /** Bound port of a protocol (handy when configured as 0). */
  port(name: ProtocolName): number;
  close(): Promise<void>;
}

type Starter = (deps: ServiceDeps) => Promise<Service>;

/** Protocol listeners, in start order. */
const STARTERS: [ProtocolName, Starter][] = [['smtp', startSmtp], ['submission', startSubmission], ['http', startWeb], ['pop3', startPop3], ['imap', startImap]];

/** A log line and a count for every lookup of a COMMIT whose outcome was unknown (PostgreSQL). */
function commitCheckReporter(logger: Logger, node: string): PostgresOptions['onCommitCheck'] {
  const checks = processMetrics().commitChecksOf(node);
  return ({ outcome, ms, marker }) => {
    checks.inc(outcome);
    const message = `commit outcome unknown: looked up, ${outcome === 'absent' ? 'not committed' : outcome}`;
    logger[outcome === 'unknown' ? 'warn' : 'info']({ part: 'store', marker, outcome, ms }, message);
  };
}

export { openStore };


export interface ServerOptions {
  logger?: Logger;
  store?: Store;
  /** This node's name in the membership; defaults to host name and process id. */
  nodeId?: string;
  /** DNS for outbound routing; tests pass a fake zone. */
  resolver?: Resolver;
  /**
   * Called after the server closed because an operator asked it to stop or restart (quill
   * admin stop/restart, the admin API); `quill start` exits then. Without it the server just closes.
   */
  onStopRequested?: (request: StopRequest) => void;
}

export async function startServer(config: Readonly<Config>, options: ServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createLogger(config.log.level);
  const nodeId = options.nodeId ?? `${hostname()}-${process.pid}`;
  if (config.trustedGateways.length > 0 && !config.cluster.secret) {
    logger.warn({ trustedGateways: config.trustedGateways }, 'no cluster.secret: gateways are believed by their address alone; anyone who can send from it can name any user (docs/deploy.md)');
  }
  // Every store call is timed for quill_store_seconds.
  const store = measuredStore(options.store ?? (await openStore(config, commitCheckReporter(logger, nodeId))), processMetrics(), nodeId);
  const tls = await loadTls(config.data, config.hostname, config.tls);
  configurePasswords({ scryptN: config.limits.passwordScryptN, concurrency: config.limits.passwordHashConcurrency });
  const auth = new Authenticator(store, config.limits);
  // One caching resolver for everything this node asks of DNS (config.dns).
  const ownResolver = options.resolver ? undefined : new CachingResolver(config.dns, processMetrics().dnsOf(nodeId));
  const resolver = options.resolver ?? ownResolver!;
  const deps: ServiceDeps = { config, store, logger, tls, auth, nodeId, resolver };
  const services = new Map<ProtocolName, Service>();
  const housekeeping = setInterval(() => {
    if (store instanceof SqliteStore) store.pruneChanges().catch(() => undefined);
  }, 60_000);
  housekeeping.unref();
  const unwatchMetrics = watchNode(processMetrics(), nodeId, store, services);

  const membershipAddresses: Record<string, string> = {};
  const membership = new Membership(
    store,
    { id: nodeId, kind: 'node', version: VERSION, addresses: membershipAddresses },
    () => Object.fromEntries([...services].map(([name, service]) => [name, service.connections?.() ?? 0])),
    logger,
  );

  const worker = config.outbound.enabled ? new OutboundWorker({ store, config, logger: logger.child({ part: 'queue' }), resolver, nodeId }) : undefined;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      clearInterval(housekeeping);
      unwatchMetrics();
      await membership.stop();
      await worker?.stop();
      const deadline = new Date(Date.now() + config.shutdownTimeoutSeconds * 1000);
      await Promise.allSettled([...services.values()].map((service) => service.close(deadline)));
      if (!options.store) await store.close();
      ownResolver?.close();
    })());

  membership.onStopRequest((request) => {
    close().then(
      () => options.onStopRequested?.(request),
      (error: unknown) => logger.error({ err: error }, 'closing on request failed'),
    );
  });

  try {
    for (const [name, start] of STARTERS) {
      const service = await start(deps);
      services.set(name, service);
      logger.info({ protocol: name, host: service.host, port: service.port }, `${name} listening`);
    }
  } catch (error) {
    await close();
    throw error;
  }
  for (const [name, service] of services) membershipAddresses[name] = `${service.host}:${service.port}`;
  await membership.start();
  // Sessions a gateway opened are dropped after a freeze long enough for it to have moved them (freeze.ts).
  watchFreezes();
  worker?.start();

  return {
    store,
    membership,
    services,
    port(name) {
      const service = services.get(name);
      if (!service) throw new Error(`${name} is not running`);
      return service.port;
    },
    close,
  };
}
