// `quill gateway`: listens on the public ports and hands each client session to the least
// loaded healthy node (Bluetail Mail Robustifier; DESIGN.md "Gateway"). A node that fails a
// connection is skipped at once and the next one tried before the client notices. When the
// gateway is full, clients wait in a bounded queue and then get the protocol's temporary error.
import net from 'node:net';
import { hostname } from 'node:os';
import { Membership } from '../cluster/membership.js';
import { splitHostPort, type Config, type ProtocolName } from '../config/config.js';
import type { Store } from '../store/types.js';
import type { Logger } from '../util/logger.js';
import { NodeDirectory } from './directory.js';

const PROTOCOLS: ProtocolName[] = ['smtp', 'submission', 'pop3', 'imap', 'http'];

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

interface Waiter {
  socket: net.Socket;
  timer: NodeJS.Timeout;
}

class ProtocolProxy {
  private readonly server = net.createServer((socket) => this.accept(socket));
  private readonly sessions = new Set<net.Socket>();
  private readonly waiting: Waiter[] = [];
  port = 0;

  constructor(
    readonly protocol: ProtocolName,
    private readonly address: string,
    private readonly directory: NodeDirectory,
    private readonly config: Readonly<Config>,
    private readonly logger: Logger,
  ) {}

  get active(): number {
    return this.sessions.size;
  }

  async listen(): Promise<void> {
    const { host, port } = splitHostPort(this.address);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => undefined);
    const limits = this.config.gateway;
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

  private refuse(socket: net.Socket, why: string): void {
    this.logger.warn({ protocol: this.protocol, remote: socket.remoteAddress, why }, 'gateway: client refused');
    socket.end(temporaryError(this.protocol, this.config.hostname));
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

  /** Connects the client to the first node that answers; the client's bytes wait in its socket meanwhile. */
  private async open(socket: net.Socket): Promise<void> {
    this.sessions.add(socket);
    socket.once('close', () => this.release(socket));
    for (const node of this.directory.candidates(this.protocol)) {
      if (socket.destroyed) return;
      let upstream: net.Socket;
      try {
        upstream = await connect(node.address, this.config.gateway.connectTimeoutMs);
      } catch {
        this.directory.markFailed(node.id);
        continue;
      }
      if (socket.destroyed) return void upstream.destroy();
      this.directory.noteOpened(node.id, this.protocol);
      this.splice(socket, upstream, node.id);
      return;
    }
    this.refuse(socket, 'no node available');
  }

  private splice(client: net.Socket, upstream: net.Socket, nodeId: string): void {
    upstream.on('error', () => undefined);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
    // A node that dies takes its sessions with it (until replay exists): close the client too.
    upstream.once('close', (hadError) => {
      if (hadError) this.logger.warn({ protocol: this.protocol, node: nodeId }, 'gateway: node connection lost mid-session');
      client.destroy();
    });
    client.once('close', () => upstream.destroy());
  }

  async close(deadline: Date): Promise<void> {
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

function connect(address: string, timeoutMs: number): Promise<net.Socket> {
  const { host, port } = splitHostPort(address);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => socket.destroy(new Error('connect timeout')), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

export interface RunningGateway {
  directory: NodeDirectory;
  port(protocol: ProtocolName): number;
  close(): Promise<void>;
}

export async function startGateway(
  config: Readonly<Config>,
  store: Store,
  logger: Logger,
  options: { id?: string; protocols?: ProtocolName[] } = {},
): Promise<RunningGateway> {
  const directory = new NodeDirectory(store, { probeIntervalMs: config.gateway.probeIntervalMs, probeTimeoutMs: config.gateway.connectTimeoutMs }, logger);
  await directory.start();
  const proxies = new Map<ProtocolName, ProtocolProxy>();
  const addresses: Record<string, string> = {};
  const membership = new Membership(
    store,
    { id: options.id ?? `gateway-${hostname()}-${process.pid}`, kind: 'gateway', version: '0.1.0', addresses },
    () => Object.fromEntries([...proxies].map(([name, proxy]) => [name, proxy.active])),
    logger,
  );
  const close = async () => {
    await membership.stop();
    directory.stop();
    const deadline = new Date(Date.now() + config.shutdownTimeoutSeconds * 1000);
    await Promise.allSettled([...proxies.values()].map((proxy) => proxy.close(deadline)));
  };
  try {
    for (const protocol of options.protocols ?? PROTOCOLS) {
      const proxy = new ProtocolProxy(protocol, config.listen[protocol], directory, config, logger);
      await proxy.listen();
      proxies.set(protocol, proxy);
      addresses[protocol] = `${splitHostPort(config.listen[protocol]).host}:${proxy.port}`;
      logger.info({ protocol, port: proxy.port }, `gateway: ${protocol} listening`);
    }
  } catch (error) {
    await close();
    throw error;
  }
  await membership.start();
  return {
    directory,
    port(protocol) {
      const proxy = proxies.get(protocol);
      if (!proxy) throw new Error(`gateway does not listen for ${protocol}`);
      return proxy.port;
    },
    close,
  };
}
