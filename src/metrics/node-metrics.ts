// What one node adds to the process's metrics at scrape time: open connections per protocol
// (from each service's connections()) and the outbound queue by status (read from the store,
// cached so a scraper every few seconds costs one query).
import type { Queue } from '../store/types.js';
import { cached, type Metrics } from './metrics.js';

const QUEUE_CACHE_MS = 5_000;
const STATUSES = ['queued', 'sending', 'held', 'failed'] as const;

/** A listener as far as its metrics go (a Service of src/service.ts, named here by shape: metrics sit below the services). */
export interface CountedService {
  connections?(): number;
}

export function watchNode(metrics: Metrics, node: string, store: Queue, services: ReadonlyMap<string, CountedService>): () => void {
  const stopConnections = metrics.watchConnections((set) => {
    for (const [protocol, service] of services) set({ node, protocol }, service.connections?.() ?? 0);
  });
  const queueSizes = cached(QUEUE_CACHE_MS, async () => {
    const counts: Record<string, number> = Object.fromEntries(STATUSES.map((status) => [status, 0]));
    for (const entry of await store.listOutbound()) counts[entry.status] = (counts[entry.status] ?? 0) + 1;
    return counts;
  });
  const stopQueue = metrics.watchQueue(async (set) => {
    for (const [status, count] of Object.entries(await queueSizes())) set({ node, status }, count);
  });
  return () => {
    stopConnections();
    stopQueue();
  };
}
