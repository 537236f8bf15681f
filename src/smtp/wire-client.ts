// A bare SMTP client for tests that need to send what real clients never would: raw bytes,
// pipelined commands, half messages. Reads replies (multi-line aware) in order.
import net from 'node:net';
import { dotStuffed, terminatorAfter } from '../protocol/dot-stuffing.js';

export interface WireReply {
  code: number;
  lines: string[];
  text: string;
}

export class WireClient {
  private buffer = '';
  private replies: WireReply[] = [];
  private waiters: { resolve: (reply: WireReply) => void; reject: (error: Error) => void }[] = [];
  private pendingLines: string[] = [];
  closed = false;
  private closedWaiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      for (const waiter of this.waiters.splice(0)) waiter.reject(new Error('connection closed'));
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

  private onData(text: string): void {
    this.buffer += text;
    let index: number;
    while ((index = this.buffer.indexOf('\r\n')) >= 0) {
      const line = this.buffer.slice(0, index);
      this.buffer = this.buffer.slice(index + 2);
      this.pendingLines.push(line);
      if (line.length < 4 || line[3] !== '-') {
        const lines = this.pendingLines.map((l) => l.slice(4));
        this.pendingLines = [];
        const reply = { code: Number(line.slice(0, 3)), lines, text: `${line.slice(0, 3)} ${lines.join('\n')}` };
        const waiter = this.waiters.shift();
        if (waiter) waiter.resolve(reply);
        else this.replies.push(reply);
      }
    }
  }

  /** The next reply from the server. */
  read(): Promise<WireReply> {
    const reply = this.replies.shift();
    if (reply) return Promise.resolve(reply);
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
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
