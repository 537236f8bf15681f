// What every protocol listener gets from the composition root, and what it gives back.
import type { Authenticator } from './auth/authenticator.js';
import type { Config } from './config/config.js';
import type { Resolver } from './dns/resolver.js';
import type { Store } from './store/types.js';
import type { Logger } from './util/logger.js';
import type { TlsMaterial } from './util/tls.js';

/** `S`: the store roles the listener uses (e.g. POP3: `Directory & Mailstore & Blobs`); the root hands in the whole Store. */
export interface ServiceDeps<S = Store> {
  config: Readonly<Config>;
  store: S;
  logger: Logger;
  tls: TlsMaterial;
  auth: Authenticator;
  /** This process's name in the membership (tells a client behind a gateway which node answered). */
  nodeId?: string;
  /** The node's one DNS resolver (src/dns/resolver.ts): mail authentication, PTR, routing; tests hand in a fake zone. */
  resolver: Resolver;
}

export interface Service {
  readonly name: string;
  readonly host: string;
  /** The bound port (useful when configured as 0). */
  readonly port: number;
  /** Open sessions, for the load figures in the heartbeat. */
  connections?(): number;
  /** Child processes that serve it (IMAP with imap.processes > 1): tests measure and kill them. */
  processIds?(): number[];
  /** Stops accepting, lets open transactions finish within the deadline, then closes sessions. */
  close(deadline: Date): Promise<void>;
}
