// A bare IMAP client for tests that need exact bytes or input no real client would send.
// Responses are read as logical lines: a line ending in a literal {n} carries the n bytes
// and the rest of the line that follows them.
import net from 'node:net';
import tls from 'node:tls';

export interface Reply {
  untagged: string[];
  /** The tagged completion line, e.g. "a1 OK [READ-WRITE] SELECT completed". */
  tagged: string;
}

export class ImapWire {
  private buf = Buffer.alloc(0);
  private lines: string[] = [];
  private waiters: { resolve: (line: string) => void; reject: (error: Error) => void }[] = [];
  private nextTag = 1;
  closed = false;
  private closedWaiters: (() => void)[] = [];

  private constructor(private socket: net.Socket) {
    this.attach(socket);
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      for (const waiter of this.waiters.splice(0)) waiter.reject(new Error('connection closed'));
      for (const resolve of this.closedWaiters.splice(0)) resolve();
    });
  }

  /** Connects and reads the greeting. */
  static async connect(port: number): Promise<{ client: ImapWire; greeting: string }> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new ImapWire(socket);
    return { client, greeting: await client.readLine() };
  }

  private onData(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      let end = -1;
      let from = 0;
      // Find the end of a logical line, skipping over literals.
      for (;;) {
        const nl = this.buf.indexOf('\r\n', from);
        if (nl < 0) break;
        const m = /\{(\d+)\}$/.exec(this.buf.subarray(from, nl).toString('latin1'));
        if (!m) {
          end = nl;
          break;
        }
        const after = nl + 2 + Number(m[1]);
        if (after > this.buf.length) break;
        from = after;
      }
      if (end < 0) return;
      const line = this.buf.subarray(0, end).toString('latin1');
      this.buf = this.buf.subarray(end + 2);
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(line);
      else this.lines.push(line);
    }
  }

  readLine(): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Reads lines up to the tagged completion of `tag`. */
  async until(tag: string): Promise<Reply> {
    const untagged: string[] = [];
    for (;;) {
      const line = await this.readLine();
      if (line.startsWith(`${tag} `)) return { untagged, tagged: line };
      untagged.push(line);
    }
  }

  /** Sends a command with a fresh tag and reads its response. */
  async command(text: string): Promise<Reply> {
    const tag = `t${this.nextTag++}`;
    this.write(`${tag} ${text}\r\n`);
    return this.until(tag);
  }

  async login(user: string, password: string): Promise<void> {
    const reply = await this.command(`LOGIN "${user}" "${password}"`);
    if (!/ OK /.test(reply.tagged)) throw new Error(`login failed: ${reply.tagged}`);
  }

  /** STARTTLS, then TLS on the same socket. */
  async startTls(): Promise<Reply> {
    const reply = await this.command('STARTTLS');
    const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false });
    this.socket.removeAllListeners('data');
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    secure.on('data', (chunk: Buffer) => this.onData(chunk));
    return reply;
  }

  untilClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.closedWaiters.push(resolve));
  }

  close(): void {
    this.socket.destroy();
  }
}
