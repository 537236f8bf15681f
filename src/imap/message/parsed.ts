// What the IMAP server keeps about a message's content, parsed once per content hash and
// cached as JSON beside the blob (Store.setBlobMeta), plus a small in-process cache so
// sessions share the work. Metadata (flags, size, dates) never needs any of this.
import type { Blobs } from '../../store/types.js';
import { HeaderMap } from '../../mime/header.js';
import { parseMime, type MimePart } from '../../mime/mime.js';

/** Bumped whenever the shape or the parsing rules change, so old cache entries are redone. */
export const PARSED_VERSION = 1;

export interface ParsedMessage {
  v: number;
  root: MimePart;
  /** Raw References header (THREAD=REFERENCES); the rest lives in the root ENVELOPE. */
  references: string | null;
}

export function parseMessage(raw: Buffer): ParsedMessage {
  const root = parseMime(raw);
  const headers = HeaderMap.parse(raw, root.headerStart, root.bodyStart);
  return { v: PARSED_VERSION, root, references: headers.first('references') ?? null };
}

/** What SEARCH (FROM, SUBJECT, SENTON...), SORT and THREAD read of a message: its envelope and References. */
export interface HeaderSummary {
  root: Pick<MimePart, 'envelope'>;
  references: string | null;
  /** Envelope fields as SEARCH compares them (decoded, folded), made on first use. */
  folded?: Partial<Record<'from' | 'to' | 'cc' | 'bcc' | 'subject', string>>;
}

export function summaryOf(parsed: ParsedMessage): HeaderSummary {
  return { root: { envelope: parsed.root.envelope }, references: parsed.references };
}

/** Messages read or parsed per store round trip. */
const BATCH = 500;

/** An LRU of parsed messages by content hash, in front of the Store's parse cache (blob_meta). */
export class MessageCache {
  private readonly parsed = new Map<string, ParsedMessage>();
  private readonly blobs = new Map<string, Buffer>();
  /** Parses being loaded by parsedMany, by hash. */
  private readonly loading = new Map<string, Promise<Map<string, ParsedMessage>>>();
  private blobBytes = 0;

  constructor(
    private readonly store: Blobs,
    private readonly limits = { parsedEntries: 5000, blobBytes: 32 * 1024 * 1024 },
  ) {}

  async parsedMessage(hash: string): Promise<ParsedMessage | undefined> {
    const hit = this.parsed.get(hash);
    if (hit) {
      this.parsed.delete(hash);
      this.parsed.set(hash, hit);
      return hit;
    }
    let parsed = decodeParsed(await this.store.getBlobMeta(hash));
    if (!parsed) {
      const raw = await this.raw(hash);
      if (!raw) return undefined;
      parsed = parseMessage(raw);
      await this.store.setBlobMeta(hash, JSON.stringify(parsed));
    }
    this.remember(hash, parsed);
    return parsed;
  }

  /**
   * Parses of many messages by hash, with one store read per batch for the stored parses, one for
   * the bytes of those never parsed, and one write transaction for the new parses. Entries read
   * here are not kept in the LRU when `keep` is false (a search over a large mailbox would only
   * churn it); missing blobs are left out.
   */
  async parsedMany(hashes: string[], keep = true): Promise<Map<string, ParsedMessage>> {
    const out = new Map<string, ParsedMessage>();
    const wanted: string[] = [];
    // Sessions searching the same mailbox at once share one load instead of each parsing it all.
    const joined = new Set<Promise<Map<string, ParsedMessage>>>();
    for (const hash of new Set(hashes)) {
      const hit = this.parsed.get(hash);
      const running = hit ? undefined : this.loading.get(hash);
      if (hit) out.set(hash, hit);
      else if (running) joined.add(running);
      else wanted.push(hash);
    }
    const loads = [...joined];
    if (wanted.length > 0) loads.unshift(this.load(wanted, keep));
    for (const load of loads) {
      for (const [hash, parsed] of await load) if (!out.has(hash)) out.set(hash, parsed);
    }
    if (joined.size > 0) {
      const asked = new Set(hashes);
      for (const hash of out.keys()) if (!asked.has(hash)) out.delete(hash);
    }
    return out;
  }

