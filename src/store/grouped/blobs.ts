// The Blobs role of the grouped store: blobs are content-addressed, so any group holding a hash
// has the same bytes. A blob is read from the group that listed it (router.blobHomes), else from
// whichever group has it; a search is the mailbox's group's.
import type { PostgresStore } from '../postgres.js';
import type { Blobs } from '../roles/blobs.js';
import { forward } from './forward.js';
import { guard, type GroupRouter } from './router.js';

export function groupedBlobs(r: GroupRouter): Blobs {
  async function hasBlob(store: PostgresStore, hash: string): Promise<boolean> {
    const row = await store.kysely.selectFrom('blobs').select('hash').where('hash', '=', hash).executeTakeFirst().catch(guard);
    return row !== undefined;
  }

  async function blobStore(hash: string): Promise<PostgresStore | undefined> {
    const home = r.blobHomes.get(hash);
    if (home && (await hasBlob(home, hash))) return home;
    const holders = await Promise.all(r.stores.map(async (store) => ((await hasBlob(store, hash)) ? store : undefined)));
    const store = holders.find((s) => s !== undefined);
    if (store) r.blobHomes.set(hash, store);
    else await r.allUp();
    return store;
  }

  /** Splits hashes by the store that returned them; unknown ones are asked of every store. */
  async function blobBatch<T>(hashes: string[], read: (store: PostgresStore, hashes: string[]) => Promise<Map<string, T>>): Promise<Map<string, T>> {
    const out = new Map<string, T>();
    const byHome = new Map<PostgresStore, string[]>();
    const unique = [...new Set(hashes)];
    for (const hash of unique) {
      const home = r.blobHomes.get(hash);
      if (home) byHome.set(home, [...(byHome.get(home) ?? []), hash]);
    }
    await Promise.all([...byHome].map(async ([store, part]) => (await read(store, part)).forEach((v, k) => out.set(k, v))));
    const rest = unique.filter((h) => !out.has(h));
    if (rest.length > 0) {
      const found = await Promise.all(r.stores.map(async (store) => ({ store, map: await read(store, rest) })));
      for (const { store, map } of found) {
        for (const [hash, value] of map) {
          if (out.has(hash)) continue;
          out.set(hash, value);
          r.blobHomes.set(hash, store);
        }
      }
    }
    return out;
  }

  return {
    ...forward(['searchText'], (args) => r.storeForId(args[0] as number)),

    async getBlob(hash: string): Promise<Buffer | undefined> {
      const home = r.blobHomes.get(hash);
      const blob = home && (await home.getBlob(hash));
      if (blob) return blob;
      return (await blobStore(hash))?.getBlob(hash);
    },

    async getBlobMeta(hash: string): Promise<string | null> {
      const store = await blobStore(hash);
      return store ? store.getBlobMeta(hash) : null;
    },

    async setBlobMeta(hash: string, meta: string): Promise<void> {
      const store = await blobStore(hash);
      if (store) await store.setBlobMeta(hash, meta);
    },

    getBlobs(hashes: string[]): Promise<Map<string, Buffer>> {
      return blobBatch(hashes, (store, part) => store.getBlobs(part));
    },

    getBlobMetas(hashes: string[]): Promise<Map<string, string>> {
      return blobBatch(hashes, (store, part) => store.getBlobMetas(part));
    },

    async setBlobMetas(entries: [hash: string, meta: string][]): Promise<void> {
      const byHome = new Map<PostgresStore, [string, string][]>();
      for (const entry of entries) {
        const home = r.blobHomes.get(entry[0]);
        for (const store of home ? [home] : r.stores) byHome.set(store, [...(byHome.get(store) ?? []), entry]);
      }
      await Promise.all([...byHome].map(([store, part]) => store.setBlobMetas(part)));
    },
  };
}
