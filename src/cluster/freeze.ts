// Fencing a node that was frozen (SIGSTOP, a stalled VM, an event loop blocked for seconds). By the
// time it runs again the gateways may have given it up (heartbeats older than DEAD_AFTER_MS and a
// failed probe, src/gateway/directory.ts) and carried its sessions to other nodes, telling their
// clients that a command in flight has an unknown outcome and that those queued behind it were not
// carried out. What the clients had sent to this node is still in its socket buffers: carried out
// now, it would happen behind their backs (an APPEND the client then sends again, stored twice).
// A gateway's session that finds the process was frozen that long drops its connection unread.
import { DEAD_AFTER_MS } from './membership.js';

/** How often the watch notes that the process runs. */
const TICK_MS = 100;
/** Heartbeats come every second: a node frozen right after a beat can be given up this soon. */
const BEAT_INTERVAL_MS = 1_000;
/**
 * Frozen at least this long and a gateway may have moved its sessions already: by its heartbeats
 * (DEAD_AFTER_MS), or sooner by hang detection on the session links (gateway.hangDetectMs, 300 ms
 * owed and a 300 ms probe: no node frozen for less than some 600 ms is given up that way). A
 * measured gap of 500 ms is a freeze of at least 400 ms: on the safe side of both.
 */
export const FROZEN_AFTER_MS = Math.min(DEAD_AFTER_MS - BEAT_INTERVAL_MS - TICK_MS, 500);

/** After a freeze, reads within this long are taken to be what piled up during it. */
const THAW_GRACE_MS = 1_000;

let lastTick = Date.now();
/** When the watch last found it had been frozen (the first tick after the freeze). */
let thawedAt = -Infinity;
let timer: NodeJS.Timeout | undefined;

/** Starts noting that the process runs (idempotent); the node calls it at start. */
export function watchFreezes(): void {
  if (timer) return;
  lastTick = Date.now();
  timer = setInterval(() => {
    const now = Date.now();
    if (now - lastTick >= FROZEN_AFTER_MS) thawedAt = now;
    lastTick = now;
  }, TICK_MS);
  timer.unref();
}

/**
 * Whether a connection open since `openedAt` may hold input from before a freeze long enough for
 * gateways to have given this process up. After a stop, libuv may run the overdue timers before
 * the socket reads that piled up, or the reads first: both are covered, by the stale tick or by a
 * short grace after the tick that found the freeze.
 */
export function frozenSince(openedAt: number, now = Date.now()): boolean {
  if (timer === undefined) return false;
  if (now - lastTick >= FROZEN_AFTER_MS) return true;
  return openedAt < thawedAt && now - thawedAt < THAW_GRACE_MS;
}
