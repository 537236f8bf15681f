// Line framing on a socket, for every line protocol's peer that reads in turns (the POP3 server,
// the gateway's SMTP and POP3 fronts on both their client and node sides, and our test clients):
// lines (RFC 5321 2.3.8, RFC 1939 3) and raw bytes, in order, with a line-length limit and
// backpressure. An overlong line is reported once, as soon as it is known to be over the limit,
// and the rest of it dropped as it comes (only its last byte is kept, to find its end); past
// `highWater` bytes held the socket is paused, so a fast peer's bytes wait in its socket, not in
// our memory. LineFramer is the framing alone, on bytes handed to it (no socket).
import type net from 'node:net';

export interface LineFraming {
  /** The longest line, without its line ending. */
  maxLine: number;
  /**
   * Whether a bare LF ends a line too (a CR before it is dropped), as POP3 servers accept
   * (RFC 1939 3 asks for CRLF; clients that send LF alone are common). Otherwise only CRLF ends
   * a line and a bare LF stays inside it, for the caller to refuse (the gateway: issue 20).
   */
  bareLf?: boolean;
}

export interface SocketReaderOptions extends LineFraming {
  /** Bytes held before the socket is paused. */
  highWater?: number;
  /** The error a read throws once the peer's input has ended and what it sent is used up. */
  onEnd: () => Error;
}

/** What LineFramer.next() gives for a line over the limit. */
export const TOO_LONG = Symbol('line too long');

const CRLF = '\r\n';
const LF = 0x0a;
const CR = 0x0d;

/** Splits bytes, handed to it as they arrive, into lines under one framing rule. */
export class LineFramer {
  private buffer: Buffer = Buffer.alloc(0);
  /** Inside a line over the limit, already reported: its bytes are dropped up to its end. */
  private skipping = false;
  private readonly maxLine: number;
  private readonly bareLf: boolean;

  constructor(framing: LineFraming) {
    this.maxLine = framing.maxLine;
    this.bareLf = framing.bareLf ?? false;
  }

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
  }

  /** Bytes held, not yet taken. */
  get held(): number {
    return this.buffer.length;
  }

  /**
   * The next complete line without its line ending; TOO_LONG once for a line over the limit
   * (as soon as that is known, before its end has come); undefined when no line is complete.
   */
  next(): Buffer | typeof TOO_LONG | undefined {
    for (;;) {
      const end = this.endOfLine(0);
      if (end) {
        const line = this.buffer.subarray(0, end.length);
        this.buffer = this.buffer.subarray(end.next);
        if (this.skipping) {
          this.skipping = false;
          continue;
        }
        return line.length > this.maxLine ? TOO_LONG : line;
      }
      // Unfinished: it may still hold the limit and a CR, no more.
      if (this.buffer.length <= this.maxLine + 1) return undefined;
      this.buffer = this.buffer.subarray(this.buffer.length - 1);
      if (this.skipping) return undefined;
      this.skipping = true;
      return TOO_LONG;
    }
  }

  /** Everything held, as raw bytes. */
  take(): Buffer {
    const out = this.buffer;
    this.buffer = Buffer.alloc(0);
    return out;
  }

  /** Puts back bytes taken too far (the rest after a DATA terminator). */
  unread(bytes: Buffer): void {
    if (bytes.length > 0) this.buffer = Buffer.concat([bytes, this.buffer]);
  }

  /** Complete lines held and not yet taken, up to the first one over the limit. */
  peekLines(max: number): string[] {
    const lines: string[] = [];
    let from = 0;
    while (!this.skipping && lines.length < max) {
      const end = this.endOfLine(from);
      if (!end || end.length - from > this.maxLine) break;
      lines.push(this.buffer.subarray(from, end.length).toString('utf8'));
      from = end.next;
    }
    return lines;
  }

  /** Forgets everything held. */
  reset(): void {
    this.buffer = Buffer.alloc(0);
    this.skipping = false;
  }

  /** The line starting at `from`: where its content ends and the next line starts. */
  private endOfLine(from: number): { length: number; next: number } | undefined {
    if (!this.bareLf) {
      const at = this.buffer.indexOf(CRLF, from);
      return at < 0 ? undefined : { length: at, next: at + 2 };
    }
    const lf = this.buffer.indexOf(LF, from);
    if (lf < 0) return undefined;
    return { length: lf > from && this.buffer[lf - 1] === CR ? lf - 1 : lf, next: lf + 1 };
  }
}

export class SocketReader {
  private readonly framer: LineFramer;
  private waiter: (() => void) | undefined;
  private ended = false;
  private readonly highWater: number;
  private readonly onEnd: () => Error;

  constructor(
    private socket: net.Socket,
    options: SocketReaderOptions,
  ) {
    this.framer = new LineFramer(options);
    this.highWater = options.highWater ?? 64 * 1024;
    this.onEnd = options.onEnd;
    this.attach(socket);
  }

  private readonly onData = (chunk: Buffer) => {
    this.framer.push(chunk);
    if (this.framer.held >= this.highWater) this.socket.pause();
    this.wake();
  };

  /** Reads on once what is held is below the high-water mark again. */
  private taken(): void {
    if (this.framer.held < this.highWater && this.socket.isPaused() && !this.socket.destroyed) this.socket.resume();
  }

  // The end of input (a half-close, for servers that allow it) or of the socket.
  private readonly onClose = () => {
    this.ended = true;
    this.wake();
  };

  private attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.once('end', this.onClose);
    socket.once('close', this.onClose);
  }

  /** Stops reading the current socket (before it is wrapped in TLS). */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onClose);
    this.socket.off('close', this.onClose);
  }

  /** Reads from a new socket and forgets the old one's bytes (RFC 3207 4.2, RFC 2595 4: nothing sent before TLS counts). */
  reset(socket: net.Socket): void {
    this.framer.reset();
    this.ended = false;
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

  /** The next line without its line ending; undefined, once, for a line over the limit (its bytes are dropped). */
  async line(): Promise<Buffer | undefined> {
    for (;;) {
      const line = this.framer.next();
      this.taken();
      if (line === TOO_LONG) return undefined;
      if (line) return line;
      await this.wait();
    }
  }

  /** The next line as UTF-8 text; undefined for a line over the limit. */
  async text(): Promise<string | undefined> {
    return (await this.line())?.toString('utf8');
  }

  /** Whatever bytes are there (waiting for some). */
  async chunk(): Promise<Buffer> {
    while (this.framer.held === 0) await this.wait();
    const out = this.framer.take();
    this.taken();
    return out;
  }

  /** Complete lines already received and not yet read (RFC 2920: what a client pipelined). */
  peekLines(max: number): string[] {
    return this.framer.peekLines(max);
  }

  /** Whether the peer has sent bytes not read yet. */
  get pending(): boolean {
    return this.framer.held > 0;
  }

  /** Puts back bytes read too far (the rest after a DATA terminator). */
  unread(bytes: Buffer): void {
    this.framer.unread(bytes);
  }
}
