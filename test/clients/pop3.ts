// The tests' POP3 client on raw sockets, to send exact bytes and read exact replies, with the
// shared line framing and dot-stuffing (src/protocol/): lines end at CRLF; multi-line bodies are
// un-stuffed (RFC 1939 3) and returned as the exact bytes between status and terminator.
import net from 'node:net';
import tls from 'node:tls';
import { unstuffed } from '../../src/protocol/dot-stuffing.js';
import { SocketReader } from '../../src/protocol/socket-reader.js';

const CRLF = Buffer.from('\r\n');

/** The server closed the connection before the line or body asked for. */
export class Pop3Closed extends Error {
  constructor(message = 'connection closed by server') {
    super(message);
  }
}

class ServerClosed extends Error {}

export class Pop3Client {
  greeting = '';
  private readonly reader: SocketReader;
  private readonly closedPromise: Promise<void>;

  private constructor(private socket: net.Socket) {
    this.closedPromise = new Promise((resolve) => socket.once('close', () => resolve()));
    // Never paused by the reader (stall() pauses on purpose); lines as long as a test's message.
    this.reader = new SocketReader(socket, { maxLine: 256 * 1024 * 1024, highWater: Number.POSITIVE_INFINITY, onEnd: () => new ServerClosed() });
    socket.on('error', () => undefined);
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
    this.reader.detach();
    const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    secure.on('error', () => undefined);
    this.reader.reset(secure);
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next line without its line ending; throws when the server closed first. */
  async readLine(): Promise<string> {
    const line = await this.readRawLine();
    if (line === undefined) throw new Pop3Closed();
    return line.toString('utf8');
  }

  /** A multi-line body after its +OK line: exact bytes, stuffing removed (src/protocol/dot-stuffing.ts), terminator dropped. */
  async readBody(): Promise<Buffer> {
    const lines: Buffer[] = [];
    for (;;) {
      const line = await this.readRawLine();
      if (line === undefined) throw new Pop3Closed('connection closed inside a multi-line response');
      if (line.length === 1 && line[0] === 0x2e) return unstuffed(Buffer.concat(lines.flatMap((bytes) => [bytes, CRLF])));
      lines.push(line);
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

  /** The next line without its CRLF; undefined once the server has closed and everything it sent is read. */
  private async readRawLine(): Promise<Buffer | undefined> {
    try {
      return (await this.reader.line()) ?? Buffer.alloc(0);
    } catch (error) {
      if (error instanceof ServerClosed) return undefined;
      throw error;
    }
  }
}
