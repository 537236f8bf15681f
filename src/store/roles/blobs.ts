// The Blobs role: message bytes by content hash (SHA-256), their cached parses, and the
// full-text index over them.
import { roleMethods } from './methods.js';

export interface Blobs {
  getBlob(hash: string): Promise<Buffer | undefined>;
  getBlobMeta(hash: string): Promise<string | null>;
  setBlobMeta(hash: string, meta: string): Promise<void>;
  /** Blobs by hash in one read (missing ones left out): for FETCH and SEARCH over many messages. */
  getBlobs(hashes: string[]): Promise<Map<string, Buffer>>;
  /** The cached parse of many blobs in one read (blobs without one, or missing, left out). */
  getBlobMetas(hashes: string[]): Promise<Map<string, string>>;
  /** Caches the parse of many blobs in one transaction (blobs no longer stored are skipped). */
  setBlobMetas(entries: [hash: string, meta: string][]): Promise<void>;
  /**
   * Full-text search (issue 21): UIDs of the mailbox whose header or text has every word of
   * `query` as a word prefix, case-insensitively (text-index.ts). Every stored blob is indexed
   * (after its commit, text-indexer.ts; a search first indexes what its mailbox still has queued);
   * `orPartial` adds the messages whose text was too long to index whole (IMAP reads those).
   */
  searchText(mailboxId: number, query: string, options?: { orPartial?: boolean }): Promise<number[]>;
}

export const BLOBS_METHODS = roleMethods<Blobs>()(['getBlob', 'getBlobMeta', 'setBlobMeta', 'getBlobs', 'getBlobMetas', 'setBlobMetas', 'searchText']);
