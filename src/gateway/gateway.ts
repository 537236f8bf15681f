// `quill gateway`: listens on the public ports and hands each client session to the least
// loaded healthy node (Bluetail Mail Robustifier; DESIGN.md "Gateway"). A node that fails a
// connection is skipped at once and the next one tried before the client notices. When the
// gateway is full, clients wait in a bounded queue and then get the protocol's temporary error.
import net from 'node:net';
import tls from 'node:tls';
import { hostname } from 'node:os';
import { Membership, type StopRequest } from '../cluster/membership.js';
import { splitHostPort, type Config, type ProtocolName } from '../config/config.js';
import { listen } from '../net/listen.js';
import { proxyLine } from '../protocol/proxy-header.js';
import type { Cluster, Directory, StoreHandle } from '../store/types.js';
import { VERSION } from '../version.js';
import type { Logger } from '../util/logger.js';
import { Authenticator } from '../auth/authenticator.js';
import { loadTls } from '../util/tls.js';
import { processMetrics, type GatewayCounters } from '../metrics/metrics.js';
import { startGatewayAdmin, watchGateway, type GatewayAdmin } from './admin.js';
import { connectNode } from './connect.js';
import { NodeDirectory } from './directory.js';
import { HttpFrontEnd } from './http-front.js';
import { ImapFront } from './imap-front.js';
import { Pop3Front } from './pop3-front.js';
import { SmtpFront } from './smtp-front.js';
import { configurePasswords } from '../util/password.js';

const PROTOCOLS: ProtocolName[] = ['smtp', 'submission', 'pop3', 'imap', 'http'];

export type ImplicitTlsName = 'submissions' | 'imaps' | 'pop3s' | 'https';
/** Implicit-TLS listeners and the protocol spoken inside the TLS (RFC 8314 3.3, RFC 9110 4.2.2). */
const IMPLICIT_TLS: [ImplicitTlsName, ProtocolName][] = [
  ['submissions', 'submission'],
  ['imaps', 'imap'],
  ['pop3s', 'pop3'],
  ['https', 'http'],
];
/** Client bytes kept for a replay until the node first answers. */
const REPLAY_LIMIT = 256 * 1024;

