// The outbound queue worker. Every node runs one; entries are leased in the store so no
// message is sent by two nodes, and a node that dies mid-send simply lets its lease run
// out so another node retries. Recipients of one message to one domain share one SMTP
// transaction. Temporary failures are retried with backoff; permanent ones and expiry are
// reported to the sender with a DSN (RFC 3464), never for a bounce itself.
import { randomBytes } from 'node:crypto';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import type { Config } from '../config/config.js';
import { dkimSignature } from '../mailauth/sign.js';
import type { Blobs, Directory, Mailstore, OutboundEntry, Queue } from '../store/types.js';
import type { Logger } from '../util/logger.js';
import { processMetrics, type CounterFamily } from '../metrics/metrics.js';
import { buildDsn, type DsnRecipient } from './dsn.js';
import type { Resolver } from '../dns/resolver.js';
import { NoRouteError, routeFor, type Hop } from './route.js';

const LEASE_MS = 10 * 60_000;

export interface WorkerDeps {
  /** The queue it works through, the bytes it sends, and delivery for bounces (DSNs) to local senders. */
  store: Queue & Blobs & Directory & Mailstore;
  config: Readonly<Config>;
  logger: Logger;
  resolver: Resolver;
  /** This worker's lease name; unique per process. */
  owner?: string;
  /** The node's id, for the metrics' node label. */
  nodeId?: string;
}

type Outcome = { kind: 'delivered' } | { kind: 'permanent'; diagnostic: string; remoteMta?: string } | { kind: 'temporary'; diagnostic: string; remoteMta?: string };

interface SmtpFailure extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  recipient?: string;
}

function describe(error: SmtpFailure): string {
  return error.response ?? error.message;
}

/** Runs one SMTP transaction on one hop; per-recipient outcomes, or throws for a connection-level failure. */
/** Opens a connection to a hop and logs in when the hop wants it. */
function openConnection(hop: Hop, heloName: string, timeoutMs: number): Promise<SMTPConnection> {
  return new Promise((resolve, reject) => {
    const connection = new SMTPConnection({
      host: hop.host,
      port: hop.port,
      name: heloName,
      secure: hop.implicitTls ?? false,
      // Opportunistic STARTTLS: use it when offered, accept any certificate (RFC 3207 4.1).
      opportunisticTLS: true,
      tls: { rejectUnauthorized: false, servername: hop.name },
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
    });
    let settled = false;
    const fail = (error: SmtpFailure) => {
      if (settled) return;
      settled = true;
      connection.close();
      reject(error);
    };
    connection.once('error', fail);
    connection.connect((connectError) => {
      if (connectError) return fail(connectError as SmtpFailure);
      const ready = () => {
        settled = true;
        connection.removeListener('error', fail);
        connection.on('error', () => undefined); // later errors reach the send callback
        resolve(connection);
      };
      if (hop.auth) connection.login(hop.auth, (loginError) => (loginError ? fail(loginError as SmtpFailure) : ready()));
      else ready();
    });
  });
}

/** One transaction on an open connection: per-recipient outcomes, or the error that ended it. */
function sendOn(connection: SMTPConnection, hop: Hop, sender: string, recipients: string[], raw: Buffer): Promise<Map<string, Outcome>> {
  return new Promise((resolve, reject) => {
    connection.send({ from: sender, to: recipients, size: raw.length, use8BitMime: true }, raw, (error, info) => {
      if (error) return reject(error as SmtpFailure);
      const outcomes = new Map<string, Outcome>();
      for (const recipient of info.accepted) outcomes.set(recipient, { kind: 'delivered' });
      for (const rejected of (info.rejectedErrors ?? []) as SmtpFailure[]) {
        const recipient = rejected.recipient ?? '';
        const code = rejected.responseCode ?? 0;
        outcomes.set(recipient, { kind: code >= 500 ? 'permanent' : 'temporary', diagnostic: describe(rejected), remoteMta: hop.name });
      }
      for (const recipient of info.rejected) {
        if (!outcomes.has(recipient)) outcomes.set(recipient, { kind: 'temporary', diagnostic: info.response, remoteMta: hop.name });
      }
      resolve(outcomes);
    });
  });
}

