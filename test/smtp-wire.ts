// A raw SMTP client for tests: writes what it is given, reads whole replies (RFC 5321 4.2.1,
// multi-line joined) one at a time.
import net from 'node:net';

export class SmtpWire {
  private buffer = '';
  private waiters: (() => void)[] = [];

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.waiters.splice(0).forEach((w) => w());
    });
  }

  static connect(port: number): Promise<SmtpWire> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(new SmtpWire(socket)));
      socket.once('error', reject);
    });
  }

  async reply(): Promise<string> {
    for (;;) {
      const match = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3} [^\r\n]*\r\n/.exec(this.buffer);
      if (match) {
        this.buffer = this.buffer.slice(match[0].length);
        return match[0];
      }
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
