// Line framing on a socket, for the line protocols' peers that read in turns (the gateway's
// SMTP and POP3 fronts, on both their client and node sides, and our test clients): CRLF lines
// (RFC 5321 2.3.8, RFC 1939 3) and raw bytes, in order, with a line-length limit and
// backpressure. An overlong line is dropped as it comes (only its last byte is kept, to find its
// end) and reported once; past `highWater` bytes held the socket is paused, so a fast peer's bytes
// wait in its socket, not in our memory.
import type net from 'node:net';

export interface SocketReaderOptions {
  /** The longest line, without its CRLF. */
  maxLine: number;
  /** Bytes held before the socket is paused. */
  highWater?: number;
  /** The error a read throws once the socket has closed and what it sent is used up. */
  onEnd: () => Error;
}

const CRLF = '\r\n';

export class SocketReader {
  private buffer: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private ended = false;
  /** Inside a line over the limit: its bytes are dropped up to its end. */
  private skipping = false;
  private readonly maxLine: number;
  private readonly highWater: number;
  private readonly onEnd: () => Error;

  constructor(
    private socket: net.Socket,
    options: SocketReaderOptions,
  ) {
    this.maxLine = options.maxLine;
    this.highWater = options.highWater ?? 64 * 1024;
    this.onEnd = options.onEnd;
    this.attach(socket);
  }

  private readonly onData = (chunk: Buffer) => {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    if (this.buffer.length >= this.highWater) this.socket.pause();
    this.wake();
  };

  /** Reads on once what is held is below the high-water mark again. */
  private taken(): void {
    if (this.buffer.length < this.highWater && this.socket.isPaused() && !this.socket.destroyed) this.socket.resume();
  }

  private readonly onClose = () => {
    this.ended = true;
    this.wake();
  };

  private attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.once('close', this.onClose);
  }

  /** Stops reading the current socket (before it is wrapped in TLS). */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
  }

  /** Reads from a new socket and forgets the old one's bytes (RFC 3207 4.2, RFC 2595 4: nothing sent before TLS counts). */
  reset(socket: net.Socket): void {
    this.buffer = Buffer.alloc(0);
    this.ended = false;
    this.skipping = false;
    this.attach(socket);
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  private wait(): Promise<void> {
    if (this.ended) throw this.onEnd();
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** The next line without its CRLF; undefined for a line over the limit (its bytes are dropped). */
  async line(): Promise<Buffer | undefined> {
    for (;;) {
      const end = this.buffer.indexOf(CRLF);
      if (end >= 0) {
        const line = this.buffer.subarray(0, end);
        this.buffer = this.buffer.subarray(end + 2);
        const dropped = this.skipping || line.length > this.maxLine;
        this.skipping = false;
        this.taken();
        return dropped ? undefined : line;
      }
      if (this.buffer.length > this.maxLine + 2) {
        // An endless line: only its last byte (perhaps the CR of its CRLF) is kept.
        this.buffer = this.buffer.subarray(this.buffer.length - 1);
        this.skipping = true;
        this.taken();
      }
      await this.wait();
    }
  }

  /** The next line as UTF-8 text; undefined for a line over the limit. */
  async text(): Promise<string | undefined> {
    return (await this.line())?.toString('utf8');
  }

  /** Whatever bytes are there (waiting for some). */
  async chunk(): Promise<Buffer> {
    while (this.buffer.length === 0) await this.wait();
    const out = this.buffer;
    this.buffer = Buffer.alloc(0);
    this.taken();
    return out;
  }

  /** Complete lines already received and not yet read (RFC 2920: what a client pipelined). */
  peekLines(max: number): string[] {
    const lines: string[] = [];
    let from = 0;
    while (!this.skipping && lines.length < max) {
      const end = this.buffer.indexOf(CRLF, from);
      if (end < 0 || end - from > this.maxLine) break;
      lines.push(this.buffer.subarray(from, end).toString('utf8'));
      from = end + 2;
    }
    return lines;
  }

  /** Whether the peer has sent bytes not read yet. */
  get pending(): boolean {
    return this.buffer.length > 0;
  }

  /** Puts back bytes read too far (the rest after a DATA terminator). */
  unread(bytes: Buffer): void {
    if (bytes.length > 0) this.buffer = Buffer.concat([bytes, this.buffer]);
  }
}
