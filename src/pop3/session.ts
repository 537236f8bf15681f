// One POP3 connection: reads command lines one at a time (pipelined commands run in order),
// checks the state once for every command, and maps errors to -ERR replies in one place.
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { isLoopback } from '../auth/authenticator.js';
import { isGatewayLink } from '../net/gateway-link.js';
import type { ServiceDeps } from '../service.js';
import { StoreError, type Blobs, type Directory, type Mailstore, type User } from '../store/types.js';
import type { Logger } from '../util/logger.js';
import type { CounterFamily } from '../metrics/metrics.js';
import { COMMANDS } from './commands/index.js';
import { ConnectionClosed, Pop3Error, RESP_CODE, authError, syntaxError, userError } from './errors.js';
import { dotStuffed, terminatorAfter } from '../protocol/dot-stuffing.js';
import { SocketReader } from '../protocol/socket-reader.js';
import { Maildrop, type CrlfCache, type MaildropLocks } from './maildrop.js';
import { roomOrClose } from '../net/room.js';

/** What POP3 uses of the store: the user (for the maildrop's owner), the INBOX's messages and their bytes. */
export type Pop3Store = Directory & Mailstore & Blobs;

/** Session states as RFC 1939 3 names them. */
export type Pop3State = 'AUTHORIZATION' | 'TRANSACTION' | 'UPDATE';

/** What all sessions of one listener share. */
export interface SessionContext {
  deps: ServiceDeps<Pop3Store>;
  log: Logger;
  locks: MaildropLocks;
  crlf: CrlfCache;
  /** quill_commands_total and quill_authentications_total of this listener. */
  metrics?: { commands: CounterFamily; auth: CounterFamily };
}

// Lines of a multi-line listing are written in batches of about this many characters.
const BATCH_CHARS = 16 * 1024;
/** Message bytes gathered into one write of a RETR/TOP reply. */
const MESSAGE_WRITE_BYTES = 256 * 1024;
// How long a closing socket may take to flush before it is destroyed.
const END_GRACE_MS = 5000;

export class Session {
  state: Pop3State = 'AUTHORIZATION';
  /** The name given by USER, waiting for PASS (RFC 1939 7). */
  pendingUser: string | undefined;
  /** Set in TRANSACTION: the authenticated user and their maildrop. */
  user: User | undefined;
  maildrop: Maildrop | undefined;
  readonly log: Logger;
  /** Resolves when the session has let go of everything and its connection is closed. */
  readonly done: Promise<void>;

  private stream: Socket;
  private secure = false;
  private readonly reader: SocketReader;
  private inputEnded = false;
  private ending = false;
  private gone = false;
  private badCommands = 0;
  private authFailures = 0;
  private retrieved = 0;
  private commands = 0;
  private readonly startedAt = Date.now();
  private endReason = 'client closed';
  private unlisten = () => {};
  private markClosed = () => {};
  private readonly closed = new Promise<void>((resolve) => (this.markClosed = resolve));

  constructor(
    private readonly context: SessionContext,
    private readonly socket: Socket,
    /** The client's address: the socket's, or the one a trusted gateway named. */
    readonly remoteIp: string,
    readonly id: number,
  ) {
    this.log = context.log.child({ session: id, remote: this.remoteIp });
    // RFC 1939 3 asks for CRLF; a bare LF ends a command line too, as POP3 servers accept.
    this.reader = new SocketReader(socket, { maxLine: context.deps.config.limits.lineLength, bareLf: true, onEnd: () => new ConnectionClosed() });
    this.stream = socket;
    // Each reply leaves in as few writes as it can (below); with Nagle on, the last small piece
    // of a multi-line reply would still wait for the client's delayed ACK (~40 ms).
    socket.setNoDelay(true);
    socket.on('error', (error) => this.log.debug({ err: error.message }, 'socket error'));
    socket.once('close', () => this.onGone());
    this.listen(socket);
    this.done = this.run()
      .finally(() => this.cleanup())
      .then(() => this.closed);
  }

