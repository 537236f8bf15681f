// Prometheus metrics (prom-client): one registry per process, served on /metrics by every
// node's HTTP port and by the gateway's admin port. A process may run several nodes or a
// gateway beside nodes (tests, `quill start --nodes`), so every series carries the node's
// or gateway's id. Hot paths count through children made once per label set and kept, so
// no label object or array is built per command.
import { createHash, timingSafeEqual } from 'node:crypto';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

type Child = { inc(value?: number): void };
/** A gauge's value source: called at scrape time, sets one value per label set. */
export type GaugeSource = (set: (labels: Record<string, string>, value: number) => void) => void | Promise<void>;

/** A gauge filled at scrape time from the sources registered now (a closed node's disappear). */
function sourcedGauge(registry: Registry, name: string, help: string, labelNames: string[]): { gauge: Gauge<string>; sources: Set<GaugeSource> } {
  const sources = new Set<GaugeSource>();
  const gauge: Gauge<string> = new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect() {
      gauge.reset();
      const set = (labels: Record<string, string>, value: number) => gauge.set(labels, value);
      // A source that fails (the store is down) leaves its series out of this scrape.
      await Promise.all([...sources].map((source) => Promise.resolve().then(() => source(set)).catch(() => undefined)));
    },
  });
  return { gauge, sources };
}

/** Children of a counter keyed by a fixed first label set and one varying label, made on first use. */
export class CounterFamily {
  private readonly children = new Map<string, Child>();

  constructor(
    private readonly counter: Counter<string>,
    private readonly fixed: string[],
  ) {}

  /** The child for one value of the last label, made on the first call. */
  child(value: string): Child {
    let child = this.children.get(value);
    if (!child) {
      child = this.counter.labels(...this.fixed, value);
      this.children.set(value, child);
    }
    return child;
  }

  inc(value: string): void {
    this.child(value).inc();
  }
}

export interface GatewayCounters {
  sessions: Child;
  failovers: Child;
  refused: CounterFamily;
}

export class Metrics {
  readonly registry = new Registry();

  readonly connections = new Counter({
    name: 'quill_connections_total',
    help: 'Client connections (sessions) accepted, per protocol',
    labelNames: ['node', 'protocol'],
    registers: [this.registry],
  });
  private readonly openConnections = sourcedGauge(this.registry, 'quill_connections_open', 'Open client connections, per protocol', ['node', 'protocol']);

  readonly commands = new Counter({
    name: 'quill_commands_total',
    help: 'Protocol commands received, per protocol and command name',
    labelNames: ['node', 'protocol', 'command'],
    registers: [this.registry],
  });

  readonly authentications = new Counter({
    name: 'quill_authentications_total',
    help: 'Logins per protocol and result (ok, failed)',
    labelNames: ['node', 'protocol', 'result'],
    registers: [this.registry],
  });

  readonly passwordChecks = new Counter({
    name: 'quill_password_checks_total',
    help: 'Password checks by how they were answered: cached (a recently verified credential, no scrypt) or scrypt',
    labelNames: ['result'],
    registers: [this.registry],
  });

  readonly dnsQueries = new Counter({
    name: 'quill_dns_lookups_total',
    help: 'DNS lookups by outcome: hit, negative_hit (cached), shared (joined one in flight), miss (asked), timeout, error, truncated (retried over TCP)',
    labelNames: ['node', 'result'],
    registers: [this.registry],
  });

  readonly deliveries = new Counter({
    name: 'quill_deliveries_total',
    help: 'Messages by path (smtp, submission: stored or rejected; outbound: delivered, deferred or bounced per recipient)',
    labelNames: ['node', 'path', 'result'],
    registers: [this.registry],
  });

  private readonly queue = sourcedGauge(this.registry, 'quill_outbound_queue_messages', 'Outbound queue entries by status (the whole queue, as this node reads it)', ['node', 'status']);

