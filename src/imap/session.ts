// One IMAP connection (RFC 3501 3): reads commands from the socket through the streaming
// reader, runs them one at a time in order through the command table (which says in which
// states each is allowed), and writes every response through the one writer.
import { imapReaderLimits, READER_PROBLEM_TEXT } from './reader-limits.js';
import { isGatewayLink } from '../net/gateway-link.js';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { TLSSocket } from 'node:tls';
import zlib from 'node:zlib';
import { frozenSince } from '../cluster/freeze.js';
import { isLoopback } from '../auth/authenticator.js';
import type { ServiceDeps } from '../service.js';
import { StoreError, type Blobs, type ChangeEvent, type Directory, type Mailstore, type User } from '../store/types.js';
import type { Logger } from '../util/logger.js';
import type { CounterFamily } from '../metrics/metrics.js';
import { atomText } from './args.js';
import { COMMANDS, type CommandResult, type CommandSpec } from './commands/index.js';
import { SASL_MECHANISMS } from './commands/auth.js';
import { CODE, ImapError, storeErrorReply } from './errors.js';
import type { ChangeHub, ChangeSubscriber } from './hub.js';
import type { MessageCache } from './message/parsed.js';
import { CommandReader, parseCommand, ParseError, type Command, type ReaderEvent } from './parser.js';
import type { SelectedMailbox } from './selected.js';
import { atom, type ImapValue } from './value.js';
import { continuation, status, untagged, type StatusKind } from './writer.js';

export type State = 'not-authenticated' | 'authenticated' | 'selected' | 'logout';

/** What IMAP uses of the store: users (LOGIN, QUOTA), mailboxes and messages, their bytes and parses. */
export type ImapStore = Directory & Mailstore & Blobs;

export interface ImapContext {
  deps: ServiceDeps<ImapStore>;
  log: Logger;
  hub: ChangeHub;
  cache: MessageCache;
  /** quill_commands_total and quill_authentications_total of this listener. */
  metrics?: { commands: CounterFamily; auth: CounterFamily };
  /**
   * Read the changes other processes committed before each command (Store.syncChanges), as an
   * IMAP child process does (processes.ts): a client told OK by a session in another process
   * must find that change in its next command's answers, not after the word of it arrives.
   */
  syncFirst?: boolean;
}

/** Commands that work on sequence numbers: no EXPUNGE while they run (RFC 3501 7.4.1). */
const NO_EXPUNGE_DURING = new Set(['FETCH', 'STORE', 'SEARCH', 'SORT', 'THREAD', 'COPY']);

/** Inflated bytes handed to the command reader at a time (COMPRESS). */
const INFLATE_CHUNK = 16 * 1024;

/** Literals allowed before login (LOGIN with a literal password) and for commands other than APPEND. */

export class Session implements ChangeSubscriber {
  state: State = 'not-authenticated';
  user: User | undefined;
  private view: SelectedMailbox | undefined;
  /** ENABLEd extensions (RFC 5161): CONDSTORE, QRESYNC. */
  readonly enabled = new Set<string>();
  secure: boolean;
  authFailures = 0;
  readonly remoteIp: string;
  readonly done: Promise<void>;
  /** Made on first use: most sessions never log, and 10,000 idle ones should stay small. */
  private logger: Logger | undefined;

  private socket: Socket;
  /** Where responses are written: the socket, or the DEFLATE stream in front of it. */
  private output: Writable;
  private deflate: zlib.DeflateRaw | undefined;
  private inflate: zlib.InflateRaw | undefined;
  /** Bytes went into the compressor since its last sync flush. */
  private deflateUnflushed = false;
  private readonly raw: Socket;
  private reader: CommandReader;
  private queue: ReaderEvent[] = [];
  private waiter: ((event: ReaderEvent | undefined) => void) | undefined;
  private ended = false;
  private closed = false;
  private badCommands = 0;
  private idleWake: (() => void) | undefined;
  private rateWindow = { start: 0, count: 0 };
  /** For the disconnect log line. */
  private commands = 0;
  private readonly startedAt = Date.now();

