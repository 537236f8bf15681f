// Role methods that only need the right store: one definition of "forward to the store this
// call belongs to", instead of one method per Store method.
import type { Store } from '../types.js';

type Method = (...args: unknown[]) => unknown;

/**
 * Methods `names` of Store, each sent to the store `pick` chooses for its arguments. Those named
 * in `streams` return an async generator (the stream is opened once the store is known).
 */
export function forward<const N extends readonly (keyof Store & string)[]>(
  names: N,
  pick: (args: unknown[]) => Store | Promise<Store>,
  streams: readonly N[number][] = [],
): Pick<Store, N[number]> {
  const out: Record<string, Method> = {};
  // Called as a method of the store, so `this` is the store.
  const call = (store: Store, name: string, args: unknown[]) => (store as unknown as Record<string, Method>)[name]!(...args);
  for (const name of names) {
    out[name] = streams.includes(name)
      ? async function* (...args: unknown[]): AsyncGenerator<unknown> {
          yield* call(await pick(args), name, args) as AsyncGenerator<unknown>;
        }
      : async (...args: unknown[]) => call(await pick(args), name, args);
  }
  return out as unknown as Pick<Store, N[number]>;
}
