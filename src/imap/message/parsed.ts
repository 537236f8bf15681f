// What the IMAP server keeps about a message's content, parsed once per content hash and
// cached as JSON beside the blob (Store.setBlobMeta), plus a small in-process cache so
// sessions share the work. Metadata (flags, size, dates) never needs any of this.
import type { Store } from '../../store/types.js';
import { HeaderMap } from './header.js';
import { parseMime, type MimePart } from './mime.js';

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

/** An LRU of parsed messages by content hash, in front of the Store's blob meta column. */
export class MessageCache {
  private readonly parsed = new Map<string, ParsedMessage>();
  private readonly blobs = new Map<string, Buffer>();
  private blobBytes = 0;

  constructor(
    private readonly store: Store,
    private readonly limits = { parsedEntries: 5000, blobBytes: 32 * 1024 * 1024 },
  ) {}

  async parsedMessage(hash: string): Promise<ParsedMessage | undefined> {
    const hit = this.parsed.get(hash);
    if (hit) {
      this.parsed.delete(hash);
      this.parsed.set(hash, hit);
      return hit;
    }
    let parsed: ParsedMessage | undefined;
    const json = await this.store.getBlobMeta(hash);
    if (json) {
      try {
        const cached = JSON.parse(json) as ParsedMessage;
        if (cached.v === PARSED_VERSION) parsed = cached;
      } catch {
        // a broken cache entry is redone below
      }
    }
    if (!parsed) {
      const raw = await this.raw(hash);
      if (!raw) return undefined;
      parsed = parseMessage(raw);
      await this.store.setBlobMeta(hash, JSON.stringify(parsed));
    }
    this.parsed.set(hash, parsed);
    if (this.parsed.size > this.limits.parsedEntries) this.parsed.delete(this.parsed.keys().next().value!);
    return parsed;
  }

  /** The stored bytes; recently used small blobs are kept for the next FETCH of the same message. */
  async raw(hash: string): Promise<Buffer | undefined> {
    const hit = this.blobs.get(hash);
    if (hit) return hit;
    const raw = await this.store.getBlob(hash);
    if (!raw || raw.length > this.limits.blobBytes / 8) return raw;
    this.blobs.set(hash, raw);
    this.blobBytes += raw.length;
    while (this.blobBytes > this.limits.blobBytes) {
      const [oldest, bytes] = this.blobs.entries().next().value!;
      this.blobs.delete(oldest);
      this.blobBytes -= bytes.length;
    }
    return raw;
  }
}
