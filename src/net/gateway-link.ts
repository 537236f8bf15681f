// Authenticated gateway→node links (issue 20). With a cluster secret configured (cluster.secret),
// a gateway starts every connection to a node with one line that proves it knows the secret,
//   QUILL-GATEWAY <unix ms> <nonce> <HMAC-SHA256(secret, "<unix ms> <nonce>") base64url>\r\n
// before any PROXY line. A node believes PROXY headers, XCLIENT, XQUILL-LOGIN and forwarded HTTP
// headers only on a connection that (a) comes from an address in trustedGateways and (b) when a
// secret is configured, started with a valid proof: address alone is then never enough.
// A proof is good for PROOF_WINDOW_MS either side of the node's clock and only once (its nonce is
// remembered for the window), so a captured line cannot be replayed later.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Config } from '../config/config.js';
import { readFirstLine, type FirstLineTrouble } from '../protocol/first-line.js';
import { fromTrustedGateway, readProxyHeader } from '../protocol/proxy-header.js';

export const HELLO_VERB = 'QUILL-GATEWAY';
const PROOF_WINDOW_MS = 60_000;
/** Longest proof line, CRLF included. */
const MAX_HELLO_BYTES = 200;
/** Nonces remembered at most (a flood of valid proofs is only possible with the secret). */
const MAX_NONCES = 200_000;

/** Sockets a node accepted as verified gateway links. */
const links = new WeakSet<Socket>();

export function markGatewayLink(socket: Socket): void {
  links.add(socket);
}

/** Whether this socket is a gateway link the node verified (address, and proof when a secret is set). */
export function isGatewayLink(socket: Socket | undefined): boolean {
  return socket !== undefined && links.has(socket);
}

function mac(secret: string, message: string): string {
  return createHmac('sha256', secret).update(message).digest('base64url');
}

/** The line a gateway sends first on a node connection (CRLF included). */
export function gatewayHello(secret: string, now = Date.now()): string {
  const message = `${now} ${randomBytes(12).toString('base64url')}`;
  return `${HELLO_VERB} ${message} ${mac(secret, message)}\r\n`;
}

/** Checks proof lines: right MAC, fresh, and not seen before. */
export class GatewayProofs {
  private readonly seen = new Map<string, number>();

  constructor(private readonly secret: string) {}

  check(line: string, now = Date.now()): boolean {
    const parts = line.split(' ');
    if (parts.length !== 4 || parts[0] !== HELLO_VERB) return false;
    const [, time = '', nonce = '', given = ''] = parts;
    const at = Number(time);
    if (!/^\d{1,16}$/.test(time) || Math.abs(now - at) > PROOF_WINDOW_MS || !/^[A-Za-z0-9_-]{8,64}$/.test(nonce)) return false;
    const expected = Buffer.from(mac(this.secret, `${time} ${nonce}`));
    const got = Buffer.from(given);
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) return false;
    this.forget(now);
    if (this.seen.has(nonce)) return false;
    if (this.seen.size >= MAX_NONCES) return false;
    this.seen.set(nonce, at);
    return true;
  }

  private forget(now: number): void {
    // Insertion order is nearly time order: drop from the front while old.
    for (const [nonce, at] of this.seen) {
      if (now - at <= 2 * PROOF_WINDOW_MS) break;
      this.seen.delete(nonce);
    }
  }
}

/** What a node needs to decide whether a connection is a gateway link. */
export interface GatewayTrust {
  trusted: readonly string[];
  /** Set when cluster.secret is: links must prove it. */
  proofs?: GatewayProofs;
}

const trusts = new WeakMap<object, GatewayTrust>();

/** One trust per config (one nonce memory per process for all its listeners). */
export function gatewayTrust(config: Readonly<Pick<Config, 'trustedGateways' | 'cluster'>>): GatewayTrust {
  let trust = trusts.get(config);
  if (!trust) {
    const secret = config.cluster.secret;
    trust = { trusted: config.trustedGateways, proofs: secret ? new GatewayProofs(secret) : undefined };
    trusts.set(config, trust);
  }
  return trust;
}

/** Whether a connection from this peer must be a gateway link (start with the proof and/or PROXY line). */
export function expectsGatewayLink(trust: GatewayTrust, remoteAddress: string | undefined): boolean {
  return fromTrustedGateway(remoteAddress, trust.trusted);
}

export class GatewayProofError extends Error {}

/**
 * Reads the proof line from the start of a socket from a trusted address, when a secret is set
 * (resolves at once otherwise). Bytes after it are put back; the socket is left paused.
 * Rejects on a missing, wrong, stale or replayed proof, or after timeoutMs.
 */
export async function readGatewayHello(socket: Socket, trust: GatewayTrust, timeoutMs = 5_000): Promise<void> {
  const proofs = trust.proofs;
  if (!proofs) return;
  const line = await readFirstLine(socket, { maxBytes: MAX_HELLO_BYTES, timeoutMs, error: (trouble) => new GatewayProofError(HELLO_TROUBLE[trouble]) });
  if (!proofs.check(line.toString('latin1'))) throw new GatewayProofError('gateway proof missing or wrong');
}

const HELLO_TROUBLE: Record<FirstLineTrouble, string> = {
  'too-long': 'no gateway proof',
  closed: 'connection closed before the gateway proof',
  timeout: 'no gateway proof in time',
};

/**
 * Hands a new connection on with the client's address: the one a gateway link's PROXY header
 * names, else the socket's own. A connection from a trusted address must be a gateway link:
 * without a valid proof (when a secret is set) or PROXY header it gets `refusal` and is closed.
 * Per-address limits are the gateway's business on a link (`viaGateway`). After a header the
 * socket is paused; `accept` resumes it once its reader is attached.
 */
export function acceptClient(
  socket: Socket,
  trust: GatewayTrust,
  onBadHeader: (error: Error) => void,
  accept: (socket: Socket, address: string, viaGateway: boolean) => void,
  refusal = '',
): void {
  const peer = socket.remoteAddress ?? 'unknown';
  if (!expectsGatewayLink(trust, peer)) return accept(socket, peer, false);
  readGatewayHello(socket, trust)
    .then(() => {
      const header = readProxyHeader(socket);
      socket.resume(); // left paused after the proof
      return header;
    })
    .then(
      (proxied) => {
        markGatewayLink(socket);
        accept(socket, proxied?.remoteAddress ?? peer, true);
      },
      (error: Error) => {
        onBadHeader(error);
        if (refusal && error instanceof GatewayProofError && !socket.destroyed) {
          socket.end(refusal);
          setTimeout(() => socket.destroy(), 1_000).unref();
        } else socket.destroy();
      },
    );
}
