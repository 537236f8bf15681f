// A bare SMTP client for tests that need to send what real clients never would: raw bytes,
// pipelined commands, half messages. Reads replies (multi-line aware) in order.
import net from 'node:net';
import { dotStuffed, terminatorAfter } from '../../src/protocol/dot-stuffing.js';
import { SocketReader } from '../../src/protocol/socket-reader.js';

export interface WireReply {
  code: number;
  lines: string[];
  text: string;
}

export class WireClient {
  private readonly reader: SocketReader;
  /** Reads queue behind each other: replies are taken in the order they were asked for. */
  private reading: Promise<unknown> = Promise.resolve();
  closed = false;
  private closedWaiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    // Never paused: a test may leave replies unread and wait for the close behind them.
    this.reader = new SocketReader(socket, { maxLine: 1024 * 1024, highWater: Number.POSITIVE_INFINITY, onEnd: () => new Error('connection closed') });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      for (const resolve of this.closedWaiters.splice(0)) resolve();
    });
  }

  static async connect(port: number): Promise<WireClient> {
    const socket = net.connect(port, '127.0.0.1');
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
      for (;;) {
        const line = (await this.reader.line())?.toString('latin1') ?? '';
        lines.push(line.slice(4));
        if (line.length < 4 || line[3] !== '-') return { code: Number(line.slice(0, 3)), lines, text: `${line.slice(0, 3)} ${lines.join('\n')}` };
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
