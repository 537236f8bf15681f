// A small POP3 client on raw sockets: what the tests use to send exact bytes and read exact
// replies (and what a health check can use). Lines end at LF; multi-line bodies are
// un-stuffed (RFC 1939 3) and returned as the exact bytes between status and terminator.
import net from 'node:net';
import tls from 'node:tls';

export class Pop3Client {
  greeting = '';
  private buffered: Buffer = Buffer.alloc(0);
  private ended = false;
  private wakeReader: (() => void) | undefined;
  private readonly closedPromise: Promise<void>;

  private constructor(private socket: net.Socket) {
    this.closedPromise = new Promise((resolve) => socket.once('close', () => resolve()));
    this.attach(socket);
  }

  /** Connects and reads the greeting; `preface` is written first (a gateway's PROXY line). */
  static async connect(port: number, options: { host?: string; localAddress?: string; preface?: string } = {}): Promise<Pop3Client> {
    const socket = net.connect({ port, host: options.host ?? '127.0.0.1', localAddress: options.localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    if (options.preface) socket.write(options.preface);
    const client = new Pop3Client(socket);
    client.greeting = await client.readLine();
    return client;
  }

  /** Sends a command and returns its status line. */
  async command(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    return this.readLine();
  }

  /** Sends a command with a multi-line answer; body is undefined after -ERR. */
  async multiline(line: string): Promise<{ status: string; body?: Buffer }> {
    const status = await this.command(line);
    if (!status.startsWith('+OK')) return { status };
    return { status, body: await this.readBody() };
  }

  /** USER/PASS login; throws with the reply when refused. */
  async login(user: string, password: string): Promise<void> {
    const userReply = await this.command(`USER ${user}`);
    if (!userReply.startsWith('+OK')) throw new Error(userReply);
    const passReply = await this.command(`PASS ${password}`);
    if (!passReply.startsWith('+OK')) throw new Error(passReply);
  }

  /** STLS and the TLS handshake (certificate not verified: test servers are self-signed). */
  async startTls(): Promise<string> {
    const reply = await this.command('STLS');
    if (reply.startsWith('+OK')) await this.upgrade();
    return reply;
  }

  /** The TLS handshake on the open connection, after the server's +OK to STLS. */
  async upgrade(): Promise<void> {
    this.socket.removeAllListeners('data');
    this.buffered = Buffer.alloc(0);
    const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next line without its line ending; throws when the server closed first. */
  async readLine(): Promise<string> {
    const line = await this.readRawLine();
    if (line === undefined) throw new Error('connection closed by server');
    return line.toString('utf8').replace(/\r?\n$/, '');
  }

  /** A multi-line body after its +OK line: exact bytes, stuffing removed, terminator dropped. */
  async readBody(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (;;) {
      const line = await this.readRawLine();
      if (line === undefined) throw new Error('connection closed inside a multi-line response');
      if (line.equals(Buffer.from('.\r\n'))) return Buffer.concat(parts);
      parts.push(line[0] === 0x2e ? line.subarray(1) : line);
    }
  }

  /** Resolves when the server has closed the connection. */
  closed(): Promise<void> {
    return this.closedPromise;
  }

  /** Whether the server closed its side (read everything it sent first). */
  async serverClosed(): Promise<boolean> {
    return (await this.readRawLine()) === undefined;
  }

  /** Stops reading for a while, so the server's writes back up (backpressure). */
  async stall(ms: number): Promise<void> {
    this.socket.pause();
    await new Promise((resolve) => setTimeout(resolve, ms));
    this.socket.resume();
  }

  /** Half-closes: the server sees the end of input after what was written. */
  endInput(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  private wake(): void {
    const wake = this.wakeReader;
    this.wakeReader = undefined;
    wake?.();
  }

  private async readRawLine(): Promise<Buffer | undefined> {
    for (;;) {
      const lf = this.buffered.indexOf(0x0a);
      if (lf !== -1) {
        const line = this.buffered.subarray(0, lf + 1);
        this.buffered = this.buffered.subarray(lf + 1);
        return line;
      }
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.wakeReader = resolve));
    }
  }
}
