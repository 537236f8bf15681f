// IMAP on several cores (imap.processes > 1, embedded SQLite store): this process accepts the
// connections, applies the connection limits and hands each raw socket (before any TLS: STARTTLS
// runs in the child) to the child process with the fewest connections (child.ts). Children open
// the same SQLite file (WAL: readers never wait for the writer). What stays whole here:
// - logins: children ask this process's Authenticator, so the login throttle and the cache of
//   verified passwords cover every child;
// - the change feed: a child that wrote changes says so, and this process passes the word to the
//   other children (and says so itself after a delivery), which then read the changes table at
//   once (SqliteStore.syncChanges) instead of at their next poll: IDLE and untagged updates of
//   sessions in every process follow a change promptly, as the PostgreSQL feed does across nodes;
// - supervision: a child that dies is started again (its sessions are lost, as with a crash).
import { fork, type ChildProcess } from 'node:child_process';
import net, { type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { AuthResult } from '../auth/authenticator.js';
import { splitHostPort, type Config } from '../config/config.js';
import { expectsGatewayLink, gatewayTrust } from '../net/gateway-link.js';
import { listen } from '../net/listen.js';
import type { Service, ServiceDeps } from '../service.js';
import type { SqliteStore } from '../store/sqlite.js';
import { refuseConnection } from './server.js';

/** From the listening process to a child. */
export type ParentMessage =
  | { t: 'init'; config: Readonly<Config>; nodeId: string; index: number }
  | { t: 'socket'; id: number }
  | { t: 'auth'; id: number; result?: AuthResult; error?: string }
  | { t: 'changed' }
  | { t: 'close'; deadline: number };

/** From a child to the listening process. */
export type ChildMessage =
  | { t: 'ready' }
  | { t: 'ended'; ids: number[] }
  | { t: 'auth'; id: number; address: string; password: string; remoteIp: string }
  | { t: 'changed' };

/** How long a child may take to open the store and say it is ready. */
const START_TIMEOUT_MS = 30_000;
/** First wait before starting a child that died again; doubled per quick death, up to the maximum. */
const RESTART_DELAY_MS = 200;
const RESTART_DELAY_MAX_MS = 10_000;
/** A child that lived this long before dying is restarted at once. */
const HEALTHY_AFTER_MS = 30_000;

/** Node flags the children inherit: the TypeScript loader in development, profiling; not the test runner's. */
function childExecArgv(): string[] {
  return process.execArgv.filter((flag) => !flag.startsWith('--test') && !flag.startsWith('--inspect') && !flag.startsWith('--watch'));
}

interface Child {
  index: number;
  process: ChildProcess;
  ready: boolean;
  startedAt: number;
  /** Connections handed to it: id -> the client address counted against connectionsPerIp (undefined: a gateway link). */
  connections: Map<number, string | undefined>;
}

export async function startImapProcesses(deps: ServiceDeps, count: number): Promise<Service> {
  const { host, port } = splitHostPort(deps.config.listen.imap);
  const limits = deps.config.limits;
  const log = deps.logger.child({ proto: 'imap' });
  const store = deps.store as SqliteStore;
  const trust = gatewayTrust(deps.config);
  const entry = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './child.ts' : './child.js', import.meta.url));
  const children: (Child | undefined)[] = Array.from({ length: count }, () => undefined);
  const perIp = new Map<string, number>();
  let connections = 0;
  let nextConnection = 1;
  let closing = false;
  const restartDelay = new Array<number>(count).fill(RESTART_DELAY_MS);

  function release(address: string | undefined): void {
    connections--;
    if (address === undefined) return;
    const left = (perIp.get(address) ?? 1) - 1;
    if (left > 0) perIp.set(address, left);
    else perIp.delete(address);
  }

  // Word of changes, one per child per turn of the event loop.
  const toTell = new Set<Child>();
  function tell(except?: Child): void {
    const first = toTell.size === 0;
    for (const child of children) if (child && child !== except && child.ready) toTell.add(child);
    if (!first || toTell.size === 0) return;
    setImmediate(() => {
      for (const child of toTell) if (child.process.connected) child.process.send({ t: 'changed' } satisfies ParentMessage);
      toTell.clear();
    });
  }
  const unwatch = store.onOwnChanges(() => tell());

  function start(index: number): Promise<void> {
    const child: Child = {
      index,
      process: fork(entry, [], { execArgv: childExecArgv(), serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
      ready: false,
      startedAt: Date.now(),
      connections: new Map(),
    };
    children[index] = child;
    // A send racing the channel's close: logged; the exit handler below does the rest.
    child.process.on('error', (error) => log.warn({ imapProcess: index, err: error.message }, 'imap process channel error'));
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`imap process ${index} did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      child.process.on('message', (message: ChildMessage) => {
        if (message.t === 'ready') {
          child.ready = true;
          clearTimeout(timer);
          log.info({ imapProcess: index, pid: child.process.pid }, 'imap process ready');
          resolve();
        } else if (message.t === 'ended') {
          for (const id of message.ids) {
            if (!child.connections.has(id)) continue;
            release(child.connections.get(id));
            child.connections.delete(id);
          }
        } else if (message.t === 'changed') {
          tell(child);
          store.syncChanges(); // this process's own listeners (webmail events)
        } else if (message.t === 'auth') {
          const answer = (reply: ParentMessage) => {
            if (child.process.connected) child.process.send(reply);
          };
          deps.auth.authenticate(message.address, message.password, message.remoteIp).then(
            (result) => answer({ t: 'auth', id: message.id, result }),
            (error: unknown) => answer({ t: 'auth', id: message.id, error: error instanceof Error ? error.message : String(error) }),
          );
        }
      });
      child.process.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`imap process ${index} exited (${signal ?? code}) before it was ready`));
      });
    });
    child.process.once('exit', (code, signal) => {
      for (const address of child.connections.values()) release(address);
      child.connections.clear();
      child.ready = false;
      toTell.delete(child);
      if (children[index] === child) children[index] = undefined;
      if (closing) return;
      log.error({ imapProcess: index, pid: child.process.pid, code, signal }, 'imap process died: starting it again');
      const lived = Date.now() - child.startedAt;
      const delay = lived >= HEALTHY_AFTER_MS ? 0 : restartDelay[index]!;
      restartDelay[index] = lived >= HEALTHY_AFTER_MS ? RESTART_DELAY_MS : Math.min(delay * 2, RESTART_DELAY_MAX_MS);
      setTimeout(() => {
        if (!closing) start(index).catch((error: unknown) => log.error({ imapProcess: index, err: (error as Error).message }, 'imap process failed to start'));
      }, delay).unref();
    });
    child.process.send({ t: 'init', config: deps.config, nodeId: deps.nodeId ?? 'local', index } satisfies ParentMessage);
    return ready;
  }

  /** The ready child with the fewest connections. */
  function pick(): Child | undefined {
    let best: Child | undefined;
    for (const child of children) if (child?.ready && child.process.connected && (!best || child.connections.size < best.connections.size)) best = child;
    return best;
  }

  function refuse(socket: Socket, reason: string): void {
    log.warn({ remote: socket.remoteAddress, reason }, 'connection refused');
    socket.on('error', () => undefined);
    refuseConnection(socket, reason);
  }

  // Paused on accept: the child reads the first byte (the gateway link header, or a command).
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    if (closing) return refuse(socket, 'server shutting down');
    if (connections >= limits.connections) return refuse(socket, 'too many connections');
    // Per-address limits apply to clients, not to gateway links: the gateway applies them itself.
    const peer = socket.remoteAddress ?? 'unknown';
    const counted = expectsGatewayLink(trust, peer) ? undefined : peer;
    if (counted !== undefined && (perIp.get(counted) ?? 0) >= limits.connectionsPerIp) return refuse(socket, 'too many connections from your address');
    const child = pick();
    if (!child) return refuse(socket, 'IMAP is restarting');
    const id = nextConnection++;
    connections++;
    if (counted !== undefined) perIp.set(counted, (perIp.get(counted) ?? 0) + 1);
    child.connections.set(id, counted);
    child.process.send({ t: 'socket', id } satisfies ParentMessage, socket, (error) => {
      if (!error) return;
      // The child went away meanwhile: its exit released the count.
      log.warn({ imapProcess: child.index, err: error.message }, 'could not hand a connection to an imap process');
      socket.destroy();
    });
  });
  server.on('error', (error) => log.error({ err: error.message }, 'listener error'));

  const stopChildren = async (deadline: Date) => {
    const running = children.filter((child): child is Child => child !== undefined);
    await Promise.all(
      running.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.process.exitCode !== null || child.process.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.process.kill('SIGKILL'), Math.max(0, deadline.getTime() - Date.now()) + 3000);
            child.process.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            if (child.process.connected) child.process.send({ t: 'close', deadline: deadline.getTime() } satisfies ParentMessage);
            else child.process.kill('SIGTERM');
          }),
      ),
    );
  };

  try {
    await Promise.all(children.map((_, index) => start(index)));
  } catch (error) {
    closing = true;
    unwatch();
    await stopChildren(new Date());
    throw error;
  }
  const bound = await listen(server, host, port);
  log.info({ processes: count }, 'imap sessions run in child processes');

  return {
    name: 'imap',
    host,
    port: bound,
    connections: () => connections,
    processIds: () => children.flatMap((child) => (child?.ready && child.process.pid !== undefined ? [child.process.pid] : [])),
    async close(deadline: Date) {
      closing = true;
      unwatch();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await stopChildren(deadline);
      await stopped;
      log.info('imap stopped');
    },
  };
}