  readonly storeSeconds = new Histogram({
    name: 'quill_store_seconds',
    help: 'Store call latency by operation',
    labelNames: ['node', 'operation'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly storeErrors = new Counter({
    name: 'quill_store_errors_total',
    help: 'Store calls that failed, by operation',
    labelNames: ['node', 'operation'],
    registers: [this.registry],
  });

  readonly commitChecks = new Counter({
    name: 'quill_store_commit_checks_total',
    help: 'Lookups of a COMMIT whose outcome was unknown (connection lost mid-COMMIT), by result (committed, absent, unknown)',
    labelNames: ['node', 'result'],
    registers: [this.registry],
  });

  readonly httpRequests = new Counter({
    name: 'quill_http_requests_total',
    help: 'Web requests by route and status code',
    labelNames: ['node', 'route', 'status'],
    registers: [this.registry],
  });

  readonly gatewaySessions = new Counter({
    name: 'quill_gateway_sessions_total',
    help: 'Client sessions a gateway accepted, per protocol',
    labelNames: ['gateway', 'protocol'],
    registers: [this.registry],
  });
  private readonly gatewayOpen = sourcedGauge(this.registry, 'quill_gateway_sessions_open', 'Client sessions open on a gateway, per protocol', ['gateway', 'protocol']);
  private readonly gatewayNodes = sourcedGauge(this.registry, 'quill_gateway_nodes', 'Nodes a gateway knows, by health (healthy, unhealthy)', ['gateway', 'health']);

  readonly gatewayRefused = new Counter({
    name: 'quill_gateway_refused_total',
    help: 'Clients a gateway refused, per protocol and reason',
    labelNames: ['gateway', 'protocol', 'reason'],
    registers: [this.registry],
  });

  readonly gatewayFailovers = new Counter({
    name: 'quill_gateway_failovers_total',
    help: 'Sessions a gateway replayed on another node after their node was lost, per protocol',
    labelNames: ['gateway', 'protocol'],
    registers: [this.registry],
  });

  constructor() {
    // Under their usual names (process_*, nodejs_*), so stock dashboards read them.
    collectDefaultMetrics({ register: this.registry });
  }

  /** Registers a source of open-connection figures; returns its removal. */
  watchConnections(source: GaugeSource): () => void {
    return add(this.openConnections.sources, source);
  }

  watchQueue(source: GaugeSource): () => void {
    return add(this.queue.sources, source);
  }

  watchGatewaySessions(source: GaugeSource): () => void {
    return add(this.gatewayOpen.sources, source);
  }

  watchGatewayNodes(source: GaugeSource): () => void {
    return add(this.gatewayNodes.sources, source);
  }

  /** Per-command counters of one protocol on one node: `commandsOf('n1', 'imap').inc('FETCH')`. */
  commandsOf(node: string, protocol: string): CounterFamily {
    return new CounterFamily(this.commands, [node, protocol]);
  }

  authOf(node: string, protocol: string): CounterFamily {
    return new CounterFamily(this.authentications, [node, protocol]);
  }

  dnsOf(node: string): CounterFamily {
    return new CounterFamily(this.dnsQueries, [node]);
  }

  deliveriesOf(node: string, path: string): CounterFamily {
    return new CounterFamily(this.deliveries, [node, path]);
  }

  commitChecksOf(node: string): CounterFamily {
    return new CounterFamily(this.commitChecks, [node]);
  }

  /** The counters one gateway listener moves: sessions accepted, clients refused (by reason), failovers. */
  gatewayCountersOf(gateway: string, protocol: string): GatewayCounters {
    return {
      sessions: this.gatewaySessions.labels(gateway, protocol),
      failovers: this.gatewayFailovers.labels(gateway, protocol),
      refused: new CounterFamily(this.gatewayRefused, [gateway, protocol]),
    };
  }

  /** The text exposition of every metric (Prometheus text format 0.0.4). */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

function add<T>(set: Set<T>, item: T): () => void {
  set.add(item);
  return () => void set.delete(item);
}

let instance: Metrics | undefined;

/**
 * The process's metrics. One registry per process is what a scraper expects of a port; the
 * parts reach it here rather than through every constructor, as a logger would be reached.
 */
export function processMetrics(): Metrics {
  return (instance ??= new Metrics());
}

/** A cache lasting `ttlMs` in front of a slow figure (the outbound queue read at scrape time). */
export function cached<T>(ttlMs: number, read: () => Promise<T>): () => Promise<T> {
  let value: { at: number; result: Promise<T> } | undefined;
  return () => {
    const now = Date.now();
    if (!value || now - value.at > ttlMs) {
      const result = read();
      value = { at: now, result };
      // A failed read is not kept: the next scrape tries again.
      result.catch(() => {
        if (value?.result === result) value = undefined;
      });
    }
    return value.result;
  };
}

/** Whether a scrape may read /metrics: always without a token, else `Authorization: Bearer <token>`. */
export function scrapeAllowed(authorization: string | undefined, token: string | undefined): boolean {
  if (token === undefined) return true;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!match) return false;
  const given = createHash('sha256').update(match[1]!).digest();
  return timingSafeEqual(given, createHash('sha256').update(token).digest());
}
