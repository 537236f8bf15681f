// The gateway's picture of the nodes (DESIGN.md "Membership"): it re-reads the membership
// from the store, probes every node itself, and drops a node at its first failed probe or
// failed connection — not only after missed heartbeats. Picking is by reported load, with a
// user's sessions kept on one node while that costs little balance (affinity, as in Porcupine:
// the node's caches of that user's mailboxes stay warm).
// A node that stops answering without closing its connections (SIGSTOP, a hang, a cut network)
// is given up for dead once its heartbeats have stopped (DEAD_AFTER_MS) and it fails its probe:
// the gateway cuts its connections to it, and the sessions on it move as if it had died. Sooner,
// on the session links themselves (issue 20): when a link owes a reply for longer than
// gateway.hangDetectMs, a fast probe of the node follows at once; no answer to it within the same
// time and the node is given up, so a client's stall stays well under a second.
import { createHash } from 'node:crypto';
import http from 'node:http';
import { isAlive } from '../cluster/membership.js';
import { splitHostPort } from '../config/config.js';
import { dropConnections, watchLinks } from './connect.js';
import { provesNodeDown } from './node-link.js';
import type { Cluster, Member } from '../store/types.js';
import type { Logger } from '../util/logger.js';

export interface NodeView {
  readonly id: string;
  member: Member;
  /** Whether the last probe (or connection) succeeded. */
  healthy: boolean;
  /** Sessions this gateway opened to the node per protocol since its last heartbeat. */
  openedSinceBeat: Map<string, number>;
  /** Its last heartbeat is older than DEAD_AFTER_MS (as of the last read of the membership). */
  stale?: boolean;
  /** Its connections were cut as a dead node's. */
  givenUp?: boolean;
}

export interface DirectoryOptions {
  probeIntervalMs: number;
  probeTimeoutMs: number;
  /** A user's home node takes the user's sessions while it has at most this many more than the least loaded. */
  affinitySlack?: number;
  /** A link owing a reply this long triggers a fast probe with this timeout (0: off). */
  hangDetectMs?: number;
}

/** A node whose heartbeats stopped this long ago is forgotten even if it still answers probes. */
const FORGET_AFTER_MS = 30_000;

export class NodeDirectory {
  private readonly nodes = new Map<string, NodeView>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private stopWatch: (() => void) | undefined;
  /** Nodes with a fast probe under way. */
  private readonly suspected = new Set<string>();

