// A raw SMTP client for tests: writes what it is given, reads whole replies (RFC 5321 4.2.1,
// multi-line joined) one at a time.
import net from 'node:net';

export class SmtpWire {
  private buffer = '';
  private waiters: (() => void)[] = [];
  closed = false;

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('error', () => undefined);
  }

  /** localAddress: the client's own address (tests bind to 127.0.0.2 and up). */
  static connect(port: number, options: { host?: string; localAddress?: string } = {}): Promise<SmtpWire> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: options.host ?? '127.0.0.1', port, localAddress: options.localAddress }, () => resolve(new SmtpWire(socket)));
      socket.once('error', reject);
    });
  }

  /** What arrived and was not read as a reply yet. */
  get unread(): string {
    return this.buffer;
  }

  async reply(): Promise<string> {
    for (;;) {
      const match = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3} [^\r\n]*\r\n/.exec(this.buffer);
      if (match) {
        this.buffer = this.buffer.slice(match[0].length);
        return match[0];
      }
      if (this.closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** The codes of the next `count` replies. */
  async replies(count: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push((await this.reply()).slice(0, 3));
    return out;
  }

  async command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }
}