  get config() {
    return this.context.deps.config;
  }

  get deps(): ServiceDeps<Pop3Store> {
    return this.context.deps;
  }

  get isSecure(): boolean {
    return this.secure;
  }

  /** RFC 2595 2.1 spirit: passwords go in the clear only over TLS or, when configured, on loopback. */
  get plaintextAllowed(): boolean {
    return this.secure || (this.config.pop3.loopbackPlainAuth && isLoopback(this.remoteIp));
  }

  requirePlaintextAllowed(): void {
    if (this.plaintextAllowed) return;
    this.log.info('login refused: plaintext without TLS');
    throw authError('plaintext authentication is not allowed without TLS; use STLS first');
  }

  /** One status line. */
  async reply(line: string): Promise<void> {
    await this.write(`${line}\r\n`);
  }

  /** A multi-line response of short lines (RFC 1939 3), byte-stuffed, written in batches. */
  async replyLines(status: string, lines: Iterable<string>): Promise<void> {
    let batch = `${status}\r\n`;
    for (const line of lines) {
      batch += line.startsWith('.') ? `.${line}\r\n` : `${line}\r\n`;
      if (batch.length >= BATCH_CHARS) {
        await this.write(batch);
        batch = '';
      }
    }
    await this.write(`${batch}.\r\n`);
  }