  /** Loads parses in batches (stored ones, else the bytes parsed now); registered so others can join. */
  private load(wanted: string[], keep: boolean): Promise<Map<string, ParsedMessage>> {
    const promise = (async () => {
      const out = new Map<string, ParsedMessage>();
      for (let i = 0; i < wanted.length; i += BATCH) {
        const batch = wanted.slice(i, i + BATCH);
        const stored = await this.store.getBlobMetas(batch);
        const missing: string[] = [];
        for (const hash of batch) {
          const parsed = decodeParsed(stored.get(hash));
          if (parsed) out.set(hash, parsed);
          else missing.push(hash);
        }
        if (missing.length > 0) {
          const blobs = await this.store.getBlobs(missing);
          const writes: [string, string][] = [];
          for (const [hash, raw] of blobs) {
            const parsed = parseMessage(raw);
            out.set(hash, parsed);
            writes.push([hash, JSON.stringify(parsed)]);
          }
          // Stored for next time without holding up this command, a hundred to a write: a store
          // that shares transactions then gives other sessions' commands a turn every few ms.
          for (let j = 0; j < writes.length; j += 100) this.store.setBlobMetas(writes.slice(j, j + 100)).catch(() => undefined);
        }
        if (keep) for (const hash of batch) if (out.has(hash)) this.remember(hash, out.get(hash)!);
      }
      return out;
    })();
    for (const hash of wanted) this.loading.set(hash, promise);
    const forget = (): void => {
      for (const hash of wanted) if (this.loading.get(hash) === promise) this.loading.delete(hash);
    };
    promise.then(forget, forget);
    return promise;
  }

  /** The bytes of many messages, one store read per batch; missing blobs are left out. */
  async rawMany(hashes: string[]): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    const wanted: string[] = [];
    for (const hash of new Set(hashes)) {
      const hit = this.blobs.get(hash);
      if (hit) out.set(hash, hit);
      else wanted.push(hash);
    }
    for (let i = 0; i < wanted.length; i += BATCH) {
      for (const [hash, raw] of await this.store.getBlobs(wanted.slice(i, i + BATCH))) {
        out.set(hash, raw);
        this.keepBlob(hash, raw);
      }
    }
    return out;
  }

  private remember(hash: string, parsed: ParsedMessage): void {
    this.parsed.delete(hash);
    this.parsed.set(hash, parsed);
    if (this.parsed.size > this.limits.parsedEntries) this.parsed.delete(this.parsed.keys().next().value!);
  }

  /** The stored bytes; recently used small blobs are kept for the next FETCH of the same message. */
  async raw(hash: string): Promise<Buffer | undefined> {
    const hit = this.blobs.get(hash);
    if (hit) return hit;
    const raw = await this.store.getBlob(hash);
    if (raw) this.keepBlob(hash, raw);
    return raw;
  }

  private keepBlob(hash: string, raw: Buffer): void {
    if (raw.length > this.limits.blobBytes / 8 || this.blobs.has(hash)) return;
    this.blobs.set(hash, raw);
    this.blobBytes += raw.length;
    while (this.blobBytes > this.limits.blobBytes) {
      const [oldest, bytes] = this.blobs.entries().next().value!;
      this.blobs.delete(oldest);
      this.blobBytes -= bytes.length;
    }
  }
}

/** A stored parse, or undefined when absent, broken or of another version (redone then). */
function decodeParsed(json: string | null | undefined): ParsedMessage | undefined {
  if (!json) return undefined;
  try {
    const cached = JSON.parse(json) as ParsedMessage;
    return cached.v === PARSED_VERSION ? cached : undefined;
  } catch {
    return undefined;
  }
}
