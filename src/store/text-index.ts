// Full-text search over messages (issue 21): the words of a message's header (decoded) and of
// its text parts (and of text attachments, which cost nothing more to read) are indexed by blob
// hash once the blob is stored (after its commit, text-indexer.ts); the header is there so IMAP SEARCH TEXT can use it too. SQLite keeps them in an FTS5 table, PostgreSQL in a tsvector with a GIN index;
// both match every word of a query as a word prefix, case-insensitively (the query side: text-query.ts).
import { sql, type Kysely } from 'kysely';
import { decodeWords, partText } from '../mime/decode.js';
import { parseMime, type MimePart } from '../mime/mime.js';

/**
 * Text kept for the index per message (a tsvector holds at most 1 MB). The index marks a message
 * cut short as partial, so IMAP SEARCH still reads it; the webmail finds it by its start.
 */
export const MAX_INDEXED_TEXT = 128 * 1024;

interface Budget {
  left: number;
  cut: boolean;
}

function collect(raw: Buffer, part: MimePart, out: string[], budget: Budget): void {
  if (part.parts) {
    for (const child of part.parts) collect(raw, child, out, budget);
    return;
  }
  if (part.message) {
    collect(raw, part.message, out, budget);
    return;
  }
  if (part.type !== 'TEXT') return;
  if (budget.left <= 0) {
    budget.cut = true;
    return;
  }
  let text = partText(raw, part);
  if (part.subtype === 'HTML') text = htmlText(text);
  if (text.length > budget.left) {
    budget.cut = true;
    text = text.slice(0, budget.left);
  }
  budget.left -= text.length;
  out.push(text);
}

/** The words of an HTML part: no tags, style sheets or scripts; entities for spaces and the common few. */
function htmlText(html: string): string {
  return html
    .replace(/<(style|script|head)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&nbsp;|&#160;/gi, ' ')
    .replace(/&amp;/gi, '&')
    .replace(/&lt;/gi, '<')
    .replace(/&gt;/gi, '>')
    .replace(/&quot;/gi, '"')
    .replace(/&#39;|&apos;/gi, "'");
}

/**
 * The searchable text of a message: header and text parts, decoded, at most MAX_INDEXED_TEXT
 * characters; `partial` when some was left out (or the message could not be read).
 */
export function messageText(raw: Buffer): { text: string; partial: boolean } {
  const out: string[] = [];
  const budget: Budget = { left: MAX_INDEXED_TEXT, cut: false };
  try {
    const root = parseMime(raw);
    const header = decodeWords(raw.subarray(root.headerStart, Math.min(root.bodyStart, root.headerStart + MAX_INDEXED_TEXT)).toString('utf8'));
    out.push(header);
    budget.left -= header.length;
    collect(raw, root, out, budget);
  } catch {
    return { text: '', partial: true };
  }
  // NUL cannot go into PostgreSQL text.
  return { text: out.join('\n').replace(/\u0000/g, ' '), partial: budget.cut };
}

/** Indexes a blob's words once (a blob already indexed is left alone); deleting the blob drops them (migration 009). */
export async function indexBlobText(db: Kysely<any>, dialect: 'sqlite' | 'postgres', hash: string, raw: Buffer): Promise<void> {
  await insertBlobText(db, dialect, hash, messageText(raw));
}

/**
 * Stores the words of a blob from messageText(), unless it is indexed already or no longer
 * stored (the indexer reads the text before its transaction, and the blob may go meanwhile).
 */
export async function insertBlobText(db: Kysely<any>, dialect: 'sqlite' | 'postgres', hash: string, { text, partial }: { text: string; partial: boolean }): Promise<void> {
  const stored = sql`exists (select 1 from blobs where hash = ${hash})`;
  if (dialect === 'sqlite') {
    const row = await sql<{ id: number }>`insert into blob_text (hash, partial) select ${hash}, ${partial ? 1 : 0} where ${stored} on conflict (hash) do nothing returning id`.execute(db);
    const id = row.rows[0]?.id;
    if (id !== undefined) await sql`insert into blob_fts (rowid, body) values (${id}, ${text})`.execute(db);
  } else {
    await sql`insert into blob_text (hash, tsv, partial) select cast(${hash} as text), to_tsvector('simple', cast(${text} as text)), cast(${partial ? 1 : 0} as integer)
      where ${stored} on conflict (hash) do nothing`.execute(db);
  }
}

/** Indexes every stored blob not indexed yet, a page at a time (migration 009 on an existing store). */
export async function indexAllBlobs(db: Kysely<any>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  for (let after = '', page = 200; ; ) {
    const rows = await sql<{ hash: string; data: Buffer }>`select hash, data from blobs where hash > ${after} order by hash limit ${page}`.execute(db);
    for (const row of rows.rows) await indexBlobText(db, dialect, row.hash, Buffer.from(row.data));
    if (rows.rows.length < page) return;
    after = rows.rows.at(-1)!.hash;
  }
}
