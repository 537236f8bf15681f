// What every part of the store suite starts from: a fresh store with one domain and two users.
import type { Store } from '../types.js';

export interface StoreFactory {
  /** A fresh, empty store. */
  open(): Promise<Store>;
  /** A second handle on the same data, as another process would have (for the change feed). */
  openPeer(store: Store): Promise<Store>;
}

export const msg = (subject: string, body = 'hello') => Buffer.from(`From: a@example.org\r\nTo: b@example.com\r\nSubject: ${subject}\r\n\r\n${body}\r\n`);

/** A fresh store with example.com, alice (no quota) and bob (a quota of 1000 bytes). */
export async function openWorld(factory: StoreFactory): Promise<{ store: Store; alice: number; bob: number }> {
  const store = await factory.open();
  await store.addDomain('Example.com');
  const alice = (await store.addUser({ address: 'Alice@Example.com', passwordHash: 'x' })).id;
  const bob = (await store.addUser({ address: 'bob@example.com', passwordHash: 'x', quotaBytes: 1000 })).id;
  return { store, alice, bob };
}