  /**
   * A multi-line response carrying message bytes, stuffed and streamed as the client reads:
   * status, data and terminator go out together in writes of up to MESSAGE_WRITE_BYTES, so a
   * message of ordinary size is one write (and one segment on the wire, not three).
   */
  async replyMessage(status: string, data: Buffer): Promise<void> {
    let parts: Buffer[] = [Buffer.from(`${status}\r\n`, 'latin1')];
    let pending = parts[0]!.length;
    for (const chunk of dotStuffed(data)) {
      if (pending + chunk.length > MESSAGE_WRITE_BYTES) {
        await this.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts, pending));
        parts = [];
        pending = 0;
      }
      parts.push(chunk);
      pending += chunk.length;
    }
    parts.push(terminatorAfter(data));
    await this.write(Buffer.concat(parts, pending + parts.at(-1)!.length));
    this.retrieved++;
  }

  /** The next line from the client, for a SASL exchange inside a command (RFC 5034 4). */
  async readContinuation(): Promise<string> {
    const line = await this.reader.line();
    if (line === undefined) throw syntaxError('line too long');
    return line.toString('utf8');
  }

  /** Authenticates, locks and opens the maildrop, and enters TRANSACTION (RFC 1939 7 PASS). */
  async login(address: string, password: string, mechanism: string): Promise<void> {
    const result = await this.deps.auth.authenticate(address, password, this.remoteIp);
    if (!result.ok) {
      this.log.info({ user: address, mechanism, reason: result.reason }, 'login failed');
      this.context.metrics?.auth.inc('failed');
      throw authError(result.reason === 'locked' ? 'too many failed logins from your address; try again later' : 'authentication failed');
    }
    await this.enter(result.user, mechanism);
  }

  /** Whether the connection is a verified gateway link (it may name the user: XCLIENT; src/net/gateway-link.ts). */
  get fromGateway(): boolean {
    return isGatewayLink(this.socket);
  }

  /** XCLIENT LOGIN from a trusted gateway, which checked the password itself. */
  async loginAsGateway(address: string): Promise<void> {
    const user = await this.deps.store.getUser(address);
    if (!user || user.disabled) {
      this.log.info({ user: address, mechanism: 'XCLIENT' }, 'login failed');
      throw authError('no such user');
    }
    await this.enter(user, 'XCLIENT');
  }

  private async enter(user: User, mechanism: string): Promise<void> {
    if (!this.context.locks.acquire(user.id)) {
      this.log.info({ user: user.address }, 'maildrop in use');
      throw userError('maildrop already locked by another session', RESP_CODE.inUse);
    }
    try {
      this.maildrop = await Maildrop.open(this.deps.store, this.context.crlf, user.id);
    } catch (error) {
      this.context.locks.release(user.id);
      throw error;
    }
    this.user = user;
    this.state = 'TRANSACTION';
    const count = this.maildrop.live().length;
    this.log.info({ user: user.address, mechanism, tls: this.secure, messages: count }, 'login');
    this.context.metrics?.auth.inc('ok');
    await this.reply(`+OK maildrop locked and ready, ${count} messages`);
  }

  /** RFC 1939 6: QUIT in TRANSACTION removes the marked messages, then the session ends. */
  async update(): Promise<void> {
    const maildrop = this.maildrop!;
    this.state = 'UPDATE';
    try {
      const { removed, left } = await maildrop.commit();
      this.log.info({ user: this.user?.address, removed, left, retrieved: this.retrieved }, 'update');
      await this.reply(`+OK bye, ${left} messages left`);
    } catch (error) {
      if (error instanceof ConnectionClosed) throw error;
      this.log.error({ err: (error as Error).message }, 'update failed');
      await this.reply(`-ERR ${RESP_CODE.sysTemp} some deleted messages not removed`);
    } finally {
      this.end('quit');
    }
  }

  /** RFC 2595 4: after +OK the TLS handshake starts; nothing sent before it carries over. */
  async startTls(): Promise<void> {
    const plain = this.stream;
    this.unlisten();
    this.reader.detach();
    plain.pause();
    // Wrap in the same tick as the +OK goes out, before the client can send its hello.
    plain.write('+OK begin TLS negotiation\r\n');
    const secure = new TLSSocket(plain, { isServer: true, secureContext: this.deps.tls.context });
    this.stream = secure;
    secure.on('error', (error) => this.log.debug({ err: error.message }, 'tls error'));
    const handshake = new Promise<boolean>((resolve) => {
      secure.once('secure', () => resolve(true));
      secure.once('close', () => resolve(false));
    });
    const timeout = () => this.abort('tls handshake timeout');
    secure.setTimeout(this.config.limits.idleTimeoutSeconds * 1000, timeout);
    const ok = await handshake;
    secure.off('timeout', timeout);
    if (!ok) {
      this.onGone();
      throw new ConnectionClosed();
    }
    this.secure = true;
    this.pendingUser = undefined;
    this.log.info({ protocol: secure.getProtocol(), cipher: secure.getCipher().name }, 'tls');
    this.reader.reset(secure);
    this.listen(secure);
  }

  /** Ends the session after what has been written is flushed. */
  end(reason: string): void {
    if (this.ending) return;
    this.ending = true;
    this.endReason = reason;
    this.stream.end();
    setTimeout(() => {
      this.stream.destroy();
      this.socket.destroy();
    }, END_GRACE_MS).unref();
  }

  /** Drops the connection at once (idle timeout, shutdown): no UPDATE (RFC 1939 3). */
  abort(reason: string): void {
    if (!this.ending) this.endReason = reason;
    this.ending = true;
    this.stream.destroy();
    this.socket.destroy();
  }

  // Reading is the SocketReader's; these say why the session ended, and when it idled too long.
  private listen(stream: Socket): void {
    const onEnd = () => (this.inputEnded = true);
    const onClose = () => this.onGone();
    // RFC 1939 3: the autologout timer; expiry closes without a response and without UPDATE.
    const onTimeout = () => this.abort('idle timeout');
    stream.on('end', onEnd);
    stream.on('close', onClose);
    stream.on('timeout', onTimeout);
    stream.setTimeout(this.config.limits.idleTimeoutSeconds * 1000);
    this.unlisten = () => {
      stream.off('end', onEnd);
      stream.off('close', onClose);
      stream.off('timeout', onTimeout);
      stream.setTimeout(0);
    };
  }

  private onGone(): void {
    this.gone = true;
    this.socket.destroy(); // the TCP socket under a TLS stream that closed
    this.markClosed();
  }

  private async run(): Promise<void> {
    this.log.info('connect');
    try {
      await this.reply(`+OK ${this.config.hostname} Quillmail POP3 server ready`);
      // Pipelined commands (RFC 2449 6.6) wait in the reader, and past its high-water mark in
      // the socket, while one runs; the reader throws ConnectionClosed at the end of input.
      while (!this.ending) {
        const line = await this.reader.line();
        if (this.ending) break;
        if (line === undefined) await this.fail(syntaxError(`line too long (limit ${this.config.limits.lineLength} octets)`));
        else await this.execute(line);
      }
    } catch (error) {
      if (!(error instanceof ConnectionClosed)) this.log.error({ err: (error as Error).message }, 'session failed');
    }
    if (!this.ending) this.end(this.gone ? 'client closed' : this.inputEnded ? 'client ended input' : 'closed');
  }

  private async execute(line: Buffer): Promise<void> {
    try {
      await this.dispatch(line);
    } catch (error) {
      await this.fail(error);
    }
  }

  // RFC 1939 3: a keyword, then arguments separated by single spaces.
  private async dispatch(line: Buffer): Promise<void> {
    if (line.includes(0)) throw syntaxError('NUL in command');
    const text = line.toString('utf8');
    const space = text.indexOf(' ');
    const name = (space === -1 ? text : text.slice(0, space)).toUpperCase();
    const rest = space === -1 ? '' : text.slice(space + 1);
    const command = COMMANDS.get(name);
    this.commands++;
    this.context.metrics?.commands.inc(command ? name : 'OTHER');
    if (!command) {
      // A web browser or other stranger on the port gets one line and a hang-up.
      if (this.badCommands === 0 && /^(GET|POST|HEAD|PUT|CONNECT|OPTIONS) \S+ HTTP\/\d/.test(text)) {
        await this.reply('-ERR this is a POP3 server');
        this.end('not pop3');
        return;
      }
      throw syntaxError('unknown command');
    }
    if (!command.states.includes(this.state)) throw syntaxError(`${name} is not valid in the ${this.state} state`);
    this.log.debug({ command: name }, 'command');
    await command.run(this, { rest, words: rest.split(' ').filter((word) => word !== '') });
  }

  /** Errors by kind, to one -ERR line; counts bad commands and failed logins (limits). */
  private async fail(error: unknown): Promise<void> {
    if (error instanceof ConnectionClosed) throw error;
    let reply: string;
    if (error instanceof Pop3Error) {
      reply = error.toReply();
      if (error.kind === 'syntax') this.badCommands++;
      if (error.kind === 'auth') this.authFailures++;
    } else if (error instanceof StoreError && error.code === 'unavailable') {
      this.log.warn({ err: error.message }, 'store unavailable');
      reply = `-ERR ${RESP_CODE.sysTemp} mail store temporarily unavailable, try again later`;
    } else {
      this.log.error({ err: (error as Error).message, stack: (error as Error).stack }, 'command failed');
      reply = `-ERR ${RESP_CODE.sysPerm} internal server error`;
    }
    await this.reply(reply);
    const limits = this.config.limits;
    if (this.badCommands >= limits.badCommands) this.end('too many bad commands');
    else if (this.authFailures >= limits.authFailures) this.end('too many authentication failures');
  }

  private async write(data: string | Buffer): Promise<void> {
    const stream = this.stream;
    if (this.gone || !stream.writable) throw new ConnectionClosed();
    if (stream.write(data)) return;
    if (!(await roomOrClose(stream))) throw new ConnectionClosed();
  }

  private cleanup(): void {
    if (this.user) this.context.locks.release(this.user.id);
    this.log.info({ reason: this.endReason, user: this.user?.address, state: this.state, commands: this.commands, retrieved: this.retrieved, ms: Date.now() - this.startedAt }, 'close');
  }
}
