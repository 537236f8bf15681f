// A small pool of worker threads that judge inbound mail (SPF, DKIM, DMARC, ARC through
// judgeInbound), so the CPU of DKIM hashing and mailauth's parsing is off the thread that accepts
// connections and stores mail. Workers ask the main thread's resolver for DNS (one cache, one set
// of metrics); the per-message budget (inbound.budgetMs) is applied in the worker as before.
// A worker that dies, or a check that outlives budgetMs by far, ends as temperror for its
// messages (RFC 7208 2.6.6, RFC 7489 6.6.3) and the worker is replaced: never a stalled transaction.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Resolver } from '../dns/resolver.js';
import type { InboundPolicy, InboundVerdict, SmtpFacts } from './inbound.js';

export interface WorkerSetup {
  hostname: string;
  policy: InboundPolicy;
  reverse: boolean;
  resolvePtr: boolean;
}

export type ToWorker =
  | { type: 'judge'; id: number; raw: Uint8Array; facts: SmtpFacts }
  | { type: 'dns'; id: number; value?: unknown; error?: { message: string; code?: string }; cachedMs: number };

export type FromWorker =
  | { type: 'verdict'; id: number; verdict: InboundVerdict; hits: DnsHits }
  | { type: 'failed'; id: number; message: string; hits: DnsHits }
  | { type: 'dns'; id: number; method: Exclude<keyof Resolver, 'cachedMs' | 'countCopiedHits'>; arg: string };

/** Answers a worker gave from its copies since its last verdict, for the resolver's metrics. */
export interface DnsHits {
  hits: number;
  negativeHits: number;
}

export interface JudgePoolOptions {
  hostname: string;
  policy: InboundPolicy;
  resolver: Resolver;
  /** Threads; default max(1, cores - 1). */
  size?: number;
  /** Called when a worker dies or is stopped for overrunning; the pool has already replaced it. */
  onWorkerLost?(reason: string): void;
  /** How long past budgetMs a check may run before its worker is stopped (default 10 s). */
  graceMs?: number;
}

interface Job {
  resolve(verdict: InboundVerdict): void;
  facts: SmtpFacts;
  timer: NodeJS.Timeout;
}

interface Slot {
  worker: Worker;
  jobs: Map<number, Job>;
  /** False once its worker is gone, until the replacement is spawned. */
  alive: boolean;
  started: number;
}

export function defaultWorkers(): number {
  return Math.max(1, availableParallelism() - 1);
}

/** The worker's entry: compiled JavaScript next to this file, or the .ts source through tsx. */
function workerEntry(): { file: URL; entry?: string } {
  if (import.meta.url.endsWith('.ts')) return { file: new URL('./tsx-worker.mjs', import.meta.url), entry: new URL('./judge-worker.ts', import.meta.url).href };
  return { file: new URL('./judge-worker.js', import.meta.url) };
}

/** What a message gets when its check could not finish: temperror for each method, accepted. */
export function temperrorVerdict(hostname: string, facts: SmtpFacts, why: string): InboundVerdict {
  const from = facts.sender ? ` smtp.mailfrom=${facts.sender}` : '';
  return {
    headers: `Authentication-Results: ${hostname};\r\n spf=temperror${from};\r\n dkim=temperror;\r\n dmarc=temperror\r\n`,
    action: 'accept',
    reason: why,
  };
}

export class JudgePool {
  private readonly slots: Slot[] = [];
  private nextJob = 1;
  private closed = false;
  private readonly setup: WorkerSetup;
  readonly size: number;

  constructor(private readonly options: JudgePoolOptions) {
    this.size = Math.max(1, options.size ?? defaultWorkers());
    this.setup = { hostname: options.hostname, policy: options.policy, reverse: !!options.resolver.reverse, resolvePtr: !!options.resolver.resolvePtr };
    for (let i = 0; i < this.size; i++) this.slots.push(this.spawn());
  }

  /** The live workers (tests stop one mid-check to see it replaced). */
  workers(): readonly Worker[] {
    return this.slots.map((slot) => slot.worker);
  }

