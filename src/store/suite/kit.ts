// What every part of the store suite starts from: one store per backend, opened once for the
// whole suite (a fresh PostgreSQL store is a database to create and migrate, three for groups),
// and in it a domain of the part's own with two users, so parts do not see each other's data.
import type { Store } from '../types.js';

export interface StoreFactory {
  /** A fresh, empty store. */
  open(): Promise<Store>;
  /** A second handle on the same data, as another process would have (for the change feed). */
  openPeer(store: Store): Promise<Store>;
}

/** The store the parts of one run share: opened by the first part that asks, closed after the last. */
export class SharedStore {
  private opened: Promise<Store> | undefined;

  constructor(private readonly factory: StoreFactory) {}

  get(): Promise<Store> {
    return (this.opened ??= this.factory.open());
  }

  openPeer(store: Store): Promise<Store> {
    return this.factory.openPeer(store);
  }

  async close(): Promise<void> {
    if (this.opened) await (await this.opened).close();
  }
}

export const msg = (subject: string, body = 'hello') => Buffer.from(`From: a@example.org\r\nTo: b@example.com\r\nSubject: ${subject}\r\n\r\n${body}\r\n`);

export interface World {
  store: Store;
  /** The part's own domain, lower case (added in upper case, to test that names are case-insensitive). */
  domain: string;
  alice: number;
  bob: number;
}

/** A domain for one part (`<part>.example.com`), with alice (no quota) and bob (a quota of 1000 bytes). */
export async function openWorld(shared: SharedStore, part: string): Promise<World> {
  const store = await shared.get();
  const domain = `${part}.example.com`;
  await store.addDomain(domain.toUpperCase());
  const alice = (await store.addUser({ address: `Alice@${domain.toUpperCase()}`, passwordHash: 'x' })).id;
  const bob = (await store.addUser({ address: `bob@${domain}`, passwordHash: 'x', quotaBytes: 1000 })).id;
  return { store, domain, alice, bob };
}
