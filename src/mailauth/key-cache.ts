// Parsed DKIM/ARC public keys, kept per key record: mailauth turns the p= text of a DKIM key
// record (RFC 6376 3.6.1) into a KeyObject, exports it to PEM and crypto.verify parses that PEM
// again, for every signature of every message. Here the DNS lookup is still made for each
// message (the resolver's cache honours the TTL), but a record text seen before gives back the
// result mailauth produced for it, the key as a KeyObject (whose toString() is still the PEM).
// It must be imported before anything loads 'mailauth': mailauth's verifiers take their own
// reference to getPublicKey when loaded. judge-worker.ts and inbound.ts import it first.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';

type Lookup = (name: string, type: string) => Promise<unknown>;
interface KeyResult {
  publicKey: string | KeyObject;
  rr: string;
  modulusLength?: number;
}
type GetPublicKey = (type: string, name: string, minBitLength: number | undefined, resolver: Lookup) => Promise<KeyResult>;

const MAX_KEYS = 1000;
const keys = new Map<string, KeyResult>();
export const keyCacheStats = { hits: 0, misses: 0, installed: false };

const tools = createRequire(import.meta.url)('mailauth/lib/tools.js') as { getPublicKey: GetPublicKey & { cached?: true } };
if (!tools.getPublicKey.cached) {
  const original = tools.getPublicKey;
  const cached: GetPublicKey = async (type, name, minBitLength, resolver) => {
    const list = await (resolver ?? original)(name, 'TXT');
    // The record text exactly as mailauth reads it: the first TXT record's strings, joined.
    const rr = Array.isArray(list) ? ([] as unknown[]).concat(list[0] ?? []).join('').replace(/\s+/g, '') : '';
    const key = `${type}\0${minBitLength ?? ''}\0${rr}`;
    const known = rr ? keys.get(key) : undefined;
    if (known) {
      keyCacheStats.hits++;
      return { ...known };
    }
    keyCacheStats.misses++;
    const result = await original(type, name, minBitLength, async () => list);
    if (rr && typeof result.publicKey === 'string') {
      const pem = result.publicKey;
      const object = createPublicKey(pem);
      Object.defineProperty(object, 'toString', { value: () => pem });
      if (keys.size >= MAX_KEYS) keys.delete(keys.keys().next().value!);
      keys.set(key, { ...result, publicKey: object });
    }
    return result;
  };
  tools.getPublicKey = Object.assign(cached, { cached: true as const });
  keyCacheStats.installed = true;
}

/** Forgets every parsed key (bench/judge-cpu.ts measures with and without the cache). */
export function clearKeyCache(): void {
  keys.clear();
}
