// One thread of the inbound judge pool (pool.ts): runs judgeInbound for the main thread and asks
// the main thread's resolver for every DNS answer, so the node keeps one cache and one budget.
// First: mailauth must be loaded after the key cache is in place.
import './key-cache.js';
import { parentPort, workerData } from 'node:worker_threads';
import type { Resolver } from '../dns/resolver.js';
import { judgeInbound } from './inbound.js';
import type { FromWorker, ToWorker, WorkerSetup } from './pool.js';

const port = parentPort!;
const setup = (workerData as { setup: WorkerSetup }).setup;
let nextLookup = 1;
const lookups = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();

function ask(method: keyof Resolver, arg: string): Promise<never> {
  return new Promise((resolve, reject) => {
    const id = nextLookup++;
    lookups.set(id, { resolve: resolve as (value: unknown) => void, reject });
    port.postMessage({ type: 'dns', id, method, arg } satisfies FromWorker);
  });
}

const resolver: Resolver = {
  resolveMx: (name) => ask('resolveMx', name),
  resolve4: (name) => ask('resolve4', name),
  resolve6: (name) => ask('resolve6', name),
  resolveTxt: (name) => ask('resolveTxt', name),
  reverse: setup.reverse ? (ip) => ask('reverse', ip) : undefined,
  resolvePtr: setup.resolvePtr ? (name) => ask('resolvePtr', name) : undefined,
};

port.on('message', (message: ToWorker) => {
  if (message.type === 'dns') {
    const lookup = lookups.get(message.id);
    if (!lookup) return;
    lookups.delete(message.id);
    if (message.error) lookup.reject(Object.assign(new Error(message.error.message), { code: message.error.code }));
    else lookup.resolve(message.value);
    return;
  }
  const raw = Buffer.from(message.raw.buffer, message.raw.byteOffset, message.raw.byteLength);
  judgeInbound(raw, message.facts, { hostname: setup.hostname, resolver, policy: setup.policy }).then(
    (verdict) => port.postMessage({ type: 'verdict', id: message.id, verdict } satisfies FromWorker),
    (error: unknown) => port.postMessage({ type: 'failed', id: message.id, message: error instanceof Error ? error.message : String(error) } satisfies FromWorker),
  );
});
