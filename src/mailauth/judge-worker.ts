// One thread of the inbound judge pool (pool.ts): runs judgeInbound for the main thread and asks
// the main thread's resolver for DNS answers, so the node keeps one cache and one budget. An
// answer comes back with how long that cache keeps it, and is kept here as long (no longer).
// First: mailauth must be loaded after the key cache is in place.
import './key-cache.js';
import { parentPort, workerData } from 'node:worker_threads';
import type { Resolver } from '../dns/resolver.js';
import { judgeInbound } from './inbound.js';
import type { DnsHits, FromWorker, ToWorker, WorkerSetup } from './pool.js';

const port = parentPort!;
const setup = (workerData as { setup: WorkerSetup }).setup;
let nextLookup = 1;
type Method = Exclude<keyof Resolver, 'cachedMs' | 'countCopiedHits'>;
const lookups = new Map<number, { key: string; resolve(value: unknown): void; reject(error: Error): void }>();
/** Answers the main thread's cache still holds, with when they expire there. */
const answers = new Map<string, { expires: number; value?: unknown; error?: { message: string; code?: string } }>();
/** Names a message's checks ask about are few (the sender's domain, its DMARC and DKIM records). */
const MAX_ANSWERS = 1000;
/** Answers given from `answers` since the last verdict: the main thread counts them as cache hits. */
let hits: DnsHits = { hits: 0, negativeHits: 0 };

function takeHits(): DnsHits {
  const taken = hits;
  hits = { hits: 0, negativeHits: 0 };
  return taken;
}

function dnsError(error: { message: string; code?: string }): Error {
  return Object.assign(new Error(error.message), { code: error.code });
}

function ask(method: Method, arg: string): Promise<never> {
  const key = `${method} ${arg.toLowerCase()}`;
  const kept = answers.get(key);
  // A copy each time, as a message from the main thread would be: mailauth may change what it gets.
  if (kept && kept.expires > Date.now()) {
    if (kept.error) hits.negativeHits++;
    else hits.hits++;
    return (kept.error ? Promise.reject(dnsError(kept.error)) : Promise.resolve(structuredClone(kept.value))) as Promise<never>;
  }
  if (kept) answers.delete(key);
  return new Promise((resolve, reject) => {
    const id = nextLookup++;
    lookups.set(id, { key, resolve: resolve as (value: unknown) => void, reject });
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
    if (message.cachedMs > 0) {
      answers.set(lookup.key, { expires: Date.now() + message.cachedMs, value: message.value, error: message.error });
      if (answers.size > MAX_ANSWERS) answers.delete(answers.keys().next().value!);
    }
    if (message.error) lookup.reject(dnsError(message.error));
    else lookup.resolve(message.value);
    return;
  }
  const raw = Buffer.from(message.raw.buffer, message.raw.byteOffset, message.raw.byteLength);
  judgeInbound(raw, message.facts, { hostname: setup.hostname, resolver, policy: setup.policy }).then(
    (verdict) => port.postMessage({ type: 'verdict', id: message.id, verdict, hits: takeHits() } satisfies FromWorker),
    (error: unknown) => port.postMessage({ type: 'failed', id: message.id, message: error instanceof Error ? error.message : String(error), hits: takeHits() } satisfies FromWorker),
  );
});
