// What the gateway's three fronts share about their links to nodes (issue 20): how a link is
// lost, how a node's refusal differs from a dead node, and the pause between failover attempts.
// Node health is decided by liveness alone (a failed connection, a link that closes or stops
// answering, the probe, heartbeats): a node that answers, even with a refusal (421, -ERR, BYE,
// BAD), is alive and stays in rotation for everyone else; the session tries another node or
// the client hears the refusal.

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