/** What a client hears when no node can take it, in its own protocol. */
export function temporaryError(protocol: ProtocolName, host: string): string {
  switch (protocol) {
    case 'smtp':
    case 'submission':
      return `421 4.3.2 ${host} no mail node available, try again later\r\n`; // RFC 5321 3.8
    case 'pop3':
      return '-ERR [SYS/TEMP] no mail node available, try again later\r\n'; // RFC 3206
    case 'imap':
      return '* BYE [UNAVAILABLE] no mail node available, try again later\r\n'; // RFC 5530
    case 'http': {
      const body = 'no mail node available, try again later\n';
      return `HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    }
  }
}

/** What a refused client hears when it is not welcome at all (blocklisted). */
export function deniedError(protocol: ProtocolName, host: string): string {
  switch (protocol) {
    case 'smtp':
    case 'submission':
      return `554 5.7.1 ${host} access denied\r\n`; // RFC 5321 3.1
    case 'pop3':
      return '-ERR [AUTH] access denied\r\n';
    case 'imap':
      return '* BYE access denied\r\n';
    case 'http':
      return 'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';
  }
}

/**
 * Screening of clients (RFC 2505 spirit): a blocklist, open sessions per address, and new
 * connections per address per minute. Memory stays bounded under a spray of addresses.
 */
class Screening {
  private readonly blocked = new net.BlockList();
  private readonly open = new Map<string, number>();
  private readonly recent = new Map<string, { count: number; since: number }>();

  constructor(private readonly limits: Readonly<Config['gateway']>) {
    for (const entry of limits.blocklist) {
      const [address = '', bits] = entry.split('/');
      const type = net.isIPv6(address) ? 'ipv6' : 'ipv4';
      if (bits !== undefined) this.blocked.addSubnet(address, Number(bits), type);
      else this.blocked.addAddress(address, type);
    }
  }

  /** Why the address may not connect now, or undefined; counts it in when admitted. */
  admit(raw: string): string | undefined {
    const address = raw.replace(/^::ffff:(?=\d+\.)/, '');
    if (address && this.blocked.check(address, net.isIPv6(address) ? 'ipv6' : 'ipv4')) return 'blocklisted';
    const now = Date.now();
    const window = this.recent.get(address);
    if (!window || now - window.since > 60_000) {
      if (this.recent.size > 100_000) this.recent.clear();
      this.recent.set(address, { count: 1, since: now });
    } else if (++window.count > this.limits.connectsPerIpPerMinute) return 'too many connections per minute';
    const open = this.open.get(address) ?? 0;
    if (open >= this.limits.sessionsPerIp) return 'too many sessions from one address';
    this.open.set(address, open + 1);
    return undefined;
  }

  left(raw: string): void {
    const address = raw.replace(/^::ffff:(?=\d+\.)/, '');
    const open = (this.open.get(address) ?? 1) - 1;
    if (open > 0) this.open.set(address, open);
    else this.open.delete(address);
  }
}

interface Waiter {
  socket: net.Socket;
  timer: NodeJS.Timeout;
}

/** A protocol the gateway speaks itself (SMTP) instead of passing bytes through. */
export type FrontFactory = (socket: net.Socket) => { run(): Promise<void>; readonly nodeId: string | undefined };

class ProtocolProxy {
  private readonly server = net.createServer((socket) => this.accept(socket));
  private readonly screening: Screening;
  /** Set for protocols with a front end of their own. */
  front: FrontFactory | undefined;
  /** quill_gateway_* counters of this listener. */
  counters: GatewayCounters | undefined;
  readonly fronts = new Set<ReturnType<FrontFactory>>();
  private readonly sessions = new Set<net.Socket>();
  private readonly waiting: Waiter[] = [];
  /** TLS sockets this listener made around its clients' sockets (implicit TLS). */
  private readonly wrapped = new WeakSet<net.Socket>();
  port = 0;
  private standbyTimer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(
    readonly protocol: ProtocolName,
    private readonly address: string,
    private readonly directory: NodeDirectory,
    private readonly config: Readonly<Config>,
    private readonly logger: Logger,
    /** Set on an implicit-TLS listener (RFC 8314 3.3): the handshake comes first, and ends here. */
    private readonly implicitTls?: tls.SecureContext,
  ) {
    this.screening = new Screening(config.gateway);
  }

  get active(): number {
    return this.sessions.size;
  }

  /**
   * Listens on the address. A standby gateway (gateway.standby) whose address another process
   * holds keeps trying in the background and calls `onBound` once it has it.
   */
  async listen(onBound: () => void): Promise<void> {
    const { host, port } = splitHostPort(this.address);
    try {
      this.port = await listen(this.server, host, port);
      onBound();
    } catch (error) {
      if (!this.config.gateway.standby || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      this.logger.info({ protocol: this.protocol, address: this.address }, 'gateway: standing by; the address is held by another process');
      const retry = (): void => {
        this.standbyTimer = setTimeout(() => {
          if (this.closing) return;
          listen(this.server, host, port).then(
            (bound) => {
              if (this.closing) return void this.server.close(); // closed while this try was under way
              this.port = bound;
              this.logger.warn({ protocol: this.protocol, address: this.address }, 'gateway: took over the address');
              onBound();
            },
            retry,
          );
        }, this.config.gateway.standbyRetryMs);
        this.standbyTimer.unref();
      };
      retry();
    }
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => undefined);
    const limits = this.config.gateway;
    const why = this.screening.admit(socket.remoteAddress ?? '');
    if (why) return this.refuse(socket, why, why === 'blocklisted');
    this.counters?.sessions.inc();
    socket.once('close', () => this.screening.left(socket.remoteAddress ?? ''));
    if (this.sessions.size < limits.maxSessions) return void this.open(socket);
    if (this.waiting.length >= limits.queueLength) return this.refuse(socket, 'gateway full');
    const waiter: Waiter = {
      socket,
      timer: setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        this.refuse(socket, 'waited too long for a session slot');
      }, limits.queueTimeoutMs),
    };
    socket.once('close', () => {
      const at = this.waiting.indexOf(waiter);
      if (at >= 0) {
        clearTimeout(waiter.timer);
        this.waiting.splice(at, 1);
      }
    });
    this.waiting.push(waiter);
  }

  private refuse(socket: net.Socket, why: string, permanent = false): void {
    this.logger.warn({ protocol: this.protocol, remote: socket.remoteAddress, why }, 'gateway: client refused');
    this.counters?.refused.inc(why);
    // Words in the clear mean nothing to a client that is starting a TLS handshake.
    if (this.implicitTls && !this.wrapped.has(socket)) return void socket.destroy();
    socket.end(permanent ? deniedError(this.protocol, this.config.hostname) : temporaryError(this.protocol, this.config.hostname));
    socket.setTimeout(5_000, () => socket.destroy());
  }

  private release(socket: net.Socket): void {
    if (!this.sessions.delete(socket)) return;
    const next = this.waiting.shift();
    if (next) {
      clearTimeout(next.timer);
      void this.open(next.socket);
    }
  }

  /**
   * Connects the client to the first node that answers; the client's bytes wait in its socket
   * meanwhile. `replay` holds what the client already sent to a node that died before answering.
   */
  private async open(socket: net.Socket, replay: Buffer[] = []): Promise<void> {
    if (!this.wrapped.has(socket)) {
      this.sessions.add(socket);
      socket.once('close', () => this.release(socket));
    }
    if (this.implicitTls && !this.wrapped.has(socket)) {
      const secured = await this.handshake(socket, this.implicitTls);
      if (!secured) return;
      socket = secured;
    }
    if (this.front) {
      if (this.directory.candidates(this.protocol).length === 0) return this.refuse(socket, 'no node available');
      // Replies go out as soon as they are written: with Nagle, a reply written right after
      // another waits for the client's delayed ACK (some 40 ms a command).
      socket.setNoDelay(true);
      const front = this.front(socket);
      this.fronts.add(front);
      return front.run().finally(() => this.fronts.delete(front));
    }
    for (const node of this.directory.candidates(this.protocol)) {
      if (socket.destroyed) return;
      let upstream: net.Socket;
      try {
        upstream = await connectNode(node.address, this.config.gateway.connectTimeoutMs, this.config.cluster.secret);
      } catch {
        this.directory.markFailed(node.id);
        continue;
      }
      if (socket.destroyed) return void upstream.destroy();
      this.directory.noteOpened(node.id, this.protocol);
      this.splice(socket, upstream, node.id, replay);
      return;
    }
    this.refuse(socket, 'no node available');
  }

  /**
   * Carries bytes both ways. Until the node says its first byte the client's bytes are kept,
   * so if the node dies before answering, the session starts over on another node and the
   * client never notices (record and replay, at its simplest). Once the node has spoken, its
   * death ends the client's session.
   */
  private splice(client: net.Socket, upstream: net.Socket, nodeId: string, replay: Buffer[]): void {
    let answered = false;
    let recorded: Buffer[] | null = [...replay];
    let recordedBytes = replay.reduce((n, b) => n + b.length, 0);
    upstream.on('error', () => undefined);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    if (this.config.gateway.proxyProtocol) upstream.write(proxyLine(client));
    for (const chunk of replay) upstream.write(chunk);

    const fromClient = (chunk: Buffer) => {
      if (recorded) {
        recordedBytes += chunk.length;
        if (recordedBytes <= REPLAY_LIMIT) recorded.push(chunk);
        else recorded = null;
      }
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    };
    const fromNode = (chunk: Buffer) => {
      answered = true;
      recorded = null;
      if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    };
    const clientEnded = () => upstream.end();
    const clientClosed = () => upstream.destroy();
    client.on('data', fromClient);
    client.once('end', clientEnded);
    client.once('close', clientClosed);
    upstream.on('data', fromNode);
    upstream.once('close', (hadError) => {
      client.off('data', fromClient);
      client.off('end', clientEnded);
      client.off('close', clientClosed);
      if (client.destroyed) return;
      if (!answered && recorded && this.mayReplay(recorded)) {
        client.pause();
        this.directory.markFailed(nodeId);
        this.counters?.failovers.inc();
        this.logger.warn({ protocol: this.protocol, node: nodeId }, 'gateway: node lost before answering; replaying on another node');
        void this.open(client, recorded);
        return;
      }
      if (hadError || !answered) this.logger.warn({ protocol: this.protocol, node: nodeId }, 'gateway: node connection lost mid-session');
      // A client that heard nothing yet hears a clear temporary error rather than a bare close.
      if (answered) client.end();
      else client.end(temporaryError(this.protocol, this.config.hostname));
      client.setTimeout(5_000, () => client.destroy());
    });
  }

  private handshake(socket: net.Socket, secureContext: tls.SecureContext): Promise<tls.TLSSocket | undefined> {
    const secured = new tls.TLSSocket(socket, { isServer: true, secureContext });
    secured.on('error', () => undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => secured.destroy(), this.config.gateway.tlsHandshakeTimeoutMs);
      secured.once('secure', () => {
        clearTimeout(timer);
        this.wrapped.add(secured);
        resolve(secured);
      });
      secured.once('close', () => {
        clearTimeout(timer);
        resolve(undefined);
      });
    });
  }

  /** HTTP requests that change things are not sent twice (RFC 9110 9.2.2); the others start with the server's greeting. */
  private mayReplay(sent: Buffer[]): boolean {
    if (this.protocol !== 'http' || sent.length === 0) return true;
    return /^(GET|HEAD|OPTIONS|PUT|DELETE) /.test(Buffer.concat(sent).subarray(0, 8).toString('latin1'));
  }

  async close(deadline: Date): Promise<void> {
    this.closing = true;
    clearTimeout(this.standbyTimer);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const waiter of this.waiting.splice(0)) {
      clearTimeout(waiter.timer);
      this.refuse(waiter.socket, 'gateway stopping');
    }
    while (this.sessions.size > 0 && Date.now() < deadline.getTime()) await new Promise((r) => setTimeout(r, 50));
    for (const socket of this.sessions) socket.destroy();
    await closed;
  }
}

export interface RunningGateway {
  directory: NodeDirectory;
  /** The node each open session the gateway speaks itself (SMTP) is on. */
  frontSessions(protocol: ProtocolName): (string | undefined)[];
  port(protocol: ProtocolName): number;
  /** The port of an implicit-TLS listener (config gateway.implicitTls). */
  tlsPort(name: ImplicitTlsName): number;
  /** The port of the admin endpoint (/metrics, /healthz, /readyz), when one listens. */
  adminPort: number | undefined;
  close(): Promise<void>;
}

export async function startGateway(
  config: Readonly<Config>,
  /** Users (logins are checked at the front), the membership (which nodes to send to), and a health probe. */
  store: Directory & Cluster & StoreHandle,
  logger: Logger,
  /** adminListen: the admin endpoint's HOST:PORT (`--admin`), ahead of config gateway.adminListen. */
  options: {
    id?: string;
    protocols?: ProtocolName[];
    adminListen?: string;
    /**
     * An operator asked this gateway to stop or restart (quill admin stop|restart, the admin API):
     * called once it has closed, sessions finished. Without it such requests are not obeyed.
     */
    onStopRequested?: (request: StopRequest) => void;
  } = {},
): Promise<RunningGateway> {
  const directory = new NodeDirectory(store, { probeIntervalMs: config.gateway.probeIntervalMs, probeTimeoutMs: config.gateway.connectTimeoutMs, affinitySlack: config.gateway.affinitySlack, hangDetectMs: config.gateway.hangDetectMs }, logger);
  await directory.start();
  const proxies = new Map<ProtocolName, ProtocolProxy>();
  const tlsProxies = new Map<ImplicitTlsName, ProtocolProxy>();
  const addresses: Record<string, string> = {};
  const gatewayId = options.id ?? `gateway-${hostname()}-${process.pid}`;
  configurePasswords({ scryptN: config.limits.passwordScryptN, concurrency: config.limits.passwordHashConcurrency });
  const auth = new Authenticator(store, config.limits);
  const tlsMaterial = await loadTls(config.data, config.hostname, config.tls);
  const membership = new Membership(
    store,
    { id: gatewayId, kind: 'gateway', version: VERSION, addresses },
    () => Object.fromEntries([...proxies, ...tlsProxies].map(([name, proxy]) => [name, proxy.active])),
    logger,
  );
  const metrics = processMetrics();
  const unwatchMetrics = watchGateway(metrics, gatewayId, directory, () => [...proxies, ...tlsProxies].map(([, proxy]) => [proxy.protocol, proxy.active]));
  let admin: GatewayAdmin | undefined;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      unwatchMetrics();
      await admin?.close();
      await membership.stop();
      directory.stop();
      const deadline = new Date(Date.now() + config.shutdownTimeoutSeconds * 1000);
      await Promise.allSettled([...proxies.values(), ...tlsProxies.values()].map((proxy) => proxy.close(deadline)));
    })());
  const onStopRequested = options.onStopRequested;
  if (onStopRequested) {
    membership.onStopRequest((request) => {
      logger.info({ request }, 'gateway: stopping as an operator asked');
      close().then(
        () => onStopRequested(request),
        (error: unknown) => logger.error({ err: error }, 'gateway: closing on request failed'),
      );
    });
  }
  try {
    // The protocols the gateway speaks itself; the others pass through byte for byte.
    let http: HttpFrontEnd | undefined;
    const frontFor = (protocol: ProtocolName): FrontFactory | undefined => {
      if (protocol === 'smtp' || protocol === 'submission') {
        const deps = { protocol, config, directory, auth, tlsContext: tlsMaterial.context, logger, gatewayId: gatewayId.replace(/[^A-Za-z0-9._-]/g, '') };
        return (socket) => new SmtpFront(socket, deps);
      }
      if (protocol === 'pop3') {
        const failovers = metrics.gatewayCountersOf(gatewayId, 'pop3').failovers;
        const deps = { config, directory, auth, tlsContext: tlsMaterial.context, logger, onFailover: () => failovers.inc() };
        return (socket) => new Pop3Front(socket, deps);
      }
      if (protocol === 'imap') {
        // Sessions moved off a lost node count in quill_gateway_failovers_total (more: gatewayStats in imap-front.ts).
        const onFailover = () => proxies.get('imap')?.counters?.failovers.inc();
        const deps = { config, directory, auth, tlsContext: tlsMaterial.context, logger, onFailover };
        return (socket) => new ImapFront(socket, deps);
      }
      if (protocol === 'http') {
        const retries = metrics.gatewayCountersOf(gatewayId, 'http').failovers;
        const front = (http ??= new HttpFrontEnd({ config, directory, logger, onRetry: () => retries.inc() }));
        return (socket) => front.session(socket);
      }
      return undefined;
    };
    const wanted = options.protocols ?? PROTOCOLS;
    for (const protocol of wanted) {
      const proxy = new ProtocolProxy(protocol, config.listen[protocol], directory, config, logger);
      proxy.front = frontFor(protocol);
      proxy.counters = metrics.gatewayCountersOf(gatewayId, protocol);
      proxies.set(protocol, proxy);
      await proxy.listen(() => {
        addresses[protocol] = `${splitHostPort(config.listen[protocol]).host}:${proxy.port}`;
        logger.info({ protocol, port: proxy.port }, `gateway: ${protocol} listening`);
      });
    }
    for (const [name, protocol] of IMPLICIT_TLS) {
      const address = config.gateway.implicitTls[name];
      if (address === undefined || !wanted.includes(protocol)) continue;
      const proxy = new ProtocolProxy(protocol, address, directory, config, logger, tlsMaterial.context);
      proxy.front = frontFor(protocol);
      proxy.counters = metrics.gatewayCountersOf(gatewayId, protocol);
      tlsProxies.set(name, proxy);
      await proxy.listen(() => {
        addresses[name] = `${splitHostPort(address).host}:${proxy.port}`;
        logger.info({ protocol, port: proxy.port }, `gateway: ${name} (implicit TLS) listening`);
      });
    }
    const adminListen = options.adminListen ?? config.gateway.adminListen;
    if (adminListen) admin = await startGatewayAdmin({ address: adminListen, gatewayId, store, directory, token: config.metrics.token, logger });
  } catch (error) {
    await close();
    throw error;
  }
  await membership.start();
  return {
    directory,
    adminPort: admin?.port,
    frontSessions: (protocol) => [...(proxies.get(protocol)?.fronts ?? [])].map((front) => front.nodeId),
    port(protocol) {
      const proxy = proxies.get(protocol);
      if (!proxy) throw new Error(`gateway does not listen for ${protocol}`);
      return proxy.port;
    },
    tlsPort(name) {
      const proxy = tlsProxies.get(name);
      if (!proxy) throw new Error(`gateway has no ${name} listener`);
      return proxy.port;
    },
    close,
  };
}
