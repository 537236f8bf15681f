// Store latency without touching every Store method: the composition root wraps the store in
// a Proxy that times each call that returns a promise (quill_store_seconds by operation).
// Methods run on the real store (`this` is the target), so calls a backend makes to itself
// are not counted twice and private fields keep working.
import { performance } from 'node:perf_hooks';
import type { Store } from '../store/types.js';
import type { Metrics } from './metrics.js';

type Method = (...args: unknown[]) => unknown;

function isThenable(value: unknown): value is Promise<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

export function measuredStore<T extends Store>(store: T, metrics: Metrics, node: string): T {
  // Keyed by the method itself: a method replaced on the store (a test's stub) gets its own wrapper.
  const wrappers = new WeakMap<Method, Method>();
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== 'function' || typeof property !== 'string' || property === 'constructor') return value;
      const original = value as Method;
      let wrapper = wrappers.get(original);
      if (!wrapper) {
        const timer = metrics.storeSeconds.labels(node, property);
        const errors = metrics.storeErrors.labels(node, property);
        wrapper = (...args: unknown[]) => {
          const started = performance.now();
          const result = original.apply(target, args);
          if (!isThenable(result)) return result;
          return result.then(
            (ok) => {
              timer.observe((performance.now() - started) / 1000);
              return ok;
            },
            (error: unknown) => {
              timer.observe((performance.now() - started) / 1000);
              errors.inc();
              throw error;
            },
          );
        };
        wrappers.set(original, wrapper);
      }
      return wrapper;
    },
  });
}