  constructor(
    readonly ctx: ImapContext,
    socket: Socket,
    readonly id: number,
    secure = false,
    /** The client's address when a trusted gateway named it (PROXY header); else the socket's. */
    remoteIp?: string,
  ) {
    this.raw = socket;
    this.socket = socket;
    this.output = socket;
    this.secure = secure;
    this.remoteIp = remoteIp ?? socket.remoteAddress ?? 'unknown';
    this.reader = this.newReader();
    socket.on('data', this.onData);
    socket.on('end', () => {
      this.ended = true;
      this.wakeReader();
    });
    socket.on('close', () => this.onClose());
    socket.on('error', (error) => this.log.debug({ err: error.message }, 'socket error'));
    socket.on('timeout', () => this.autologout());
    this.setIdleTimer();
    this.done = this.run().catch((error: unknown) => {
      this.log.error({ err: error }, 'session failed');
      this.destroy();
    });
  }

  /** The selected mailbox; replacing it gives the old view's shared index back. */
  get selected(): SelectedMailbox | undefined {
    return this.view;
  }

  set selected(view: SelectedMailbox | undefined) {
    if (this.view && this.view !== view) this.ctx.hub.indexes.release(this.view.index);
    this.view = view;
  }

  get log(): Logger {
    return (this.logger ??= this.ctx.log.child({ session: this.id, remote: this.remoteIp, user: this.user?.address }));
  }

  /** The address of the socket's peer: a gateway's, when a gateway named the client. */
  get peerAddress(): string | undefined {
    return this.raw.remoteAddress;
  }

  /** The connection is a verified gateway link (src/net/gateway-link.ts). */
  get fromGatewayLink(): boolean {
    return isGatewayLink(this.raw);
  }

  get userId(): number {
    return this.user?.id ?? 0;
  }

  private readonly onData = (data: Buffer): void => {
    if (this.viaGateway && frozenSince(this.openedAt)) {
      // The gateway has likely moved this session and replayed what it had pending (freeze.ts).
      this.log.warn('frozen long enough to have been given up: dropping the gateway session unread');
      this.socket.destroy();
      return;
    }
    this.reader.push(data);
  };

  private newReader(): CommandReader {
    return new CommandReader(
      imapReaderLimits(this.ctx.deps.config, () => this.state !== 'not-authenticated'),
      (event) => this.onEvent(event),
    );
  }