  judge(raw: Buffer, facts: SmtpFacts): Promise<InboundVerdict> {
    if (this.closed) return Promise.resolve(temperrorVerdict(this.options.hostname, facts, 'verifier stopped'));
    // The least busy worker; checks are mostly CPU, but a DNS wait lets a worker take another.
    let slot: Slot | undefined;
    for (const candidate of this.slots) if (candidate.alive && (!slot || candidate.jobs.size < slot.jobs.size)) slot = candidate;
    // Every worker is being restarted after dying at start-up: do not wait for one.
    if (!slot) return Promise.resolve(temperrorVerdict(this.options.hostname, facts, 'no verifier thread running'));
    const id = this.nextJob++;
    const limit = (this.options.policy.budgetMs ?? 2500) + (this.options.graceMs ?? 10_000);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.lose(slot, `a check ran over ${limit} ms`), limit);
      slot.jobs.set(id, { resolve, facts, timer });
      slot.worker.postMessage({ type: 'judge', id, raw, facts } satisfies ToWorker);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    for (const slot of slots) this.fail(slot, 'verifier stopped');
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
  }

  private spawn(): Slot {
    const { file, entry } = workerEntry();
    // The process's node flags, but not one that only applies to the main entry (--input-type).
    const execArgv = process.execArgv.filter((flag) => !flag.startsWith('--input-type'));
    const worker = new Worker(file, { workerData: { setup: this.setup, entry }, execArgv });
    const slot: Slot = { worker, jobs: new Map(), alive: true, started: Date.now() };
    worker.on('message', (message: FromWorker) => this.onMessage(slot, message));
    // An uncaught error in the worker is followed by its exit, handled there.
    worker.on('error', () => {});
    worker.once('exit', (code) => this.lose(slot, `worker exited with code ${code}`));
    // An idle pool does not keep the process alive.
    worker.unref();
    return slot;
  }

  private onMessage(slot: Slot, message: FromWorker): void {
    if (message.type === 'dns') {
      const { resolver } = this.options;
      const fn = resolver[message.method] as ((arg: string) => Promise<unknown>) | undefined;
      const answer = fn ? fn.call(resolver, message.arg) : Promise.reject(Object.assign(new Error(`no ${message.method}`), { code: 'ENOTFOUND' }));
      // The worker keeps the answer as long as the cache here does: later messages from the same
      // domain then wait on no thread hop, however busy this thread is.
      const cachedMs = () => (message.method === 'reverse' ? 0 : (resolver.cachedMs?.(message.method, message.arg) ?? 0));
      answer.then(
        (value) => slot.worker.postMessage({ type: 'dns', id: message.id, value, cachedMs: cachedMs() } satisfies ToWorker),
        (error: unknown) => {
          const e = error as { message?: string; code?: string };
          slot.worker.postMessage({ type: 'dns', id: message.id, error: { message: String(e?.message ?? error), code: e?.code }, cachedMs: cachedMs() } satisfies ToWorker);
        },
      );
      return;
    }
    if (message.hits.hits + message.hits.negativeHits > 0) this.options.resolver.countCopiedHits?.(message.hits.hits, message.hits.negativeHits);
    const job = slot.jobs.get(message.id);
    if (!job) return;
    slot.jobs.delete(message.id);
    clearTimeout(job.timer);
    job.resolve(message.type === 'verdict' ? message.verdict : temperrorVerdict(this.options.hostname, job.facts, `verifier error: ${message.message}`));
  }

  private fail(slot: Slot, why: string): void {
    for (const job of slot.jobs.values()) {
      clearTimeout(job.timer);
      job.resolve(temperrorVerdict(this.options.hostname, job.facts, why));
    }
    slot.jobs.clear();
  }

  /** A worker died or overran: its messages get temperror, a new worker takes its place. */
  private lose(slot: Slot, why: string): void {
    const index = this.slots.indexOf(slot);
    if (index < 0 || !slot.alive) return;
    slot.alive = false;
    this.fail(slot, why);
    void slot.worker.terminate();
    this.options.onWorkerLost?.(why);
    if (this.closed) return;
    const replace = () => {
      if (!this.closed && this.slots[index] === slot) this.slots[index] = this.spawn();
    };
    // A worker that dies at once (a broken install) is restarted once a second, not in a loop.
    if (Date.now() - slot.started >= 1000) replace();
    else setTimeout(replace, 1000).unref();
  }
}
