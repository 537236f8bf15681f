// The tests' bare SMTP client, for what real clients never send: raw bytes, pipelined commands,
// half messages. Reads replies (RFC 5321 4.2.1, multi-line aware) in order, with the shared
// line framing (src/protocol/socket-reader.ts), as a code and lines or as the bytes sent.
import net from 'node:net';
import { dotStuffed, terminatorAfter } from '../../src/protocol/dot-stuffing.js';
import { SocketReader } from '../../src/protocol/socket-reader.js';

export interface WireReply {
  code: number;
  lines: string[];
  text: string;
  /** The reply as the server sent it, every line with its CRLF. */
  raw: string;
}

export class WireClient {
  private readonly reader: SocketReader;
  /** Reads queue behind each other: replies are taken in the order they were asked for. */
  private reading: Promise<unknown> = Promise.resolve();
  closed = false;
  private closedWaiters: (() => void)[] = [];

  /** Reads from a socket, connected or not yet (a test's own link to a node). */
  constructor(readonly socket: net.Socket) {
    // Never paused: a test may leave replies unread and wait for the close behind them.
    this.reader = new SocketReader(socket, { maxLine: 1024 * 1024, highWater: Number.POSITIVE_INFINITY, onEnd: () => new Error('connection closed') });
    socket.on('error', () => undefined);
    // The server's end of input counts as its close: the reader stops there too.
    const onClosed = () => {
      this.closed = true;
      for (const resolve of this.closedWaiters.splice(0)) resolve();
    };
    socket.once('end', onClosed);
    socket.once('close', onClosed);
  }

  /** localAddress: the client's own address (tests bind to 127.0.0.2 and up). */
  static async connect(port: number, options: { host?: string; localAddress?: string } = {}): Promise<WireClient> {
    const socket = net.connect({ port, host: options.host ?? '127.0.0.1', localAddress: options.localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new WireClient(socket);
  }

  /** The next reply from the server (RFC 5321 4.2.1: lines with "-" after the code continue it). */
  read(): Promise<WireReply> {
    const next = this.reading.then(async () => {
      const lines: string[] = [];
      let raw = '';
      for (;;) {
        const line = (await this.reader.line())?.toString('latin1') ?? '';
        lines.push(line.slice(4));
        raw += `${line}\r\n`;
        if (line.length < 4 || line[3] !== '-') return { code: Number(line.slice(0, 3)), lines, text: `${line.slice(0, 3)} ${lines.join('\n')}`, raw };
      }
    });
    this.reading = next.catch(() => undefined);
    return next;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Sends one command line and reads its reply. */
  async command(line: string): Promise<WireReply> {
    this.write(`${line}\r\n`);
    return this.read();
  }

  /** The next reply as the server sent it. */
  async reply(): Promise<string> {
    return (await this.read()).raw;
  }

  /** The codes of the next `count` replies. */
  async replies(count: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push((await this.reply()).slice(0, 3));
    return out;
  }

  /** Sends one command line and returns its reply as the server sent it. */
  async exchange(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  /** Whether the server sent bytes not read yet. */
  get pending(): boolean {
    return this.reader.pending;
  }

  /** Resolves when the server has closed the connection. */
  untilClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.closedWaiters.push(resolve));
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Dot-stuffs a message and adds the final dot (RFC 5321 4.5.2). */
export function dataBlock(message: Buffer): Buffer {
  return Buffer.concat([...dotStuffed(message), terminatorAfter(message)]);
}