  constructor(
    private readonly store: Cluster,
    private readonly options: DirectoryOptions,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.probeIntervalMs);
    this.timer.unref();
    const hang = this.options.hangDetectMs ?? 0;
    if (hang > 0) this.stopWatch = watchLinks(hang, (address) => void this.suspect(address, hang));
  }

  /** A link to the node at this address owes a reply: a fast probe says whether the node hangs. */
  private async suspect(address: string, timeoutMs: number): Promise<void> {
    const node = [...this.nodes.values()].find((n) => Object.values(n.member.addresses).includes(address));
    if (!node || node.givenUp || this.suspected.has(node.id)) return;
    const http = node.member.addresses.http;
    if (!http) return;
    // Giving up the last node moves nobody anywhere: a slow node is then better than none.
    const elsewhere = [...this.nodes.values()].some((n) => n !== node && n.healthy && !n.stale && !n.givenUp && n.member.state === 'active');
    if (!elsewhere) return;
    this.suspected.add(node.id);
    try {
      if (await probeHealth(http, timeoutMs)) return;
      if (this.nodes.get(node.id) !== node) return;
      this.giveUp(node, `a session link owed a reply for over ${timeoutMs} ms and the node did not answer a probe within ${timeoutMs} ms`);
    } finally {
      this.suspected.delete(node.id);
    }
  }

  stop(): void {
    this.stopWatch?.();
    this.stopWatch = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Re-reads the membership and probes every live node; overlapping calls share one run. */
  refresh(): Promise<void> {
    return (this.refreshing ??= this.refreshOnce().finally(() => (this.refreshing = undefined)));
  }

  private async refreshOnce(): Promise<void> {
    try {
      this.update(await this.store.listMembers());
    } catch (error) {
      // Without the store we keep the last picture; probes still run on it.
      this.logger.warn({ err: (error as Error).message }, 'gateway: membership unreadable');
    }
    await Promise.all([...this.nodes.values()].map((node) => this.probe(node)));
    for (const node of [...this.nodes.values()]) {
      if (!node.stale) continue;
      // No heartbeats and no answer to the probe either: dead, or hung with its connections
      // open. (Heartbeats alone can stop for a while when the node cannot reach the store.)
      if (!node.healthy) this.giveUp(node, 'its heartbeats stopped and it does not answer');
      if (node.givenUp || Date.now() - node.member.beatAt.getTime() > FORGET_AFTER_MS) {
        this.nodes.delete(node.id);
        this.logger.info({ node: node.id }, 'gateway: node left or died');
      }
    }
  }

  /** The membership as read from the store: nodes join, beat, go stale or leave. */
  private update(members: Member[]): void {
    const now = Date.now();
    const seen = new Set<string>();
    for (const member of members) {
      if (member.kind !== 'node' || member.state === 'stopping') continue;
      const alive = isAlive(member, now);
      let known = this.nodes.get(member.id);
      if (!known) {
        if (!alive) continue;
        known = { id: member.id, member, healthy: true, openedSinceBeat: new Map() };
        this.nodes.set(member.id, known);
        this.logger.info({ node: member.id }, 'gateway: node joined');
      } else {
        if (known.member.beatAt.getTime() !== member.beatAt.getTime()) known.openedSinceBeat.clear();
        known.member = member;
      }
      known.stale = !alive;
      seen.add(member.id);
    }
    for (const id of [...this.nodes.keys()]) {
      if (!seen.has(id)) {
        this.nodes.delete(id);
        this.logger.info({ node: id }, 'gateway: node left');
      }
    }
  }

  private async probe(node: NodeView): Promise<void> {
    const address = node.member.addresses.http;
    if (!address) return;
    const ok = await probeHealth(address, this.options.probeTimeoutMs);
    if (ok !== node.healthy) this.logger.info({ node: node.id, healthy: ok }, ok ? 'gateway: node healthy again' : 'gateway: node failed its probe');
    node.healthy = ok;
    if (ok) node.givenUp = false;
  }

  /** Cuts this gateway's connections to a node that stopped answering (once until it answers again). */
  private giveUp(node: NodeView, why: string): void {
    node.healthy = false;
    if (node.givenUp) return;
    node.givenUp = true;
    const dropped = dropConnections(Object.values(node.member.addresses));
    if (dropped > 0) this.logger.warn({ node: node.id, connections: dropped }, `gateway: node given up for dead (${why}); its sessions move`);
  }

  /**
   * A connection to the node failed: take it out until a probe says otherwise. A node's refusal
   * (`cause` a NodeRefused: it answered) says it is alive and takes it out of nothing.
   */
  markFailed(id: string, cause?: unknown): void {
    if (cause !== undefined && !provesNodeDown(cause)) return;
    const node = this.nodes.get(id);
    if (node?.healthy) {
      node.healthy = false;
      this.logger.warn({ node: id }, 'gateway: connection to node failed; node taken out');
    }
  }

  noteOpened(id: string, protocol: string): void {
    const node = this.nodes.get(id);
    if (node) node.openedSinceBeat.set(protocol, (node.openedSinceBeat.get(protocol) ?? 0) + 1);
  }

  /**
   * Nodes able to take a new session of the protocol, least loaded first. With a user, the user's
   * home node comes first while its load is within the affinity slack of the least loaded one: of
   * the nodes that are, the one ranking highest for the user by rendezvous hashing, so every
   * gateway picks the same home without sharing anything, and a node joining or leaving moves
   * only the users whose home it is.
   */
  candidates(protocol: string, user?: string): { id: string; address: string }[] {
    const load = (node: NodeView) => (node.member.load.connections[protocol] ?? 0) + (node.openedSinceBeat.get(protocol) ?? 0);
    const nodes = [...this.nodes.values()]
      .filter((node) => node.healthy && !node.stale && node.member.state === 'active' && node.member.addresses[protocol])
      .sort((a, b) => load(a) - load(b) || a.member.load.eventLoopDelayMs - b.member.load.eventLoopDelayMs || a.id.localeCompare(b.id));
    if (user !== undefined && nodes.length > 1) {
      const limit = load(nodes[0]!) + (this.options.affinitySlack ?? 0);
      let home = 0;
      let best = -1;
      for (let i = 0; i < nodes.length && load(nodes[i]!) <= limit; i++) {
        const score = rendezvousScore(user, nodes[i]!.id);
        if (score > best) [home, best] = [i, score];
      }
      nodes.unshift(...nodes.splice(home, 1));
    }
    return nodes.map((node) => ({ id: node.id, address: node.member.addresses[protocol]! }));
  }

  list(): NodeView[] {
    return [...this.nodes.values()];
  }
}

/** The user's rank for a node (rendezvous, or highest-random-weight, hashing): 48 bits of a hash of both. */
function rendezvousScore(user: string, nodeId: string): number {
  return createHash('sha256').update(`${user.toLowerCase()}\0${nodeId}`).digest().readUIntBE(0, 6);
}

/** GET /healthz on a node: 200 within the timeout means healthy. */
function probeHealth(address: string, timeoutMs: number): Promise<boolean> {
  const { host, port } = splitHostPort(address);
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/healthz', timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error('probe timeout')));
    req.on('error', () => resolve(false));
  });
}
