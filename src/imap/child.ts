// An IMAP child process (imap.processes > 1, see processes.ts): opens the server's SQLite file
// itself, takes the sockets the listening process accepted and runs their sessions. Passwords
// are checked by the listening process's Authenticator (one login throttle, one verified cache);
// changes this process writes are announced to the others through the listening process, and
// a word from it makes this process read the changes the others wrote at once.
import type { Socket } from 'node:net';
import { Authenticator, type AuthResult } from '../auth/authenticator.js';
import { watchFreezes } from '../cluster/freeze.js';
import type { Config } from '../config/config.js';
import { CachingResolver } from '../dns/resolver.js';
import type { ServiceDeps } from '../service.js';
import { SqliteStore } from '../store/sqlite.js';
import { createLogger } from '../util/logger.js';
import { configurePasswords } from '../util/password.js';
import { loadTls } from '../util/tls.js';
import type { ChildMessage, ParentMessage } from './processes.js';
import { sessionHost } from './server.js';

/** The longest the word of this process's changes waits, to go out once for the commits meanwhile. */
const NUDGE_MS = 2;
const ENDED_BATCH_MS = 20;

function send(message: ChildMessage): void {
  if (process.connected) process.send!(message);
}

/** Asks the listening process to check a login; its answer comes back by id. */
class ParentAuthenticator extends Authenticator {
  private nextId = 1;
  readonly waiting = new Map<number, { resolve: (result: AuthResult) => void; reject: (error: Error) => void }>();

  override authenticate(address: string, password: string, remoteIp: string): Promise<AuthResult> {
    const id = this.nextId++;
    return new Promise<AuthResult>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      send({ t: 'auth', id, address, password, remoteIp });
    });
  }

  answered(id: number, result: AuthResult | undefined, error: string | undefined): void {
    const waiter = this.waiting.get(id);
    if (!waiter) return;
    this.waiting.delete(id);
    if (result) waiter.resolve(result);
    else waiter.reject(new Error(error ?? 'login check failed'));
  }
}

async function run(config: Readonly<Config>, nodeId: string, index: number): Promise<void> {
  const logger = createLogger(config.log.level).child({ imapProcess: index });
  // The server process migrated the file and runs the full-text indexer and housekeeping.
  const store = await SqliteStore.open(config.data, { maxDatabaseBytes: config.store.maxDatabaseBytes, fsyncFlagChanges: config.store.fsyncFlagChanges, textIndexer: false });
  const tls = await loadTls(config.data, config.hostname, config.tls);
  configurePasswords({ scryptN: config.limits.passwordScryptN, concurrency: config.limits.passwordHashConcurrency });
  const auth = new ParentAuthenticator(store, config.limits);
  const resolver = new CachingResolver(config.dns);
  const deps: ServiceDeps = { config, store, logger, tls, auth, nodeId, resolver };
  const host = sessionHost(deps, { sharedStore: true });
  // Own writes: one word per NUDGE_MS at most, however many commits (an IPC message costs a
  // system call on both sides). Sessions elsewhere read changes before each command anyway: the
  // word is what wakes IDLE and sessions waiting between commands.
  let nudge: NodeJS.Timeout | undefined;
  const unwatch = store.onOwnChanges(() => {
    nudge ??= setTimeout(() => {
      nudge = undefined;
      send({ t: 'changed' });
    }, NUDGE_MS);
  });
  // Ended connections, told in batches: only the listener's connection counts wait for them.
  let ended: number[] = [];
  const tellEnded = (id: number) => {
    if (ended.push(id) > 1) return;
    setTimeout(() => {
      send({ t: 'ended', ids: ended });
      ended = [];
    }, ENDED_BATCH_MS);
  };

  let closing: Promise<void> | undefined;
  const close = (deadline: Date) =>
    (closing ??= (async () => {
      unwatch();
      clearTimeout(nudge);
      await host.close(deadline);
      for (const waiter of auth.waiting.values()) waiter.reject(new Error('closing'));
      await store.close();
      resolver.close();
      process.exit(0);
    })());

  process.on('message', (message: ParentMessage, handle?: unknown) => {
    if (message.t === 'socket') {
      const socket = handle as Socket | undefined;
      if (!socket) return;
      host.take(socket, undefined, () => tellEnded(message.id));
    } else if (message.t === 'changed') store.syncChanges();
    else if (message.t === 'auth') auth.answered(message.id, message.result, message.error);
    else if (message.t === 'close') void close(new Date(message.deadline));
  });
  // The server process is gone: nobody hands sockets or checks logins any more.
  process.on('disconnect', () => void close(new Date(Date.now() + 2000)));
  // A gateway's sessions here are fenced after a freeze of this process, as in the server process (freeze.ts).
  watchFreezes();
  send({ t: 'ready' });
}

process.once('message', (message: ParentMessage) => {
  if (message.t !== 'init') return;
  run(message.config, message.nodeId, message.index).catch((error: unknown) => {
    console.error('imap process failed to start:', error);
    process.exit(1);
  });
});
