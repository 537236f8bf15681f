// The query side of full-text search (text-index.ts): a query's words and the match text of each
// engine. Apart from the indexing, which reads MIME and charsets: the store loads this at once
// and the indexer's modules only when it indexes (CLI start-up, issue 19).

/** Words a query may have. */
const MAX_QUERY_WORDS = 16;

/** A query's words: letters and digits only, so no query syntax of either engine gets through. */
export function queryWords(query: string): string[] {
  return (query.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).slice(0, MAX_QUERY_WORDS);
}

/** FTS5 MATCH text: every word as a quoted prefix term (FTS5 §3.2, §3.3). */
export function ftsQuery(words: string[]): string {
  return words.map((word) => `"${word}"*`).join(' ');
}

/** to_tsquery text: every word as a prefix (`word:*`) joined by AND. */
export function tsQuery(words: string[]): string {
  return words.map((word) => `${word}:*`).join(' & ');
}