/**
 * Idle connections kept a moment for the next message to the same host (as Postfix's
 * connection cache does): a new connection costs a handshake, and receivers often wait
 * before greeting. A connection is used by one transaction at a time.
 */
class ConnectionCache {
  private readonly idle = new Map<string, { connection: SMTPConnection; timer: NodeJS.Timeout; onEnd: () => void }[]>();

  constructor(private readonly keepMs: number) {}

  take(key: string): SMTPConnection | undefined {
    const list = this.idle.get(key);
    const entry = list?.pop();
    if (!entry) return undefined;
    clearTimeout(entry.timer);
    entry.connection.removeListener('end', entry.onEnd);
    return entry.connection;
  }

  give(key: string, connection: SMTPConnection): void {
    const list = this.idle.get(key) ?? [];
    this.idle.set(key, list);
    const entry = {
      connection,
      timer: setTimeout(() => {
        list.splice(list.indexOf(entry), 1);
        connection.removeListener('end', entry.onEnd);
        quit(connection);
      }, this.keepMs),
      // The server closed it while idle: forget it.
      onEnd: () => {
        const at = list.indexOf(entry);
        if (at >= 0) {
          clearTimeout(entry.timer);
          list.splice(at, 1);
        }
      },
    };
    entry.timer.unref();
    connection.once('end', entry.onEnd);
    list.push(entry);
  }

  closeAll(): void {
    for (const list of this.idle.values()) {
      for (const { connection, timer, onEnd } of list.splice(0)) {
        clearTimeout(timer);
        connection.removeListener('end', onEnd);
        quit(connection);
      }
    }
  }
}

function quit(connection: SMTPConnection): void {
  try {
    connection.quit();
  } catch {
    connection.close();
  }
}

/** Messages per destination domain in the last minute (a sliding window), for outbound.perDomainPerMinute. */
class DomainRate {
  private readonly sent = new Map<string, number[]>();

  constructor(private readonly perMinute: number) {}

  /** Milliseconds until the domain may take another message; 0 when it may now. */
  wait(domain: string, now = Date.now()): number {
    if (this.perMinute === 0) return 0;
    const recent = (this.sent.get(domain) ?? []).filter((t) => now - t < 60_000);
    this.sent.set(domain, recent);
    return recent.length < this.perMinute ? 0 : recent[0]! + 60_000 - now;
  }

  take(domain: string, now = Date.now()): void {
    if (this.perMinute === 0) return;
    this.sent.get(domain)?.push(now) ?? this.sent.set(domain, [now]);
  }
}

export class OutboundWorker {
  private readonly owner: string;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly rate: DomainRate;
  private readonly connections = new ConnectionCache(2_000);
  /** quill_deliveries_total{path="outbound"}: delivered, deferred, bounced per recipient. */
  private readonly outcomes: CounterFamily;

