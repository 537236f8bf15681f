// The Blobs role over Kysely (roles/blobs.ts): bytes by content hash, their cached parses, and
// full-text search over them (the words are indexed after the commit, text-indexer.ts).
import { sql } from 'kysely';
import type { Blobs } from '../roles/blobs.js';
import { ftsQuery, queryWords, tsQuery } from '../text-query.js';
import { deleteOrphanMetas, num, type KyselyContext } from './context.js';

export class KyselyBlobs implements Blobs {
  constructor(private readonly ctx: KyselyContext) {}

  async getBlob(hash: string): Promise<Buffer | undefined> {
    const row = await this.ctx.read(() => this.ctx.db.selectFrom('blobs').select('data').where('hash', '=', hash).executeTakeFirst());
    return row ? Buffer.from(row.data) : undefined;
  }

  async getBlobMeta(hash: string): Promise<string | null> {
    const row = await this.ctx.read(() => this.ctx.db.selectFrom('blob_meta').select('meta').where('hash', '=', hash).executeTakeFirst());
    return row?.meta ?? null;
  }

  async setBlobMeta(hash: string, meta: string): Promise<void> {
    await this.setBlobMetas([[hash, meta]]);
  }

  async getBlobs(hashes: string[]): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    const unique = [...new Set(hashes)];
    // Chunked to stay under the bound-parameter limits of both engines.
    for (let i = 0; i < unique.length; i += 500) {
      const rows = await this.ctx.read(() => this.ctx.db.selectFrom('blobs').select(['hash', 'data']).where('hash', 'in', unique.slice(i, i + 500)).execute());
      for (const row of rows) out.set(row.hash, Buffer.from(row.data));
    }
    return out;
  }

  async getBlobMetas(hashes: string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const unique = [...new Set(hashes)];
    for (let i = 0; i < unique.length; i += 500) {
      const rows = await this.ctx.read(() => this.ctx.db.selectFrom('blob_meta').select(['hash', 'meta']).where('hash', 'in', unique.slice(i, i + 500)).execute());
      for (const row of rows) out.set(row.hash, row.meta);
    }
    return out;
  }

  /**
   * Upserts many parses, 100 to a statement, in one transaction; parses of blobs no longer stored
   * are dropped in it. (Concurrent transactions on PostgreSQL can still leave one behind when an
   * expunge commits in between: harmless, it is the parse of those bytes should they come again.)
   */
  async setBlobMetas(given: [hash: string, meta: string][]): Promise<void> {
    // One row per hash: an upsert may not touch a row twice in one statement (PostgreSQL).
    const entries = [...new Map(given)];
    if (entries.length === 0) return;
    await this.ctx.write(async (tx) => {
      for (let i = 0; i < entries.length; i += 100) {
        await tx
          .insertInto('blob_meta')
          .values(entries.slice(i, i + 100).map(([hash, meta]) => ({ hash, meta })))
          .onConflict((oc) => oc.column('hash').doUpdateSet({ meta: (eb) => eb.ref('excluded.meta') }))
          .execute();
      }
      // A parse of bytes expunged meanwhile is not kept (one primary-key probe each).
      for (let i = 0; i < entries.length; i += 500) await deleteOrphanMetas(tx, entries.slice(i, i + 500).map(([hash]) => hash));
    }, entries.length);
  }

  async searchText(mailboxId: number, query: string, options: { orPartial?: boolean } = {}): Promise<number[]> {
    const words = queryWords(query);
    if (words.length === 0) return [];
    const partial = options.orPartial ? 1 : 2; // `partial = 2` matches nothing
    return this.ctx.read(async () => {
      // Mail stored a moment ago may still wait for the indexer.
      await this.ctx.catchUpText(mailboxId);
      const found =
        this.ctx.kind === 'sqlite'
          ? // The hits first, materialized, then their messages by blob hash (CROSS JOIN keeps the
            // order, INDEXED BY the index): planned otherwise, SQLite reads the mailbox once per hit.
            await sql<{ uid: number }>`with hits as materialized (select rowid as id from blob_fts where blob_fts match ${ftsQuery(words)}
                union select id from blob_text where partial = 1 and ${partial} = 1)
              select m.uid from hits cross join blob_text t on t.id = hits.id cross join messages m indexed by messages_blob_hash on m.blob_hash = t.hash
              where m.mailbox_id = ${mailboxId} order by m.uid`.execute(this.ctx.db)
          : // Hits first here too (GIN), then their messages by blob hash.
            await sql<{ uid: number }>`with hits as materialized (select hash from blob_text where tsv @@ to_tsquery('simple', ${tsQuery(words)})
                union select hash from blob_text where partial = 1 and ${partial} = 1)
              select m.uid from hits join messages m on m.blob_hash = hits.hash
              where m.mailbox_id = ${mailboxId} order by m.uid`.execute(this.ctx.db);
      return found.rows.map((r) => num(r.uid));
    });
  }
}
