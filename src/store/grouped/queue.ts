// The Queue role of the grouped store: the outbound queue and DKIM keys are the directory
// database's. Listings note that their blobs are there too.
import type { Queue } from '../roles/queue.js';
import type { OutboundEntry } from '../types.js';
import { forward } from './forward.js';
import type { GroupRouter } from './router.js';

export function groupedQueue(r: GroupRouter): Queue {
  const directory = r.directoryStore;
  const noted = <T extends OutboundEntry[] | OutboundEntry | undefined>(entries: T): T => {
    if (entries) r.noteBlobs(directory, Array.isArray(entries) ? entries : [entries]);
    return entries;
  };
  return {
    ...forward(['deleteOutbound', 'setOutboundStatus', 'finishOutbound', 'deferOutbound', 'postponeOutbound', 'setDkimKey', 'getDkimKey'], () => directory),
    listOutbound: async () => noted(await directory.listOutbound()),
    getOutbound: async (id) => noted(await directory.getOutbound(id)),
    leaseOutbound: async (owner, leaseMs, limit) => noted(await directory.leaseOutbound(owner, leaseMs, limit)),
  };
}
