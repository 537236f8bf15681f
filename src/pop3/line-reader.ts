// Splits a byte stream into command lines (RFC 1939 3: lines end with CRLF; a bare LF is
// accepted too). A line longer than the limit is reported once and its rest discarded as it
// arrives, so no more than `maxLength` bytes are ever held.

export type LineEvent = { kind: 'line'; line: Buffer } | { kind: 'too-long' };

const LF = 0x0a;
const CR = 0x0d;

export class LineReader {
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private discarding = false;

  constructor(private readonly maxLength: number) {}

  /** Feeds a chunk; returns the complete lines (without their line ending) it finished. */
  push(chunk: Buffer): LineEvent[] {
    const events: LineEvent[] = [];
    let start = 0;
    while (start < chunk.length) {
      const lf = chunk.indexOf(LF, start);
      const end = lf === -1 ? chunk.length : lf;
      if (!this.discarding) {
        this.pending.push(chunk.subarray(start, end));
        this.pendingLength += end - start;
        // +1 leaves room for the CR of a CRLF split from its LF.
        if (this.pendingLength > this.maxLength + 1) {
          events.push({ kind: 'too-long' });
          this.discarding = true;
          this.clear();
        }
      }
      if (lf === -1) break;
      if (this.discarding) this.discarding = false;
      else events.push(this.takeLine());
      start = lf + 1;
    }
    return events;
  }

  /** Forgets buffered input (after STLS, RFC 2595 4: nothing sent before TLS may carry over). */
  reset(): void {
    this.clear();
    this.discarding = false;
  }

  private takeLine(): LineEvent {
    let line = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingLength);
    this.clear();
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, -1);
    if (line.length > this.maxLength) return { kind: 'too-long' };
    // Copy so the socket's chunk is not kept alive by a small slice of it.
    return { kind: 'line', line: Buffer.from(line) };
  }

  private clear(): void {
    this.pending = [];
    this.pendingLength = 0;
  }
}