  constructor(private readonly deps: WorkerDeps) {
    this.owner = deps.owner ?? `worker-${randomBytes(6).toString('hex')}`;
    this.outcomes = processMetrics().deliveriesOf(deps.nodeId ?? this.owner, 'outbound');
    this.rate = new DomainRate(deps.config.outbound.perDomainPerMinute);
  }

  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      this.running = this.runOnce()
        .catch((error: Error) => this.deps.logger.warn({ err: error.message }, 'outbound queue run failed'))
        .then(() => undefined)
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.deps.config.outbound.pollIntervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops taking new work and waits for the sends in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    this.connections.closeAll();
  }

  /** Leases due entries and works through them; returns how many entries were handled. */
  async runOnce(): Promise<number> {
    const { outbound } = this.deps.config;
    const entries = await this.deps.store.leaseOutbound(this.owner, LEASE_MS, outbound.concurrency * 10);
    if (entries.length === 0) return 0;
    // One SMTP transaction per message, sender and destination domain.
    const groups = new Map<string, OutboundEntry[]>();
    for (const entry of entries) {
      const key = `${entry.blobHash}\0${entry.sender}\0${entry.domain}`;
      groups.set(key, [...(groups.get(key) ?? []), entry]);
    }
    const perDomain = new Map<string, number>();
    const pending: OutboundEntry[][] = [];
    for (const group of groups.values()) {
      // Past the domain's rate: back to the queue untried, due when the window has room.
      const wait = this.rate.wait(group[0]!.domain);
      if (wait > 0) {
        for (const entry of group) await this.deps.store.postponeOutbound(entry.id, this.owner, new Date(Date.now() + wait));
        continue;
      }
      this.rate.take(group[0]!.domain);
      pending.push(group);
    }
    const inFlight = new Set<Promise<void>>();
    while (pending.length > 0 || inFlight.size > 0) {
      const index = pending.findIndex((group) => (perDomain.get(group[0]!.domain) ?? 0) < outbound.perDomainConcurrency);
      if (index >= 0 && inFlight.size < outbound.concurrency) {
        const [group] = pending.splice(index, 1) as [OutboundEntry[]];
        const domain = group[0]!.domain;
        perDomain.set(domain, (perDomain.get(domain) ?? 0) + 1);
        const job: Promise<void> = this.deliverGroup(group)
          .catch((error: Error) => this.deps.logger.error({ err: error.message, domain }, 'outbound delivery crashed'))
          .finally(() => {
            perDomain.set(domain, perDomain.get(domain)! - 1);
            inFlight.delete(job);
          });
        inFlight.add(job);
        continue;
      }
      await Promise.race(inFlight);
    }
    return entries.length;
  }

  private async deliverGroup(group: OutboundEntry[]): Promise<void> {
    const { store, config, logger } = this.deps;
    const first = group[0]!;
    const raw = await store.getBlob(first.blobHash);
    if (!raw) {
      for (const entry of group) await store.finishOutbound(entry.id, this.owner);
      return;
    }
    const outcomes = await this.attempt(first.domain, first.sender, group.map((e) => e.recipient), raw);
    const now = Date.now();
    const failed: DsnRecipient[] = [];
    const delayed: DsnRecipient[] = [];
    for (const entry of group) {
      const outcome = outcomes.get(entry.recipient.toLowerCase()) ?? outcomes.get(entry.recipient) ?? { kind: 'temporary' as const, diagnostic: '451 4.4.0 no answer for this recipient' };
      const log = logger.child({ queueId: entry.id, to: entry.recipient, from: entry.sender });
      if (outcome.kind === 'delivered') {
        log.info({ attempts: entry.attempts + 1 }, 'outbound delivered');
        this.outcomes.inc('delivered');
        await store.finishOutbound(entry.id, this.owner);
        continue;
      }
      const expired = now - entry.createdAt.getTime() > config.outbound.lifetimeHours * 3_600_000;
      if (outcome.kind === 'permanent' || expired) {
        const diagnostic = outcome.kind === 'permanent' ? outcome.diagnostic : `${outcome.diagnostic} (gave up after ${config.outbound.lifetimeHours} hours)`;
        log.warn({ diagnostic }, 'outbound failed permanently');
        this.outcomes.inc('bounced');
        failed.push({ recipient: entry.recipient, diagnostic, remoteMta: outcome.remoteMta });
        await store.finishOutbound(entry.id, this.owner);
        continue;
      }
      const intervals = config.outbound.retryIntervalsSeconds;
      const wait = intervals[Math.min(entry.attempts, intervals.length - 1)]! * 1000;
      const warn = !entry.warned && now - entry.createdAt.getTime() > config.outbound.warnAfterHours * 3_600_000;
      if (warn) delayed.push({ recipient: entry.recipient, diagnostic: outcome.diagnostic, remoteMta: outcome.remoteMta });
      log.info({ diagnostic: outcome.diagnostic, retryInSeconds: wait / 1000 }, 'outbound deferred');
      this.outcomes.inc('deferred');
      await store.deferOutbound(entry.id, this.owner, outcome.diagnostic, new Date(now + wait), warn);
    }
    const base = { reportingMta: config.hostname, sender: first.sender, arrivalDate: first.createdAt, original: raw };
    if (failed.length > 0) await this.notify(buildDsn({ ...base, kind: 'failed', recipients: failed }), first.sender);
    if (delayed.length > 0) {
      const retryUntil = new Date(first.createdAt.getTime() + config.outbound.lifetimeHours * 3_600_000);
      await this.notify(buildDsn({ ...base, kind: 'delayed', recipients: delayed, retryUntil }), first.sender);
    }
  }

  /** Tries each hop in order until one gives an answer for the recipients. */
  private async attempt(domain: string, sender: string, recipients: string[], raw: Buffer): Promise<Map<string, Outcome>> {
    const { config, resolver } = this.deps;
    const all = (outcome: Outcome) => new Map(recipients.map((r) => [r.toLowerCase(), outcome]));
    let hops: Hop[];
    try {
      hops = await routeFor(domain, config.outbound, resolver);
    } catch (error) {
      const permanent = error instanceof NoRouteError && error.permanent;
      return all({ kind: permanent ? 'permanent' : 'temporary', diagnostic: (error as Error).message });
    }
    const signed = await this.sign(sender, raw);
    let last: Outcome = { kind: 'temporary', diagnostic: `451 4.4.1 no answer from any host of ${domain}` };
    for (const hop of hops) {
      try {
        const outcomes = await this.sendCached(hop, sender, recipients, signed);
        return new Map([...outcomes].map(([recipient, outcome]) => [recipient.toLowerCase(), outcome]));
      } catch (error) {
        const failure = error as SmtpFailure;
        if (failure.responseCode && failure.responseCode >= 500) return all({ kind: 'permanent', diagnostic: describe(failure), remoteMta: hop.name });
        last = { kind: 'temporary', diagnostic: failure.responseCode ? describe(failure) : `451 4.4.1 ${hop.name}: ${failure.message}`, remoteMta: hop.name };
        // A server that answered 4xx has spoken for the domain; a dead one passes to the next MX.
        if (failure.responseCode) return all(last);
      }
    }
    return all(last);
  }

  /** Sends over a cached connection to the hop when there is one (a stale one is replaced once), else a new one. */
  private async sendCached(hop: Hop, sender: string, recipients: string[], raw: Buffer): Promise<Map<string, Outcome>> {
    const key = `${hop.host}:${hop.port}:${hop.auth?.user ?? ''}`;
    const timeoutMs = this.deps.config.outbound.connectTimeoutSeconds * 1000;
    let connection = this.connections.take(key);
    const reused = connection !== undefined;
    connection ??= await openConnection(hop, this.deps.config.hostname, timeoutMs);
    try {
      const outcomes = await sendOn(connection, hop, sender, recipients, raw);
      this.connections.give(key, connection);
      return outcomes;
    } catch (error) {
      connection.close();
      // A cached connection the server had already dropped: try once on a fresh one.
      if (reused && !(error as SmtpFailure).responseCode) {
        const fresh = await openConnection(hop, this.deps.config.hostname, timeoutMs);
        try {
          const outcomes = await sendOn(fresh, hop, sender, recipients, raw);
          this.connections.give(key, fresh);
          return outcomes;
        } catch (again) {
          fresh.close();
          throw again;
        }
      }
      throw error;
    }
  }

  /** DKIM-signs with the sender domain's key, when it has one. */
  private async sign(sender: string, raw: Buffer): Promise<Buffer> {
    const domain = sender.slice(sender.lastIndexOf('@') + 1).toLowerCase();
    if (!domain) return raw;
    const key = await this.deps.store.getDkimKey(domain);
    if (!key) return raw;
    const signed = await dkimSignature(raw, { domain, selector: key.selector, privateKeyPem: key.privateKeyPem });
    if ('error' in signed) {
      this.deps.logger.warn({ domain, err: signed.error }, 'DKIM signing failed; sending unsigned');
      return raw;
    }
    return Buffer.concat([Buffer.from(signed.header), raw]);
  }

  /** Sends a DSN to the original sender from the null sender: never a bounce for a bounce. */
  private async notify(dsn: Buffer, sender: string): Promise<void> {
    if (!sender) return;
    const { store } = this.deps;
    const local = await store.getUser(sender);
    if (local) await store.deliver(dsn, [{ userId: local.id }]);
    else await store.deliver(dsn, [], { outbound: { sender: '', recipients: [sender] } });
  }
}