  private onEvent(event: ReaderEvent): void {
    if (event.kind === 'continue') {
      this.write(continuation('Ready for literal data'));
      return;
    }
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter(event);
      return;
    }
    this.queue.push(event);
    if (this.queue.length > 16) this.pauseInput(); // pipelining beyond this waits in the kernel
  }

  /** The next framed command or refusal, in order; undefined once the client is gone. */
  next(): Promise<ReaderEvent | undefined> {
    this.flush();
    const event = this.queue.shift();
    if (event) {
      if (this.queue.length < 4 && !this.closed) this.resumeInput();
      return Promise.resolve(event);
    }
    if (this.ended || this.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /**
   * Stops reading commands: the socket, or with COMPRESS the inflater in front of the reader,
   * which then stops inflating and, its input full, pauses the socket (RFC 4978 has no limit of
   * its own: a few MB can inflate to GBs, and they are taken only as fast as commands are run).
   */
  private pauseInput(): void {
    if (this.inflate) this.inflate.pause();
    else this.socket.pause();
  }

  private resumeInput(): void {
    if (this.inflate) this.inflate.resume();
    else this.socket.resume();
  }

  private wakeReader(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.(undefined);
    this.idleWake?.();
  }

  private async run(): Promise<void> {
    // Through the listener's logger: an idle session keeps no child logger of its own.
    this.ctx.log.info({ session: this.id, remote: this.remoteIp, tls: this.secure }, 'connect');
    this.untaggedStatus('OK', `${this.ctx.deps.config.hostname} Quillmail IMAP ready`, `CAPABILITY ${this.capabilities().join(' ')}`);
    for (;;) {
      // A client that does not read its responses gets no more commands run until it does.
      await this.drain();
      const event = await this.next();
      if (!event || this.closed) break;
      await this.handle(event);
      if (this.state === 'logout') break;
    }
    await this.end();
  }

  private async handle(event: ReaderEvent): Promise<void> {
    if (event.kind === 'error') {
      const text = READER_PROBLEM_TEXT[event.problem];
      const tooBig = event.problem === 'literal-too-big' || event.problem === 'command-too-big';
      if (event.tag) {
        if (tooBig && event.command === 'APPEND') this.tagged(event.tag, 'NO', text, CODE.tooBig);
        else this.tagged(event.tag, 'BAD', text, event.problem === 'line-too-long' ? undefined : CODE.tooBig);
      } else if (!event.close) this.tagged('*', 'BAD', text, event.problem === 'line-too-long' ? undefined : CODE.tooBig);
      if (event.close) {
        // RFC 7888 4: a non-synchronizing literal past what the command may carry is not read.
        this.untaggedStatus('BYE', `${text}; closing the connection`);
        this.state = 'logout';
        this.queue = [];
        this.ended = true;
        this.raw.pause();
        return;
      }
      this.countBad();
      return;
    }
    if (event.kind !== 'command') return;
    let command: Command;
    try {
      command = parseCommand(event.chunks);
    } catch (error) {
      const tag = error instanceof ParseError ? error.tag : undefined;
      const first = typeof event.chunks[0] === 'string' ? event.chunks[0] : '';
      if (this.badCommands === 0 && this.state === 'not-authenticated' && /^(GET|POST|HEAD|PUT|CONNECT) /.test(first)) {
        this.untaggedStatus('BYE', 'this is an IMAP server');
        this.state = 'logout';
        return;
      }
      this.tagged(tag ?? '*', 'BAD', `syntax error: ${(error as Error).message}`);
      this.countBad();
      return;
    }
    await this.throttle();
    await this.dispatch(command);
  }

  private async dispatch(command: Command): Promise<void> {
    let name = command.name;
    let args = command.args;
    const uid = name === 'UID';
    if (uid) {
      const sub = atomText(args[0]);
      name = `UID ${sub ?? ''}`;
      args = args.slice(1);
    }
    const spec = COMMANDS.get(name);
    this.commands++;
    this.ctx.metrics?.commands.inc(spec ? name : 'OTHER');
    if (!spec) {
      this.tagged(command.tag, 'BAD', `unknown command ${name}`);
      this.countBad();
      return;
    }
    if (!spec.states.includes(this.state)) {
      this.tagged(command.tag, 'BAD', `${name} is not allowed in the ${this.state} state`);
      this.countBad();
      return;
    }
    const bare = uid ? name.slice(4) : name;
    // Responses of one command leave in as few packets as possible; flush() uncorks early
    // whenever the session waits for the client.
    this.output.cork();
    try {
      await this.execute(spec, args, { tag: command.tag, name: bare, uid });
    } finally {
      this.flush();
    }
  }

  private async execute(spec: CommandSpec, args: ImapValue[], info: CommandInfo): Promise<void> {
    let result: CommandResult | void;
    if (this.ctx.syncFirst) this.ctx.deps.store.syncChanges?.();
    try {
      result = await spec.run(this, args, info);
    } catch (error) {
      this.fail(info.tag, error);
      return;
    }
    if (result?.responded || this.closed) return;
    try {
      await this.syncSelected(info.uid || !NO_EXPUNGE_DURING.has(info.name));
    } catch (error) {
      this.log.warn({ err: error }, 'sync after command failed');
    }
    this.tagged(info.tag, 'OK', result?.text ?? `${info.name} completed`, result?.code);
  }

  private fail(tag: string, error: unknown): void {
    if (error instanceof ImapError) {
      this.tagged(tag, error.kind, error.message, error.code);
      if (error.kind === 'BAD') this.countBad();
      return;
    }
    if (error instanceof StoreError) {
      const reply = storeErrorReply(error);
      if (reply) {
        this.tagged(tag, reply.kind, reply.message, reply.code);
        return;
      }
      this.log.warn({ err: error }, 'store unavailable');
      this.tagged(tag, 'NO', 'temporary server failure, try again later', CODE.unavailable);
      return;
    }
    this.log.error({ err: error }, 'command failed');
    this.tagged(tag, 'NO', 'internal server error', CODE.serverBug);
  }

  private countBad(): void {
    if (++this.badCommands >= this.ctx.deps.config.limits.badCommands) {
      this.untaggedStatus('BYE', 'too many bad commands');
      this.state = 'logout';
      this.queue = [];
      this.ended = true;
    }
  }

  /** limits.imapCommandsPerSecond: a session over the rate waits for the next second. */
  private async throttle(): Promise<void> {
    const now = Date.now();
    if (now - this.rateWindow.start >= 1000) this.rateWindow = { start: now, count: 0 };
    if (++this.rateWindow.count > this.ctx.deps.config.limits.imapCommandsPerSecond) {
      await sleep(1000 - (now - this.rateWindow.start));
      this.rateWindow = { start: Date.now(), count: 1 };
    }
  }

  // ---- output --------------------------------------------------------------

  write(bytes: Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    this.output.write(bytes);
    if (!this.deflate) return;
    if (this.output.writableCorked) this.deflateUnflushed = true;
    else this.deflate.flush(zlib.constants.Z_SYNC_FLUSH);
  }

  /**
   * RFC 7162 3.1: a CONDSTORE-enabling command. The first one while a mailbox is selected also sends
   * OK [HIGHESTMODSEQ] (the SELECT already did when the mailbox was selected after it).
   */
  enableCondstore(): void {
    if (this.enabled.has('CONDSTORE')) return;
    this.enabled.add('CONDSTORE');
    if (this.selected) this.untaggedStatus('OK', 'highest modseq', `HIGHESTMODSEQ ${this.selected.knownModseq}`);
  }

  send(values: ImapValue[]): void {
    this.write(untagged(values));
  }

  tagged(tag: string, kind: StatusKind, text: string, code?: string): void {
    this.write(status(tag, kind, text, code));
  }

  untaggedStatus(kind: StatusKind, text: string, code?: string): void {
    this.write(status('*', kind, text, code));
  }

  /** Waits while the socket's buffer is full, so a big FETCH streams instead of piling up. */
  async drain(): Promise<void> {
    const output = this.output;
    if (this.closed || output.writableLength < 64 * 1024) return;
    const corked = output.writableCorked;
    this.flush();
    if (output.writableNeedDrain) await this.either(output, 'drain');
    for (let i = 0; i < corked; i++) output.cork();
  }

  /** Waits for an event, or for the connection to close; leaves no listener behind. */
  private either(emitter: NodeJS.EventEmitter, event: string): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        emitter.off(event, done);
        this.raw.off('close', done);
        resolve();
      };
      emitter.on(event, done);
      this.raw.on('close', done);
    });
  }

  /** Sends what is corked now: before waiting for the client (continuations, IDLE, TLS). */
  flush(): void {
    while (this.output.writableCorked) this.output.uncork();
    // RFC 4978 5: a sync flush only after something was written; an empty one would be bytes
    // the client did not ask for (an empty block right after the OK confuses clients).
    if (this.deflate && this.deflateUnflushed) {
      this.deflateUnflushed = false;
      this.deflate.flush(zlib.constants.Z_SYNC_FLUSH);
    }
  }

  // ---- state -----------------------------------------------------------------

  /** Plaintext passwords only over TLS, or from loopback when config allows it. */
  plaintextAllowed(): boolean {
    return this.secure || (this.ctx.deps.config.imap.loopbackPlainAuth && isLoopback(this.remoteIp));
  }

  capabilities(): string[] {
    const caps = ['IMAP4rev1', 'LITERAL+', 'SASL-IR', 'ID', 'ENABLE', 'IDLE', 'NAMESPACE', 'UNSELECT', 'UIDPLUS', 'MOVE', 'CHILDREN', 'SPECIAL-USE'];
    if (this.state === 'not-authenticated') {
      if (!this.secure) caps.push('STARTTLS');
      if (this.plaintextAllowed()) caps.push(...SASL_MECHANISMS.map((m) => `AUTH=${m}`));
      else caps.push('LOGINDISABLED');
      return caps;
    }
    caps.push('LIST-EXTENDED', 'LIST-STATUS', 'ESEARCH', 'SORT', 'SORT=DISPLAY', 'THREAD=ORDEREDSUBJECT', 'THREAD=REFERENCES', 'CONDSTORE', 'QRESYNC');
    caps.push('QUOTA', 'QUOTA=RES-STORAGE', `APPENDLIMIT=${this.ctx.deps.config.limits.messageSize}`, 'STATUS=SIZE', 'COMPRESS=DEFLATE');
    return caps;
  }

  /** Opened by a gateway (XQUILL-LOGIN): the gateway may carry it to another node. */
  viaGateway = false;
  private readonly openedAt = Date.now();

  loggedIn(user: User): void {
    this.user = user;
    this.state = 'authenticated';
    this.ctx.hub.add(this);
    this.setIdleTimer();
    this.logger = undefined;
  }

  /** Announces what changed in the selected mailbox (EXPUNGE only when allowed). */
  async syncSelected(allowExpunge: boolean): Promise<void> {
    const selected = this.selected;
    if (!selected) return;
    const responses = await selected.sync({
      allowExpunge,
      condstore: this.enabled.has('CONDSTORE'),
      qresync: this.enabled.has('QRESYNC'),
      claimRecent: selected.readOnly ? undefined : (upTo) => this.ctx.deps.store.claimRecent(selected.id, upTo),
    });
    if (this.selected !== selected) return;
    for (const values of responses) this.send(values);
  }

  changed(event: ChangeEvent, generation: number): void {
    if (!this.selected || event.mailboxId !== this.selected.id || event.kind === 'mailbox') return;
    if (this.selected.dirtySince === 0) this.selected.dirtySince = generation;
    this.idleWake?.();
  }

  /** Resolves on the next change to the selected mailbox or when the client goes away. */
  waitForChange(): { promise: Promise<void>; cancel: () => void } {
    let cancel = (): void => undefined;
    const promise = new Promise<void>((resolve) => {
      if (this.selected?.dirtySince || this.closed) return resolve();
      this.idleWake = resolve;
      cancel = () => {
        if (this.idleWake === resolve) this.idleWake = undefined;
        resolve();
      };
    });
    return {
      promise: promise.then(() => {
        this.idleWake = undefined;
      }),
      cancel,
    };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** STARTTLS (RFC 3501 6.2.1): what was pipelined after the command is dropped, then TLS begins. */
  async startTls(): Promise<void> {
    this.queue = [];
    this.raw.off('data', this.onData);
    this.reader = this.newReader();
    const secure = new TLSSocket(this.raw, { isServer: true, secureContext: this.ctx.deps.tls.context });
    secure.on('error', (error) => {
      this.log.debug({ err: error.message }, 'tls error');
      this.destroy();
    });
    secure.on('data', this.onData);
    secure.on('end', () => {
      this.ended = true;
      this.wakeReader();
    });
    this.socket = secure;
    this.output = secure;
    this.secure = true;
    await this.either(secure, 'secure');
  }

  /**
   * COMPRESS=DEFLATE (RFC 4978): both directions go through raw DEFLATE from here on. Input is
   * inflated only as fast as the reader takes it: the socket pauses while the inflater is full,
   * the inflater while commands wait (pauseInput), and both are torn down with the connection.
   */
  startCompression(): void {
    const socket = this.socket;
    const inflate = zlib.createInflateRaw({ chunkSize: INFLATE_CHUNK });
    const deflate = zlib.createDeflateRaw({ level: 6 });
    socket.off('data', this.onData);
    this.reader = this.newReader();
    socket.on('data', (data: Buffer) => {
      if (!inflate.write(data)) socket.pause();
    });
    inflate.on('drain', () => {
      if (!this.closed) socket.resume();
    });
    inflate.on('data', this.onData);
    inflate.on('error', () => this.destroy());
    deflate.on('error', () => this.destroy());
    deflate.pipe(socket);
    this.output = deflate;
    this.deflate = deflate;
    this.inflate = inflate;
  }

  get compressed(): boolean {
    return this.deflate !== undefined;
  }

  private setIdleTimer(): void {
    const limits = this.ctx.deps.config.limits;
    // RFC 3501 5.4: at least 30 minutes once logged in; the shorter general limit before.
    const seconds = this.state === 'not-authenticated' ? Math.min(limits.idleTimeoutSeconds, limits.imapIdleTimeoutSeconds) : limits.imapIdleTimeoutSeconds;
    this.raw.setTimeout(seconds * 1000);
  }

  private autologout(): void {
    this.untaggedStatus('BYE', 'autologout; idle for too long');
    this.state = 'logout';
    void this.end();
  }

  /** Ends the session politely (after BYE): flushes output, then closes. */
  async end(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.output.end();
    const timer = setTimeout(() => this.destroy(), 5000);
    timer.unref();
  }

  /** Server shutdown or a broken connection. */
  abort(reason: string): void {
    if (this.closed) return;
    this.untaggedStatus('BYE', reason);
    this.state = 'logout';
    this.flush();
    this.output.end();
    setTimeout(() => this.destroy(), 1000).unref();
  }

  destroy(): void {
    this.socket.destroy();
    this.raw.destroy();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.log.info({ session: this.id, remote: this.remoteIp, user: this.user?.address, commands: this.commands, ms: Date.now() - this.startedAt }, 'close');
    this.selected = undefined;
    if (this.user) this.ctx.hub.remove(this);
    // What the compressor and decompressor still hold goes with the connection.
    this.inflate?.destroy();
    this.deflate?.destroy();
    this.queue = [];
    this.wakeReader();
  }
}

export interface CommandInfo {
  tag: string;
  /** The command name without UID. */
  name: string;
  uid: boolean;
}

export { atom };
