// LIST and LSUB mailbox patterns (RFC 3501 6.3.8): "*" matches any characters, "%" any
// characters but the hierarchy delimiter. Matched by simulating the pattern as a set of
// positions over the name, never by a backtracking regular expression: the work per name is
// at most its length times the pattern's, whatever the pattern (issue 17, row 1).

const STAR = -1;
const PERCENT = -2;

export class MailboxPattern {
  /** Pattern tokens: a character code, STAR or PERCENT; runs of wildcards collapsed. */
  private readonly tokens: Int32Array;
  /** Characters the name needs at least (the literal tokens). */
  private readonly literals: number;
  private readonly delimiter: number;
  // Scratch state sets, reused between names: positions and a stamp per position.
  private current: Int32Array;
  private next: Int32Array;
  private readonly seen: Uint32Array;
  private stamp = 0;

  constructor(pattern: string, delimiter = '/') {
    this.delimiter = delimiter.charCodeAt(0);
    // INBOX is case-insensitive (RFC 3501 5.1): "inbox/%" matches as "INBOX/%".
    if (/^INBOX(?=$|\/)/i.test(pattern)) pattern = 'INBOX' + pattern.slice(5);
    const tokens: number[] = [];
    let literals = 0;
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern.charCodeAt(i);
      const token = c === 0x2a ? STAR : c === 0x25 ? PERCENT : c;
      const last = tokens.length > 0 ? tokens[tokens.length - 1]! : 0;
      if (token < 0 && last < 0) {
        // "**" and "%%" are one wildcard; "*%" and "%*" are one "*".
        if (token === STAR) tokens[tokens.length - 1] = STAR;
        continue;
      }
      tokens.push(token);
      if (token >= 0) literals++;
    }
    this.tokens = Int32Array.from(tokens);
    this.literals = literals;
    this.current = new Int32Array(tokens.length + 1);
    this.next = new Int32Array(tokens.length + 1);
    this.seen = new Uint32Array(tokens.length + 1);
  }

  /** Wildcards ("*" and "%") in a pattern as the client wrote it. */
  static wildcards(pattern: string): number {
    let count = 0;
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern.charCodeAt(i);
      if (c === 0x2a || c === 0x25) count++;
    }
    return count;
  }

  matches(name: string): boolean {
    const tokens = this.tokens;
    const end = tokens.length;
    if (name.length < this.literals) return false;
    this.newStamp();
    let count = this.add(this.current, 0, 0);
    for (let i = 0; i < name.length && count > 0; i++) {
      const c = name.charCodeAt(i);
      this.newStamp();
      let nextCount = 0;
      for (let k = 0; k < count; k++) {
        const at = this.current[k]!;
        if (at === end) continue;
        const token = tokens[at]!;
        if (token === STAR || (token === PERCENT && c !== this.delimiter)) nextCount = this.add(this.next, nextCount, at);
        else if (token === c) nextCount = this.add(this.next, nextCount, at + 1);
      }
      const swap = this.current;
      this.current = this.next;
      this.next = swap;
      count = nextCount;
    }
    for (let k = 0; k < count; k++) if (this.current[k] === end) return true;
    return false;
  }

  private newStamp(): void {
    this.stamp = (this.stamp + 1) >>> 0;
    if (this.stamp === 0) {
      this.seen.fill(0);
      this.stamp = 1;
    }
  }

  /** Adds a position to a set being built under the current stamp, with the wildcard after it matching nothing. */
  private add(set: Int32Array, count: number, at: number): number {
    for (;;) {
      if (this.seen[at] === this.stamp) return count;
      this.seen[at] = this.stamp;
      set[count++] = at;
      // A wildcard may match no characters: the position after it is reached too. Runs are
      // collapsed, so this is at most one step.
      if (at < this.tokens.length && this.tokens[at]! < 0) at++;
      else return count;
    }
  }
}
