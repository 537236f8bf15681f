// What the gateway's three fronts share about their links to nodes (issue 20): how a link is
// lost, how a node's refusal differs from a dead node, and the pause between failover attempts.
// Node health is decided by liveness alone (a failed connection, a link that closes or stops
// answering, the probe, heartbeats): a node that answers, even with a refusal (421, -ERR, BYE,
// BAD), is alive and stays in rotation for everyone else; the session tries another node or
// the client hears the refusal.
import type net from 'node:net';
import type tls from 'node:tls';
import type { Authenticator } from '../auth/authenticator.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../util/logger.js';
import type { NodeDirectory } from './directory.js';
import { SocketReader } from '../protocol/socket-reader.js';
import { connectNode } from './connect.js';
import { roomOrClose } from '../net/room.js';

/** What every front is given: the config, the nodes, the login check, TLS and a logger. */
export interface FrontDeps {
  config: Readonly<Config>;
  directory: NodeDirectory;
  auth: Authenticator;
  tlsContext?: tls.SecureContext;
  logger: Logger;
}

/** The link to the node is gone or unusable: the session moves (or the client hears an error). */
export class LinkLost extends Error {}

/**
 * The node answered but refused (over its connection limit, closing the channel, a command
 * refused): try another node, but the node is alive; it is not taken out of rotation.
 */
export class NodeRefused extends LinkLost {}

/** Whether a failure says anything about the node's liveness. */
export function provesNodeDown(error: unknown): boolean {
  return !(error instanceof NodeRefused);
}

/** A pause before the next failover attempt: the gateway's probes catch up meanwhile. */
export function backoff(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, attempt === 0 ? 0 : 250 * attempt));
}

/** A node a session may be carried on (NodeDirectory.candidates). */
export interface Candidate {
  id: string;
  address: string;
}

/**
 * A plain link to a node (connect.ts), its failure to connect a lost link; errors after that
 * surface as the link closing. With a cluster secret the gateway's proof goes first.
 */
export async function openNodeSocket(address: string, timeoutMs: number, secret: string | undefined): Promise<net.Socket> {
  const socket = await connectNode(address, timeoutMs, secret).catch((error: Error) => {
    throw new LinkLost(error.message);
  });
  socket.on('error', () => undefined);
  return socket;
}

/**
 * The first candidate that takes the session: each in turn gets a link (`open`) brought to the
 * session's state (`setUp`). A node whose link is lost is marked failed (unless it only refused:
 * provesNodeDown) and the next is tried; an error that `ends` says so ends the search at once.
 */
export async function firstTaker<L extends { close(): void }, R = void>(
  candidates: readonly Candidate[],
  directory: { markFailed(id: string, cause?: unknown): void },
  hooks: { open: (node: Candidate) => Promise<L>; setUp: (link: L, node: Candidate) => Promise<R>; ends: (error: unknown) => boolean },
): Promise<{ link: L; node: Candidate; set: R }> {
  if (candidates.length === 0) throw new LinkLost('no node available');
  let lastError: unknown;
  for (const node of candidates) {
    let link: L | undefined;
    try {
      link = await hooks.open(node);
      return { link, node, set: await hooks.setUp(link, node) };
    } catch (error) {
      link?.close();
      if (hooks.ends(error)) throw error;
      lastError = error;
      directory.markFailed(node.id, error);
    }
  }
  throw new LinkLost(`no node could take the session: ${(lastError as Error)?.message}`);
}

/**
 * Runs one step of a session on its node link, moving the session when the link is lost: `moved`
 * (the lost node marked, the link dropped: the next step opens one on another node and replays)
 * up to `maxMoves` times with a backoff between, then `giveUp`. Any other error goes to `giveUp` too.
 */
export async function withFailover<T>(hooks: {
  maxMoves: number;
  step: (attempt: number) => Promise<T>;
  moved: (cause: unknown) => void;
  giveUp: (cause: unknown) => T | Promise<T>;
  pause?: (attempt: number) => Promise<void>;
}): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await hooks.step(attempt);
    } catch (error) {
      if (!(error instanceof LinkLost) || attempt >= hooks.maxMoves) return hooks.giveUp(error);
      hooks.moved(error);
      await (hooks.pause ?? backoff)(attempt);
    }
  }
}

/** Longest line from a node before the link counts as broken. */
const NODE_LINE_MAX = 64 * 1024;

/** A link to a node that answers in CRLF lines (SMTP, POP3): what it reads, and writes with backpressure. */
export class LineLink {
  readonly reader: SocketReader;

  constructor(
    readonly nodeId: string,
    readonly socket: net.Socket,
  ) {
    this.reader = new SocketReader(socket, { maxLine: NODE_LINE_MAX, onEnd: () => new LinkLost('node connection closed') });
  }

  /** The next line; an overlong one breaks the link. */
  async line(): Promise<string> {
    const line = await this.reader.text();
    if (line === undefined) throw new LinkLost('overlong line from node');
    return line;
  }

  send(data: string | Buffer): void {
    if (this.socket.destroyed) throw new LinkLost('node connection closed');
    this.socket.write(data);
  }

  /** Resolves once the node's socket has room again (backpressure); at once when it has. */
  drained(): Promise<void> {
    const socket = this.socket;
    if (!socket.writableNeedDrain || socket.destroyed) return Promise.resolve();
    return roomOrClose(socket).then(() => undefined);
  }

  close(): void {
    this.socket.destroy();
  }
}
