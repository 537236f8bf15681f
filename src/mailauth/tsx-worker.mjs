// Worker bootstrap when Quillmail runs from its TypeScript sources (node --import tsx): a Worker
// does not inherit tsx's loader, so register it here and then load the real entry (workerData.entry).
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
