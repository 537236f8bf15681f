// The gateway's IMAP front end (issue 5; Bluetail Mail Robustifier's record and replay for a
// stateful protocol). TLS ends here (STARTTLS), and the gateway checks the login itself; then
// the session runs on a node, opened with `XQUILL-LOGIN user`, a command nodes accept only on
// connections from their trustedGateways (as SMTP's XCLIENT LOGIN in smtp-front.ts). We chose
// that over replaying the client's LOGIN: no password is kept in gateway memory, a failover does
// not count against the user's login rate or lockout, any SASL mechanism works the same, and the
// node needs no TLS to accept a plaintext login from the gateway.
//
// While the session runs, the gateway frames the client's commands (tags, literals, IDLE/DONE)
// and the node's responses, and records what a new node needs to carry on: the user, ENABLEd
// extensions, the selected mailbox with its UIDVALIDITY/HIGHESTMODSEQ/UIDNEXT and everything
// the client was told about it since (imap-view.ts), whether the client is in IDLE, and the
// commands sent but not completed. Responses reach the client whole (up to STREAM_OVER bytes),
// so after a node's death the client's output nearly always stops at a response boundary.
// When the node dies (or says BYE because it is stopping, or is drained), the gateway opens a
// session on another node, re-selects, tells the client what changed meanwhile, and replays
// the pending commands that are safe to repeat. COMPRESS is not offered: the gateway could not
// read a compressed stream it does not end itself.
import net from 'node:net';
import tls from 'node:tls';
import { isLoopback } from '../auth/authenticator.js';
import { astring, atomText, isAtom } from '../imap/args.js';
import { chunksAsLine, CommandReader, parseCommand, ParseError, type Chunks, type Command, type ReaderEvent } from '../imap/parser.js';
import { imapReaderLimits, readerProblemReply } from '../imap/reader-limits.js';
import type { ImapValue } from '../imap/value.js';
import { proxyLine } from '../protocol/proxy-header.js';
import { isSaslMechanism, SASL_MECHANISMS, SaslError, saslExchange } from '../protocol/sasl.js';
import type { Logger } from '../util/logger.js';
import type { NodeDirectory } from './directory.js';
import { MAX_EVENTS, parseUids, reconcile, type KnownView, type NodeFacts, type ViewEvent } from './imap-view.js';
import { backoff, firstTaker, type FrontDeps, LinkLost, NodeRefused, openNodeSocket } from './node-link.js';

/** Counters for the metrics endpoint: failovers, drain migrations and how they ended. */
export const gatewayStats = {
  /** Sessions moved after their node died or stopped. */
  imapFailovers: 0,
  /** Sessions moved off a draining node. */
  imapMigrations: 0,
  /** Pending commands sent again on the new node. */
  imapReplays: 0,
  /** Moves that ended in BYE (outcome unknown, view could not be made consistent, no node). */
  imapFailoverByes: 0,
  /** Untagged responses sent to bring a client's view up to date after a move. */
  imapReconciled: 0,
  /** Big responses a node died in the middle of, finished byte-exact from another node. */
  imapResumed: 0,
};

/** A response bigger than this goes to the client as it comes instead of whole. */
const STREAM_OVER = 256 * 1024;
/** Longest line from a node before the link counts as broken. */
const NODE_LINE_MAX = 1024 * 1024;
/** Nodes tried for one move before the client gets BYE. */
const MAX_ATTEMPTS = 3;
/** How often sessions look for a draining node under them. */
const DRAIN_CHECK_MS = 250;
/** Views taken of the new node before a move gives up on matching the client's (the change feed's lag). */
const CATCH_UP_ROUNDS = 5;
const CATCH_UP_PAUSE_MS = 100;
/** Drain moves at once: a node with thousands of sessions empties steadily, not in one stampede. */
const MAX_DRAIN_MOVES = 64;

const CAPS_BASE = ['IMAP4rev1', 'LITERAL+', 'SASL-IR', 'ID', 'ENABLE', 'IDLE', 'NAMESPACE', 'UNSELECT', 'UIDPLUS', 'MOVE', 'CHILDREN', 'SPECIAL-USE'];

/** Commands that are safe to run twice: the answer is the same and nothing changes twice. */
const REPLAYABLE = new Set([
  'CAPABILITY', 'NOOP', 'CHECK', 'ID', 'NAMESPACE', 'ENABLE', 'SELECT', 'EXAMINE', 'CLOSE', 'UNSELECT', 'LIST', 'LSUB', 'STATUS',
  'GETQUOTA', 'GETQUOTAROOT', 'FETCH', 'UID FETCH', 'SEARCH', 'UID SEARCH', 'SORT', 'UID SORT', 'THREAD', 'UID THREAD',
  'EXPUNGE', 'UID EXPUNGE', 'SUBSCRIBE', 'UNSUBSCRIBE',
]);
/** Commands that name messages by sequence number: meaningless once the numbering changed. */
const BY_SEQUENCE = new Set(['FETCH', 'STORE', 'SEARCH', 'SORT', 'THREAD', 'COPY', 'MOVE']);

export interface ImapFrontDeps extends FrontDeps {
  /** Called for each session moved off a lost node (the gateway's metrics). */
  onFailover?: () => void;
}

/** The new node answered the rebuild differently: the client cannot be carried over. */
class CannotCarry extends Error {}
/** The client went away in the middle of an AUTHENTICATE exchange. */
class ClientLeft extends Error {}

/** One response from a node: whole, or a piece of one too big to hold. */
type NodeOutput = { kind: 'response'; head: string; bytes: Buffer } | { kind: 'stream'; head: string; bytes: Buffer; first: boolean; end: boolean };

const EMPTY = Buffer.alloc(0);

/** Frames the node's output into responses (RFC 3501 7): lines, each literal inside its response. */
export class ResponseReader {
  private line: Buffer = EMPTY;
  private parts: Buffer[] = [];
  private size = 0;
  private literal = 0;
  private head = '';
  /** Part of the current response went to the client already. */
  streaming = false;

  constructor(private readonly emit: (out: NodeOutput) => void) {}

  push(data: Buffer): void {
    this.take(data);
    // What came of a streamed response goes on at once.
    if (this.streaming && this.size > 0) this.flushStream(false);
  }

  private take(data: Buffer): void {
    let pos = 0;
    while (pos < data.length) {
      if (this.literal > 0) {
        const take = Math.min(this.literal, data.length - pos);
        this.add(data.subarray(pos, pos + take));
        this.literal -= take;
        pos += take;
        if (this.literal === 0 && this.streaming) this.flushStream(false);
        continue;
      }
      const nl = data.indexOf(10, pos);
      if (nl < 0) {
        this.line = this.line.length ? Buffer.concat([this.line, data.subarray(pos)]) : Buffer.from(data.subarray(pos));
        if (this.line.length > NODE_LINE_MAX) throw new LinkLost('line too long from node');
        return;
      }
      const lineBytes = this.line.length ? Buffer.concat([this.line, data.subarray(pos, nl + 1)]) : data.subarray(pos, nl + 1);
      this.line = EMPTY;
      pos = nl + 1;
      const cut = lineBytes.length > 1 && lineBytes[lineBytes.length - 2] === 13 ? 2 : 1;
      const text = lineBytes.toString('utf8', 0, lineBytes.length - cut);
      if (this.size === 0 && !this.streaming) this.head = text;
      this.add(lineBytes);
      const mark = text.endsWith('}') ? /\{(\d{1,15})\}$/.exec(text) : null;
      if (mark) {
        this.literal = Number(mark[1]);
        if (!this.streaming && this.size + this.literal > STREAM_OVER) {
          this.streaming = true;
          this.flushStream(false, true);
        }
        continue;
      }
      if (this.streaming) {
        this.flushStream(true);
        this.streaming = false;
      } else {
        const bytes = joined(this.parts, this.size);
        this.parts = [];
        this.size = 0;
        this.emit({ kind: 'response', head: this.head, bytes });
      }
    }
  }

  private add(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.parts.push(bytes);
    this.size += bytes.length;
    if (this.streaming && this.size >= 64 * 1024) this.flushStream(false);
  }

  /** `first`: the response's bytes up to its big literal, each time the same for the same response. */
  private flushStream(end: boolean, first = false): void {
    const bytes = joined(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    this.emit({ kind: 'stream', head: this.head, bytes, first, end });
  }
}

/** The parts as one buffer: a view when they lie side by side in one read (no copy), else a copy. */
function joined(parts: Buffer[], size: number): Buffer {
  const first = parts[0];
  if (!first) return EMPTY;
  if (parts.length === 1) return first;
  let end = first.byteOffset + first.length;
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i]!;
    if (part.buffer !== first.buffer || part.byteOffset !== end) return Buffer.concat(parts, size);
    end += part.length;
  }
  return Buffer.from(first.buffer, first.byteOffset, size);
}

/** A plain connection to one node's IMAP listener, already past the PROXY line. */
class NodeLink {
  readonly reader: ResponseReader;
  closed = false;
  /** Where responses go: the front end's forwarder, or a command run by the gateway itself. */
  sink: ((out: NodeOutput) => void) | undefined;
  onClose: (() => void) | undefined;
  private backlog: NodeOutput[] = [];
  private waiters: (() => void)[] = [];

  private constructor(
    readonly nodeId: string,
    readonly socket: net.Socket,
  ) {
    this.reader = new ResponseReader((out) => {
      if (this.sink) this.sink(out);
      else {
        this.backlog.push(out);
        this.wake();
      }
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        this.reader.push(chunk);
      } catch {
        socket.destroy();
      }
    });
    socket.once('close', () => {
      this.closed = true;
      this.wake();
      this.onClose?.();
    });
  }

  static async open(nodeId: string, address: string, timeoutMs: number, client: net.Socket, secret: string | undefined): Promise<NodeLink> {
    const socket = await openNodeSocket(address, timeoutMs, secret);
    // The node believes the PROXY line only from a trusted gateway; it names the client.
    socket.write(proxyLine(client));
    return new NodeLink(nodeId, socket);
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /** The next response while no sink is set (the gateway's own commands). */
  async next(timeoutMs: number): Promise<NodeOutput> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const out = this.backlog.shift();
      if (out) return out;
      if (this.closed) throw new LinkLost('node connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new LinkLost('node did not answer in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Called when a write fills the link's buffer (the node reads slower than the client sends). */
  onFull: (() => void) | undefined;

  /** False when the link was gone already: the node never got the bytes. */
  send(bytes: Buffer | string): boolean {
    if (this.closed || this.socket.destroyed) return false;
    if (!this.socket.write(bytes)) this.onFull?.();
    return true;
  }

  /** Runs one command of the gateway's own: its untagged responses and its tagged status line. */
  command(tag: string, text: string | Buffer, timeoutMs: number): Promise<{ untagged: string[]; status: string }> {
    this.send(typeof text === 'string' ? `${tag} ${text}\r\n` : Buffer.concat([Buffer.from(`${tag} `), text]));
    return this.completion(tag, timeoutMs);
  }

  /**
   * Commands of the gateway's own sent at once (RFC 3501 5.5: the node answers them in order), each
   * one's responses read in turn: one round trip where the node would otherwise wait for each.
   */
  pipeline(commands: { tag: string; text: string | Buffer }[], timeoutMs: number): Promise<{ untagged: string[]; status: string }>[] {
    this.send(Buffer.concat(commands.map(({ tag, text }) => Buffer.concat([Buffer.from(`${tag} `), Buffer.from(text), Buffer.from(typeof text === 'string' ? '\r\n' : '')]))));
    let before: Promise<unknown> = Promise.resolve();
    return commands.map(({ tag }) => {
      const done = before.then(() => this.completion(tag, timeoutMs));
      before = done.catch(() => undefined);
      return done;
    });
  }

  /** The responses up to and including the tagged status line of `tag`. */
  private async completion(tag: string, timeoutMs: number): Promise<{ untagged: string[]; status: string }> {
    const untagged: string[] = [];
    for (;;) {
      const out = await this.next(timeoutMs);
      if (out.kind === 'stream') throw new LinkLost('unexpectedly large response');
      if (out.head.startsWith(`${tag} `)) return { untagged, status: out.head.slice(tag.length + 1) };
      if (/^\* BYE/i.test(out.head)) throw new NodeRefused(`node said ${out.head}`);
      untagged.push(out.head);
    }
  }

  /** Hands the rest of the responses to the forwarder, backlog first. */
  attach(sink: (out: NodeOutput) => void): void {
    this.sink = sink;
    for (const out of this.backlog.splice(0)) sink(out);
  }

  close(): void {
    this.onClose = undefined;
    this.sink = undefined;
    this.socket.destroy();
  }
}

/** A client command sent to the node and not yet completed. */
interface Pending {
  tag: string;
  /** Upper case, `UID FETCH` for UID commands. */
  name: string;
  /** The command as sent to the node (literals made non-synchronizing). */
  bytes: Buffer;
  /** SELECT/EXAMINE: what its responses said. */
  select?: { readOnly: boolean; exists?: number; uidValidity?: number; modseq?: number; uidNext?: number; name: ImapValue };
  /** IDLE: the client heard "+" (it stays told across moves), the current node said "+", the client sent DONE. */
  heardPlus?: boolean;
  nodePlus?: boolean;
  doneSent?: boolean;
  /** The gateway ended the IDLE itself (drain) and waits for its OK. */
  gatewayDone?: () => void;
  /** The link was gone before the command could be sent: the node surely never ran it. */
  unsent?: boolean;
  /** The node's tagged reply is replaced by this line (commands answered for on the gateway's behalf). */
  rewrite?: string;
}

interface Selected extends KnownView {
  readOnly: boolean;
  /** The client's SELECT/EXAMINE without its tag, to repeat on a new node. */
  command: Buffer;
  name: ImapValue;
}

export class ImapFront {
  private client: net.Socket;
  private readonly raw: net.Socket;
  private secure = false;
  private reader!: CommandReader;
  private readonly events: ReaderEvent[] = [];
  private wakeEvents: (() => void) | undefined;
  private clientGone = false;
  /** Made on first use: most sessions never log, and thousands of idle ones should stay small. */
  private logger: Logger | undefined;
  private user: string | undefined;
  private readonly enabled = new Set<string>();
  private selected: Selected | undefined;
  private link: NodeLink | undefined;
  private pending: Pending[] = [];
  /** Untagged responses the client is owed after a move made between commands (told at its next command). */
  private owed: { lines: string[]; expunges: boolean; base: Selected | undefined } | undefined;
  /** The client got part of a big response (first piece, bytes so far, the size of its literal). */
  private torn: { prefix: Buffer; sent: number; literal: number } | undefined;
  /** Carrying on a big response after a move (see resuming()). */
  private resume:
    | { tag: string; prefix: Buffer; sent: number; skip: number; matching: boolean; swallowing: boolean; after: Buffer[] }
    | undefined;
  /** A move in progress: client commands wait for it. */
  private moving: Promise<void> | undefined;
  private ended = false;
  /** A read from the node is being handled: bytes for the client wait in `held` (see toClient). */
  private holding = false;
  /** The node link whose buffer is full: the client is not read until it drains. */
  private linkFull: NodeLink | undefined;
  private held: Buffer[] | undefined;
  /** The node said BYE to the client: its closing ends the session. */
  private goodbye = false;
  private badCommands = 0;
  private authFailures = 0;
  private tagCounter = 0;

  constructor(
    socket: net.Socket,
    private readonly deps: ImapFrontDeps,
  ) {
    this.raw = socket;
    this.client = socket;
    // An implicit-TLS listener (993) hands over a socket past its handshake.
    this.secure = socket instanceof tls.TLSSocket;
    this.attachReader(socket);
    socket.on('close', () => {
      this.clientGone = true;
      this.wake();
    });
    // The plain socket carries every byte, TLS or not: its silence is the session's.
    socket.on('timeout', () => this.bye('autologout; idle for too long'));
    this.setIdleTimer();
  }

  private get log(): Logger {
    return (this.logger ??= this.deps.logger.child({ proto: 'imap', remote: this.raw.remoteAddress, user: this.user }));
  }

  /** The node the session is on now, if any. */
  get nodeId(): string | undefined {
    return this.link?.nodeId;
  }

  private attachReader(socket: net.Socket): void {
    // The nodes' own limits (src/imap/reader-limits.ts): ID's long line, APPEND's message size,
    // imap.commandLiteralBytes for all of one command's literals.
    this.reader = new CommandReader(
      imapReaderLimits(this.deps.config, () => this.user !== undefined),
      (event) => {
        // A synchronizing literal accepted here: the gateway holds the command until it is whole.
        if (event.kind === 'continue') return void this.write('+ Ready for literal data\r\n');
        // One framing rule on both sides: a command line holding a bare CR or a NUL is refused
        // here (RFC 3501 9: CR and NUL are not CHARs), never forwarded.
        if (event.kind === 'command' && event.chunks.some((chunk) => typeof chunk === 'string' && /[\r\0]/.test(chunk))) {
          const tag = /^[^\s\r\0]+/.exec(String(event.chunks[0]))?.[0] ?? '*';
          return void this.write(`${tag} BAD bare CR or NUL in command line\r\n`);
        }
        // The common case after login, the session idle between commands: straight through,
        // without a turn of the run loop.
        if (this.user && this.wakeEvents && this.events.length === 0 && !this.moving && !this.ended) {
          try {
            return this.forward(event);
          } catch (error) {
            // As in run(): the session ends, the gateway goes on.
            this.log.warn({ err: (error as Error).message }, 'gateway IMAP session failed');
            return this.end();
          }
        }
        this.events.push(event);
        if (this.events.length > 16) socket.pause();
        this.wake();
      },
    );
    socket.on('data', this.onClientData);
  }

  private readonly onClientData = (chunk: Buffer): void => this.reader.push(chunk);

  private wake(): void {
    const waiter = this.wakeEvents;
    this.wakeEvents = undefined;
    waiter?.();
  }

  private async nextEvent(): Promise<ReaderEvent | undefined> {
    for (;;) {
      if (this.moving) await this.moving;
      const event = this.events.shift();
      if (event) {
        if (this.events.length < 4 && !this.linkFull) this.client.resume();
        return event;
      }
      if (this.clientGone || this.ended) return undefined;
      await new Promise<void>((resolve) => (this.wakeEvents = resolve));
    }
  }

  private write(data: string | Buffer): void {
    if (this.ended || this.client.destroyed) return;
    this.spill();
    this.client.write(data);
  }

  /**
   * Bytes for the client. While one read from the node is handled they are held, and pieces
   * that lie side by side in that read leave as one write: a response forwarded unchanged costs
   * what a plain TCP relay pays for it. False when the client's buffer is full.
   */
  private toClient(bytes: Buffer): boolean {
    if (!this.holding) {
      this.spill();
      return this.client.write(bytes);
    }
    const held = (this.held ??= []);
    const last = held[held.length - 1];
    if (last && last.buffer === bytes.buffer && last.byteOffset + last.length === bytes.byteOffset) {
      held[held.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + bytes.length);
    } else {
      held.push(bytes);
    }
    return true;
  }

  /** Writes what is held, in one write (corked when in pieces); false when the client's buffer is full. */
  private spill(): boolean {
    const held = this.held;
    if (!held) return true;
    this.held = undefined;
    if (this.client.destroyed || this.client.writableEnded) return true;
    if (held.length === 1) return this.client.write(held[0]!);
    this.client.cork();
    let room = true;
    for (const bytes of held) room = this.client.write(bytes);
    this.client.uncork();
    return room;
  }

  private setIdleTimer(): void {
    const limits = this.deps.config.limits;
    // RFC 3501 5.4: 30 minutes once logged in (the node keeps its own), less before.
    const seconds = this.user ? limits.imapIdleTimeoutSeconds + 60 : Math.min(limits.idleTimeoutSeconds, limits.imapIdleTimeoutSeconds);
    this.raw.setTimeout(seconds * 1000);
  }

  async run(): Promise<void> {
    ImapFront.watch(this);
    try {
      this.write(`* OK [CAPABILITY ${this.preAuthCapabilities().join(' ')}] ${this.deps.config.hostname} Quillmail IMAP ready\r\n`);
      for (;;) {
        const event = await this.nextEvent();
        if (!event || this.ended) break;
        if (this.user) this.forward(event);
        else if (!(await this.preAuth(event))) break;
      }
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, 'gateway IMAP session failed');
    } finally {
      ImapFront.unwatch(this);
      this.end();
    }
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.link?.close();
    this.link = undefined;
    // What the node said before the end still goes out first.
    this.holding = false;
    this.spill();
    if (!this.client.destroyed) this.client.end();
    setTimeout(() => this.client.destroy(), 2_000).unref();
    this.wake();
  }

  /** Says goodbye and ends the session (RFC 3501 7.1.5). */
  private bye(text: string, code?: string): void {
    this.write(`* BYE ${code ? `[${code}] ` : ''}${text}\r\n`);
    this.end();
  }

  // ---- before login: the gateway speaks for itself ------------------------------------------

  private plaintextAllowed(): boolean {
    return this.secure || (this.deps.config.imap.loopbackPlainAuth && isLoopback(this.raw.remoteAddress));
  }

  private preAuthCapabilities(): string[] {
    const caps = [...CAPS_BASE];
    if (this.deps.tlsContext && !this.secure) caps.push('STARTTLS');
    if (this.plaintextAllowed()) caps.push(...SASL_MECHANISMS.map((mechanism) => `AUTH=${mechanism}`));
    else caps.push('LOGINDISABLED');
    return caps;
  }

  /** One command before login; false ends the session. */
  private async preAuth(event: ReaderEvent): Promise<boolean> {
    if (event.kind === 'error') {
      this.write(readerProblemReply(event));
      return !event.close && this.countBad();
    }
    if (event.kind !== 'command') return true;
    let command: Command;
    try {
      command = parseCommand(event.chunks);
    } catch (error) {
      this.write(`${error instanceof ParseError && error.tag ? error.tag : '*'} BAD syntax error: ${(error as Error).message}\r\n`);
      return this.countBad();
    }
    const { tag, name } = command;
    switch (name) {
      case 'CAPABILITY':
        this.write(`* CAPABILITY ${this.preAuthCapabilities().join(' ')}\r\n${tag} OK CAPABILITY completed\r\n`);
        return true;
      case 'NOOP':
        this.write(`${tag} OK NOOP completed\r\n`);
        return true;
      case 'ID':
        this.write(`* ID ("name" "Quillmail")\r\n${tag} OK ID completed\r\n`);
        return true;
      case 'LOGOUT':
        this.write(`* BYE logging out\r\n${tag} OK LOGOUT completed\r\n`);
        return false;
      case 'STARTTLS':
        return this.startTls(tag);
      case 'LOGIN':
      case 'AUTHENTICATE':
        return this.login(command);
      case 'COMPRESS':
      case 'ENABLE':
      case 'SELECT':
      case 'EXAMINE':
        this.write(`${tag} BAD ${name} is not allowed in the not-authenticated state\r\n`);
        return this.countBad();
      default:
        this.write(`${tag} BAD unknown command ${name}\r\n`);
        return this.countBad();
    }
  }

  private countBad(): boolean {
    if (++this.badCommands < this.deps.config.limits.badCommands) return true;
    this.write('* BYE too many bad commands\r\n');
    return false;
  }

  /** RFC 3501 6.2.1: TLS ends at the gateway; what the client pipelined after the command is dropped. */
  private async startTls(tag: string): Promise<boolean> {
    if (!this.deps.tlsContext || this.secure) {
      this.write(`${tag} BAD TLS is not available\r\n`);
      return this.countBad();
    }
    this.write(`${tag} OK begin TLS negotiation now\r\n`);
    const plain = this.client;
    plain.off('data', this.onClientData);
    this.events.length = 0;
    const secured = new tls.TLSSocket(plain, { isServer: true, secureContext: this.deps.tlsContext });
    secured.on('error', () => undefined);
    // A client that stalls in the handshake is closed after gateway.tlsHandshakeTimeoutMs.
    const timer = setTimeout(() => secured.destroy(new Error('handshake timed out')), this.deps.config.gateway.tlsHandshakeTimeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        secured.once('secure', () => resolve());
        secured.once('error', reject);
        secured.once('close', () => reject(new Error('closed during handshake')));
      });
    } catch (error) {
      this.log.info({ err: (error as Error).message }, 'TLS handshake failed');
      return false;
    } finally {
      clearTimeout(timer);
    }
    this.client = secured;
    this.secure = true;
    this.attachReader(secured);
    secured.on('close', () => {
      this.clientGone = true;
      this.wake();
    });
    return true;
  }

  /** LOGIN and AUTHENTICATE PLAIN or LOGIN (RFC 3501 6.2.2-3, RFC 4616, SASL-IR RFC 4959), checked here. */
  private async login(command: Command): Promise<boolean> {
    const { tag, name, args } = command;
    let address: string;
    let password: string;
    try {
      if (name === 'LOGIN') {
        if (args.length !== 2) throw new Error('LOGIN takes a user name and a password');
        if (!this.plaintextAllowed()) {
          this.write(`${tag} NO [PRIVACYREQUIRED] use STARTTLS first\r\n`);
          return true;
        }
        address = astring(args[0], 'user name');
        password = astring(args[1], 'password');
      } else {
        if (args.length < 1 || args.length > 2) throw new Error('AUTHENTICATE takes a mechanism');
        const mechanism = atomText(args[0]) ?? '';
        if (!isSaslMechanism(mechanism)) {
          this.write(`${tag} NO [CANNOT] mechanism not supported\r\n`);
          return true;
        }
        if (!this.plaintextAllowed()) {
          this.write(`${tag} NO [PRIVACYREQUIRED] use STARTTLS first\r\n`);
          return true;
        }
        // The exchange is the nodes' own (src/protocol/sasl.ts).
        const initial = args.length === 2 ? astring(args[1], 'initial response') : undefined;
        try {
          ({ authcid: address, password } = await saslExchange(mechanism, initial, async (challenge) => {
            this.write(`+ ${challenge}\r\n`);
            const answer = await this.nextEvent();
            if (!answer || answer.kind !== 'command') throw new ClientLeft();
            return chunksAsLine(answer.chunks).trim();
          }));
        } catch (error) {
          if (error instanceof ClientLeft) return false;
          if (error instanceof SaslError && error.reason === 'bad-authzid') {
            this.write(`${tag} NO [AUTHENTICATIONFAILED] ${error.message}\r\n`);
            return true;
          }
          if (error instanceof SaslError && error.reason === 'cancelled') {
            this.write(`${tag} BAD ${error.message}\r\n`);
            return true;
          }
          throw error;
        }
      }
    } catch (error) {
      this.write(`${tag} BAD ${(error as Error).message}\r\n`);
      return this.countBad();
    }
    const result = await this.deps.auth.authenticate(address, password, (this.raw.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.)/, ''));
    if (!result.ok) {
      this.log.info({ address, reason: result.reason }, 'authentication failed');
      this.write(result.reason === 'locked' ? `${tag} NO [UNAVAILABLE] too many failed logins, try again later\r\n` : `${tag} NO [AUTHENTICATIONFAILED] authentication failed\r\n`);
      if (++this.authFailures >= this.deps.config.limits.authFailures) {
        this.write('* BYE too many failed authentications\r\n');
        return false;
      }
      return true;
    }
    this.user = result.user.address;
    let caps: string;
    try {
      const opened = await this.openSession();
      this.link = opened.link;
      caps = opened.caps;
    } catch (error) {
      this.user = undefined;
      const text = error instanceof CannotCarry ? error.message : 'no mail node available, try again later';
      this.log.warn({ err: (error as Error).message }, 'gateway: no node took the IMAP login');
      this.write(`${tag} NO ${/^\[/.test(text) ? text : `[UNAVAILABLE] ${text}`}\r\n`);
      return true;
    }
    this.setIdleTimer();
    this.attachLink(this.link);
    this.log.info({ user: this.user, node: this.link.nodeId }, 'authenticated');
    this.write(`${tag} OK [CAPABILITY ${caps}] logged in\r\n`);
    return true;
  }

  // ---- the session on a node -------------------------------------------------------------------

  private nextTag(): string {
    return `G${(++this.tagCounter).toString(36)}`;
  }

  /**
   * Opens a node session for the user on the least loaded node: greeting, XQUILL-LOGIN. The node
   * a move comes from (`last`) is tried after every other: it is listed only while it answers
   * its probe, so it dropped the link but lives (freeze.ts), and a session on it beats a BYE.
   */
  private async openSession(last?: string): Promise<{ link: NodeLink; caps: string }> {
    const candidates = this.deps.directory.candidates('imap', this.user);
    const { link, node, set: caps } = await firstTaker(
      last === undefined ? candidates : [...candidates.filter((node) => node.id !== last), ...candidates.filter((node) => node.id === last)],
      this.deps.directory,
      {
        open: (node) => NodeLink.open(node.id, node.address, this.deps.config.gateway.connectTimeoutMs, this.raw, this.deps.config.cluster.secret),
        setUp: (link) => this.login2node(link),
        ends: (error) => error instanceof CannotCarry,
      },
    );
    this.deps.directory.noteOpened(node.id, 'imap');
    return { link, caps };
  }

  private async login2node(link: NodeLink): Promise<string> {
    const timeout = this.deps.config.gateway.connectTimeoutMs * 2;
    const greeting = await link.next(timeout);
    if (greeting.kind !== 'response' || !/^\* OK/i.test(greeting.head)) throw new NodeRefused(`node greeting: ${greeting.head}`);
    const reply = await link.command(this.nextTag(), `XQUILL-LOGIN ${quoteString(this.user!)}`, timeout);
    if (/^BAD/i.test(reply.status)) throw new NodeRefused(`XQUILL-LOGIN refused (is this gateway in the node's trustedGateways, with the same cluster.secret?): ${reply.status}`);
    if (!/^OK/i.test(reply.status)) throw new CannotCarry(reply.status.replace(/^NO /i, ''));
    const caps = /\[CAPABILITY ([^\]]*)\]/i.exec(reply.status)?.[1] ?? CAPS_BASE.join(' ');
    return filterCaps(caps);
  }

  private attachLink(link: NodeLink): void {
    // Backpressure client -> node: while the node's buffer is full, the client is not read.
    link.onFull = () => {
      if (this.linkFull === link) return;
      this.linkFull = link;
      this.client.pause();
      const release = () => {
        link.socket.off('drain', release);
        link.socket.off('close', release);
        if (this.linkFull !== link) return;
        this.linkFull = undefined;
        if (this.events.length < 4) this.client.resume();
      };
      link.socket.on('drain', release);
      link.socket.on('close', release);
    };
    link.onClose = () => {
      if (this.link !== link || this.ended) return;
      // After the node's BYE the session is over (LOGOUT, autologout); otherwise it moves.
      if (this.goodbye) this.end();
      else void this.move('lost');
    };
    // Responses that arrive together leave together (one write, not one per response).
    link.socket.prependListener('data', () => (this.holding = true));
    link.socket.on('data', () => {
      this.holding = false;
      if (!this.spill() && this.link === link) this.pauseFor(link);
    });
    link.attach((out) => this.fromNode(link, out));
    if (link.closed && this.link === link) link.onClose();
  }

  /** One client event after login: framed, recorded, passed to the node. */
  private forward(event: ReaderEvent): void {
    if (event.kind === 'error') {
      this.write(readerProblemReply(event));
      // RFC 7888 4: the rest of a non-synchronizing literal is not read; the session ends.
      if (event.close) this.end();
      return;
    }
    if (event.kind !== 'command') return;
    // A replayed IDLE may not have its new "+" yet: the node reads the DONE after sending it.
    const idle = this.pending.find((p) => p.name === 'IDLE' && p.heardPlus && !p.doneSent);
    if (idle) {
      // RFC 2177: the line after "+ idling" ends the IDLE (the node answers BAD to anything but DONE).
      idle.doneSent = true;
      this.link?.send(wireBytes(event.chunks));
      return;
    }
    let command: Command;
    try {
      command = parseCommand(event.chunks);
    } catch (error) {
      this.write(`${error instanceof ParseError && error.tag ? error.tag : '*'} BAD syntax error: ${(error as Error).message}\r\n`);
      return;
    }
    const tag = command.tag;
    let name = command.name;
    if (name === 'UID') name = `UID ${atomText(command.args[0]) ?? ''}`;
    if (name === 'COMPRESS') {
      this.write(`${tag} NO [CANNOT] COMPRESS is not available through this gateway\r\n`);
      return;
    }
    if (this.owed && !this.tellOwed(name)) return;
    const pending: Pending = { tag, name, bytes: wireBytes(event.chunks) };
    if (name === 'SELECT' || name === 'EXAMINE') pending.select = { readOnly: name === 'EXAMINE', name: command.args[0] ?? '' };
    this.pending.push(pending);
    // A link lost meanwhile is found by its close event; the command is replayed then.
    pending.unsent = !this.link?.send(pending.bytes);
  }

  /**
   * Tells the client what it is owed from a move made between commands, now that a command is
   * in progress (RFC 3501 7.4.1: no EXPUNGE without one). A command naming messages by sequence
   * number was written against the old numbering: with expunges owed it would hit the wrong
   * messages, so the session ends instead. False when it did.
   */
  private tellOwed(name: string): boolean {
    const owed = this.owed!;
    this.owed = undefined;
    if (owed.expunges && BY_SEQUENCE.has(name)) {
      gatewayStats.imapFailoverByes++;
      this.bye('mailbox changed while your session moved between servers; please reconnect', 'UNAVAILABLE');
      return false;
    }
    for (const line of owed.lines) this.write(`${line}\r\n`);
    gatewayStats.imapReconciled += owed.lines.length;
    if (owed.base) this.selected = owed.base;
    return true;
  }

  /** One response from the node: recorded, then passed to the client (or kept back). */
  private fromNode(link: NodeLink, out: NodeOutput): void {
    if (this.link !== link || this.ended) return;
    if (this.resume) return this.resuming(link, out);
    if (out.kind === 'stream') {
      // Too big to hold: it goes as it comes, and the gateway notes how far it got.
      if (out.first) this.torn = { prefix: out.bytes, sent: 0, literal: Number(/\{(\d+)\}\r?\n$/.exec(out.bytes.toString('latin1', Math.max(0, out.bytes.length - 24)))?.[1] ?? 0) };
      if (this.torn) this.torn.sent += out.bytes.length;
      if (out.end) this.torn = undefined;
      if (!this.toClient(out.bytes)) this.pauseFor(link);
      return;
    }
    const head = out.head;
    const reply = this.record(head, out.bytes);
    if (reply && !this.toClient(reply)) this.pauseFor(link);
  }

  /** Records a whole response; what goes to the client (undefined: nothing). */
  private record(head: string, original: Buffer): Buffer | undefined {
    let bytes: Buffer | undefined | null = original;
    if (head.startsWith('+')) {
      const idle = this.pending.find((p) => p.name === 'IDLE' && !p.nodePlus);
      if (idle) {
        idle.nodePlus = true;
        // A re-entered IDLE: the client heard its "+" from the node before.
        if (idle.heardPlus) bytes = undefined;
        idle.heardPlus = true;
      }
    } else if (head.startsWith('* ')) {
      bytes = this.untagged(head, bytes);
      if (bytes === null) return undefined; // the node is going away: the session moves
    } else {
      bytes = this.tagged(head, bytes);
    }
    return bytes ?? undefined;
  }

  /**
   * After a move in the middle of a big response (a message's literal, most likely): the
   * replayed command's responses are read until the same response comes, whose bytes up to its
   * literal must be exactly those the client got; the literal's bytes the client has are
   * skipped and the rest goes on, so the client gets the response whole and byte-exact (a
   * message's content never changes, RFC 3501 2.3). Responses before it repeat complete ones
   * (FETCH, dropped) or are news (kept until the response is done); anything else ends the
   * session, as the node's death would have.
   */
  private resuming(link: NodeLink, out: NodeOutput): void {
    const resume = this.resume!;
    if (out.kind === 'stream') {
      if (out.first) {
        if (resume.matching) return this.end();
        resume.swallowing = !out.bytes.equals(resume.prefix);
        resume.matching = !resume.swallowing;
        resume.skip = resume.sent - resume.prefix.length;
        return;
      }
      if (resume.swallowing) {
        if (out.end) resume.swallowing = false;
        return;
      }
      let bytes = out.bytes;
      const drop = Math.min(resume.skip, bytes.length);
      resume.skip -= drop;
      bytes = bytes.subarray(drop);
      if (this.torn) this.torn.sent += bytes.length; // should this node die too, the next one goes on from here
      if (bytes.length > 0 && !this.toClient(bytes)) this.pauseFor(link);
      if (out.end) {
        if (resume.skip > 0) return this.end();
        this.resume = undefined;
        this.torn = undefined;
        gatewayStats.imapResumed++;
        for (const queued of resume.after) this.toClient(queued);
      }
      return;
    }
    if (resume.matching || resume.swallowing) return this.end();
    if (/^\* \d+ FETCH /i.test(out.head)) return; // a repeat of a complete one
    if (out.head.startsWith(`${resume.tag} `)) return this.end(); // done without the response
    const reply = this.record(out.head, out.bytes);
    if (reply) resume.after.push(reply);
  }

  private pauseFor(link: NodeLink): void {
    if (link.socket.isPaused()) return;
    link.socket.pause();
    this.client.once('drain', () => link.socket.resume());
  }

  /** Records an untagged response; undefined keeps it back, null means the node said goodbye. */
  private untagged(head: string, bytes: Buffer): Buffer | undefined | null {
    // The bulk of the traffic, and nothing to record.
    if (/^\* \d+ FETCH /.test(head)) return bytes;
    const first = this.pending[0];
    const inSelect = first?.select;
    let match: RegExpExecArray | null;
    if ((match = /^\* (\d+) EXISTS$/i.exec(head))) {
      const count = Number(match[1]);
      if (inSelect) inSelect.exists = count;
      else this.noteEvent({ kind: 'exists', count }, count);
    } else if ((match = /^\* (\d+) EXPUNGE$/i.exec(head))) {
      if (!inSelect && this.selected) this.noteEvent({ kind: 'expunge', seq: Number(match[1]) }, this.selected.told - 1);
    } else if ((match = /^\* VANISHED (?!\(EARLIER\))(\S+)$/i.exec(head))) {
      const uids = parseUids(match[1]!);
      if (!inSelect && this.selected) {
        if (uids) this.noteEvent({ kind: 'vanished', uids }, this.selected.told - uids.length);
        else this.selected.events = undefined;
      }
    } else if ((match = /^\* OK \[(UIDVALIDITY|HIGHESTMODSEQ|UIDNEXT) (\d+)\]/i.exec(head))) {
      if (inSelect) {
        const value = Number(match[2]);
        const key = match[1]!.toUpperCase();
        if (key === 'UIDVALIDITY') inSelect.uidValidity = value;
        else if (key === 'HIGHESTMODSEQ') inSelect.modseq = value;
        else inSelect.uidNext = value;
      }
    } else if ((match = /^\* ENABLED(.*)$/i.exec(head))) {
      for (const cap of match[1]!.trim().split(/\s+/)) if (cap) this.enabled.add(cap.toUpperCase());
    } else if (/^\* CAPABILITY /i.test(head)) {
      return Buffer.from(`* CAPABILITY ${filterCaps(head.slice(13))}\r\n`);
    } else if (/^\* BYE/i.test(head)) {
      if (first?.name === 'LOGOUT') {
        this.goodbye = true;
        return bytes;
      }
      // A node stopping (or restarting) says BYE to everyone: the session moves, quietly.
      if (/shutting down|\[UNAVAILABLE\]/i.test(head)) {
        void this.move('lost');
        return null;
      }
      this.goodbye = true;
      return bytes; // autologout, too many bad commands: the node's word stands
    }
    return bytes;
  }

  private noteEvent(event: ViewEvent, told: number): void {
    const selected = this.selected;
    if (!selected) return;
    selected.told = told;
    if (selected.events && selected.events.length < MAX_EVENTS) selected.events.push(event);
    else selected.events = undefined;
  }

  /** A tagged response completes its command; the state it changes is recorded. */
  private tagged(head: string, bytes: Buffer): Buffer | undefined {
    const tag = head.slice(0, head.indexOf(' '));
    const at = this.pending.findIndex((p) => p.tag === tag);
    if (at < 0) return bytes;
    const [done] = this.pending.splice(at, 1) as [Pending];
    const ok = /^\S+ OK/i.test(head);
    if (done.select) {
      const info = done.select;
      if (ok && info.exists !== undefined && info.uidValidity !== undefined && info.uidNext !== undefined) {
        this.selected = {
          readOnly: info.readOnly,
          command: done.bytes.subarray(done.tag.length),
          name: info.name,
          uidValidity: info.uidValidity,
          // Without a modseq nothing can be checked after a move: BYE then.
          modseq: info.modseq ?? -1,
          uidNext: info.uidNext,
          exists0: info.exists,
          told: info.exists,
          events: info.modseq === undefined ? undefined : [],
        };
      } else if (/^\S+ NO/i.test(head)) this.selected = undefined; // RFC 3501 6.3.1: a failed SELECT leaves none
    } else if (ok && (done.name === 'CLOSE' || done.name === 'UNSELECT')) {
      this.selected = undefined;
    }
    if (done.gatewayDone) {
      done.gatewayDone();
      return undefined;
    }
    if (done.name === 'LOGOUT') setImmediate(() => this.end());
    if (done.rewrite) return Buffer.from(`${done.rewrite}\r\n`);
    if (/\[CAPABILITY /i.test(head)) return Buffer.from(`${head.replace(/\[CAPABILITY ([^\]]*)\]/i, (_m, caps: string) => `[CAPABILITY ${filterCaps(caps)}]`)}\r\n`);
    return bytes;
  }

  // ---- moving the session ------------------------------------------------------------------

  /** Starts a move unless one runs; client commands wait for it. */
  private move(why: 'lost' | 'drain'): Promise<void> {
    this.moving ??= this.carryOver(why).finally(() => {
      this.moving = undefined;
      this.wake();
    });
    return this.moving;
  }

  /** Whether a drain may move the session now: between commands, or in IDLE. */
  private get movable(): boolean {
    if (!this.user || this.moving || this.ended || !this.link) return false;
    if (this.pending.length === 0) return this.events.length === 0;
    const idle = this.pending[0]!;
    return this.pending.length === 1 && idle.name === 'IDLE' && idle.heardPlus === true && idle.nodePlus === true && !idle.doneSent;
  }

  private async carryOver(why: 'lost' | 'drain'): Promise<void> {
    const old = this.link;
    if (!old) return;
    const oldNode = old.nodeId;
    if (why === 'drain') {
      const idle = this.pending[0];
      if (idle && idle.name === 'IDLE') {
        // RFC 2177: end the IDLE on the old node; its OK is the gateway's, not the client's.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 5_000);
          idle.gatewayDone = () => {
            clearTimeout(timer);
            resolve();
          };
          old.onClose = () => {
            clearTimeout(timer);
            resolve();
          };
          old.send('DONE\r\n');
        });
        idle.gatewayDone = undefined;
        this.pending = [idle];
        idle.doneSent = false;
      }
      if (!old.closed) old.send(`${this.nextTag()} LOGOUT\r\n`);
      gatewayStats.imapMigrations++;
    } else {
      // A link that closed says the node may be down; a BYE (stopping) says it is alive.
      if (old.closed) this.deps.directory.markFailed(oldNode);
      gatewayStats.imapFailovers++;
      this.deps.onFailover?.();
    }
    // What the client has seen of the node's output must end at a response boundary, or be a
    // big response cut short (`torn` stays set while the client is in the middle of it).
    const torn = this.torn;
    this.resume = undefined;
    old.close();
    this.link = undefined;
    if (this.ended || this.clientGone) return;
    this.log.warn({ node: oldNode, why, pending: this.pending.map((p) => p.name), torn: torn?.sent }, why === 'drain' ? 'gateway: moving IMAP session off a draining node' : 'gateway: IMAP node lost mid-session; moving the session');
    const first = this.pending[0];
    if (torn) {
      // Only a FETCH cut inside its big literal can be finished from another node; otherwise
      // (and whenever that fails: fail() knows) the client sees the connection end, as it would
      // have with the node itself. A BYE now would land inside the half-sent response.
      if (!first || !/^(UID )?FETCH$/.test(first.name) || torn.sent > torn.prefix.length + torn.literal) {
        gatewayStats.imapFailoverByes++;
        return this.end();
      }
      this.resume = { tag: first.tag, prefix: torn.prefix, sent: torn.sent, skip: 0, matching: false, swallowing: false, after: [] };
    }
    // The node runs commands one at a time, so only the first pending one may have started.
    // Repeating one that changes things could do it twice: its outcome is unknown.
    if (first?.name === 'LOGOUT') {
      this.write(`* BYE logging out\r\n${first.tag} OK LOGOUT completed\r\n`);
      return this.end();
    }
    if (first && !first.unsent && !this.replayable(first)) return this.fail(`connection to the mail server was lost during ${first.name}; its outcome is unknown, please check and reconnect`);

    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      let link: NodeLink | undefined;
      try {
        if (attempt > 0) {
          // A pause, and with no node left a fresh look at them: the lost node may be alive and
          // have dropped only this link (a node fences its gateway sessions after a freeze of
          // some 400 ms, src/cluster/freeze.ts, which a busy machine gives it), and a node may
          // answer its probe again meanwhile.
          await backoff(attempt);
          if (this.ended || this.clientGone) return;
          if (this.deps.directory.candidates('imap', this.user).length === 0) await this.deps.directory.refresh();
        }
        const opened = await this.openSession(oldNode);
        link = opened.link;
        await this.rebuild(link, first);
        if (this.ended || this.clientGone) {
          link.close(); // the client left meanwhile
          return;
        }
        this.link = link;
        this.replay(link);
        this.attachLink(link);
        this.log.info({ from: oldNode, to: link.nodeId }, 'gateway: IMAP session moved');
        return;
      } catch (error) {
        link?.close();
        if (error instanceof CannotCarry) return this.fail(error.message);
        this.log.warn({ err: (error as Error).message }, 'gateway: IMAP move attempt failed');
        if (this.ended || this.clientGone) return;
      }
    }
    this.fail('no mail server available, try again later');
  }

  private fail(text: string): void {
    gatewayStats.imapFailoverByes++;
    // In the middle of a response a BYE would be read as part of it: the connection just ends.
    if (this.torn) this.end();
    else this.bye(text, 'UNAVAILABLE');
  }

  private replayable(p: Pending): boolean {
    if (REPLAYABLE.has(p.name) || p.name === 'IDLE' || p.name === 'LOGOUT') return true;
    if (p.name === 'STORE' || p.name === 'UID STORE') {
      // Setting, adding or removing flags twice gives the same flags; UNCHANGEDSINCE would fail the second time.
      return /^\S+ (UID )?STORE \S+ [+-]?FLAGS(\.SILENT)? /i.test(p.bytes.toString('latin1', 0, 200)) && !/UNCHANGEDSINCE/i.test(p.bytes.toString('latin1', 0, 200));
    }
    return false;
  }

  /**
   * Brings the new node where the client is: ENABLE, re-SELECT, and what the client must hear
   * so its view of the selected mailbox matches (imap-view.ts).
   */
  private async rebuild(link: NodeLink, first: Pending | undefined): Promise<void> {
    const timeout = this.deps.config.gateway.connectTimeoutMs * 5;
    if (this.enabled.size > 0) {
      const reply = await link.command(this.nextTag(), `ENABLE ${[...this.enabled].join(' ')}`, timeout);
      if (!/^OK/i.test(reply.status)) throw new CannotCarry(`the new server refused ENABLE: ${reply.status}`);
    }
    // Owed responses not told yet are superseded: the view to match is still the client's.
    this.owed = undefined;
    const selected = this.selected;
    // A pending SELECT replaces the view anyway.
    if (!selected || first?.select) return;
    if (!selected.events) throw new CannotCarry('your mailbox changed too much while your session moved between servers; please reconnect');
    // A node learns of mail another node stored a moment later (the change feed): a move right
    // after a delivery can find the new node one message behind what the client was told. It
    // catches up within moments; the view is taken again a few times before the client hears BYE.
    let survey = await this.survey(link, selected, timeout);
    for (let round = 1; !survey.result.ok && round < CATCH_UP_ROUNDS; round++) {
      await new Promise((resolve) => setTimeout(resolve, CATCH_UP_PAUSE_MS));
      survey = await this.survey(link, selected, timeout);
    }
    const { view, result } = survey;
    if (!result.ok) {
      this.log.warn({ why: result.why }, 'gateway: IMAP view cannot be carried over');
      throw new CannotCarry(`mailbox state changed while your session moved between servers (${result.why}); please reconnect`);
    }
    this.log.info({ responses: result.responses.length, expunged: result.expunged, added: result.added, inCommand: this.pending.length > 0 }, 'gateway: IMAP view reconciled');
    // Every message listed counts as known: a UIDNEXT that a listed UID has passed already (the
    // node's SELECT and its listing a moment apart) would leave it out of the next move's count.
    const uidNext = Math.max(view.uidNext, (view.uids[view.uids.length - 1] ?? 0) + 1);
    const base: Selected = { ...selected, uidValidity: view.uidValidity, modseq: view.modseq, uidNext, exists0: view.uids.length, told: view.uids.length, events: [] };
    const inCommand = this.pending.length > 0;
    if (!inCommand) {
      // Between commands: no EXPUNGE may go now (RFC 3501 7.4.1); told at the next command.
      if (result.responses.length > 0) this.owed = { lines: result.responses, expunges: result.expunged > 0, base };
      else this.selected = base;
      return;
    }
    if (result.expunged > 0 && first && BY_SEQUENCE.has(first.name)) {
      throw new CannotCarry('messages were expunged while your session moved between servers; please reconnect');
    }
    // In the middle of a response they wait for its end.
    for (const line of result.responses) {
      if (this.resume) this.resume.after.push(Buffer.from(`${line}\r\n`));
      else this.write(`${line}\r\n`);
    }
    gatewayStats.imapReconciled += result.responses.length;
    this.selected = base;
  }

  /** The new node's view of the selected mailbox, and what the client must be told to match it. */
  private async survey(link: NodeLink, selected: Selected, timeout: number): Promise<{ view: { uids: number[]; uidValidity: number; modseq: number; uidNext: number }; result: ReturnType<typeof reconcile> }> {
    // The second link changesSince asks on is opened and logged in meanwhile: it sees the mailbox
    // only once the view below is taken, but its round trips overlap the SELECT's.
    const aux = this.openAux(link);
    let view: { uids: number[]; uidValidity: number; modseq: number; uidNext: number } | undefined;
    try {
      for (let round = 0; round < 3 && !view; round++) view = await this.reselect(link, selected, timeout);
    } catch (error) {
      void aux.then((a) => a?.close());
      throw error;
    }
    if (!view) {
      void aux.then((a) => a?.close());
      throw new CannotCarry('the mailbox kept changing while your session moved between servers; please reconnect');
    }
    // Every change (new message, flags, expunge) raises HIGHESTMODSEQ: unchanged, nothing to ask.
    let changes: Pick<NodeFacts, 'vanished' | 'changed'> = { vanished: [], changed: [] };
    if (view.modseq === selected.modseq) void aux.then((a) => a?.close());
    else changes = await this.changesSince(aux, selected, view.uidValidity, timeout);
    const facts: NodeFacts = { uidValidity: view.uidValidity, uids: view.uids, ...changes };
    // CONDSTORE is on once ENABLEd or named in the SELECT (RFC 7162 3.1): FETCH then carries MODSEQ.
    const condstore = this.enabled.has('CONDSTORE') || this.enabled.has('QRESYNC') || /CONDSTORE|QRESYNC/i.test(selected.command.toString('latin1'));
    return { view, result: reconcile(selected, facts, { qresync: this.enabled.has('QRESYNC'), condstore }) };
  }

  /** SELECT again and list the new node's view; undefined when it changed meanwhile (try again). */
  private async reselect(link: NodeLink, selected: Selected, timeout: number): Promise<{ uids: number[]; uidValidity: number; modseq: number; uidNext: number } | undefined> {
    // The listing goes along with the SELECT: one round trip (RFC 3501 5.5, answered in order).
    const [selecting, listing] = link.pipeline([{ tag: this.nextTag(), text: selected.command.subarray(1) }, { tag: this.nextTag(), text: 'UID FETCH 1:* (UID)' }], timeout);
    const reply = await selecting!;
    if (!/^OK/i.test(reply.status)) throw new CannotCarry(`the mailbox cannot be opened again: ${reply.status}`);
    const code = (name: string) => {
      for (const line of reply.untagged) {
        const m = new RegExp(`^\\* OK \\[${name} (\\d+)\\]`, 'i').exec(line);
        if (m) return Number(m[1]);
      }
      return undefined;
    };
    const exists = reply.untagged.map((line) => /^\* (\d+) EXISTS$/i.exec(line)).find(Boolean);
    const uidValidity = code('UIDVALIDITY');
    const modseq = code('HIGHESTMODSEQ');
    const uidNext = code('UIDNEXT');
    if (!exists || uidValidity === undefined || modseq === undefined || uidNext === undefined) throw new CannotCarry('the new server did not describe the mailbox');
    if (uidValidity !== selected.uidValidity) throw new CannotCarry('the mailbox was recreated (UIDVALIDITY changed); please reconnect');
    const count = Number(exists[1]);
    const listed = await listing!;
    if (count === 0) return listed.untagged.length === 0 ? { uids: [], uidValidity, modseq, uidNext } : undefined;
    if (!/^OK/i.test(listed.status)) throw new CannotCarry(`the mailbox cannot be listed: ${listed.status}`);
    const uids: number[] = [];
    for (const line of listed.untagged) {
      const m = /^\* (\d+) FETCH \(UID (\d+)\)$/i.exec(line);
      if (m && Number(m[1]) === uids.length + 1) uids.push(Number(m[2]));
      else return undefined; // EXISTS, EXPUNGE or anything unexpected: the view moved
    }
    return uids.length === count ? { uids, uidValidity, modseq, uidNext } : undefined;
  }

  /** A second link to the main link's node, logged in as the user (for changesSince); undefined when it cannot be had. */
  private async openAux(main: NodeLink): Promise<NodeLink | undefined> {
    const node = this.deps.directory.candidates('imap').find((n) => n.id === main.nodeId) ?? this.deps.directory.list().find((n) => n.id === main.nodeId);
    const address = node && ('address' in node ? node.address : node.member.addresses.imap);
    if (!address) return undefined;
    let aux: NodeLink | undefined;
    try {
      aux = await NodeLink.open(main.nodeId, address, this.deps.config.gateway.connectTimeoutMs, this.raw, this.deps.config.cluster.secret);
      await this.login2node(aux);
      return aux;
    } catch {
      aux?.close();
      return undefined;
    }
  }

  /**
   * UIDs expunged and flags changed since the client's known modseq, asked on a second
   * connection to the same node with QRESYNC (RFC 7162 3.2.5), so that the session's own
   * responses stay the kind the client enabled.
   */
  private async changesSince(opening: Promise<NodeLink | undefined>, selected: Selected, uidValidity: number, timeout: number): Promise<Pick<NodeFacts, 'vanished' | 'changed'>> {
    const aux = await opening;
    if (!aux) throw new LinkLost('no second link to the new node');
    try {
      const [enable, examine] = aux.pipeline(
        [
          { tag: this.nextTag(), text: 'ENABLE QRESYNC' },
          { tag: this.nextTag(), text: `EXAMINE ${wireAstring(selected.name)} (QRESYNC (${uidValidity} ${selected.modseq}))` },
        ],
        timeout,
      );
      if (!/^OK/i.test((await enable!).status)) throw new CannotCarry('the new server cannot tell what changed (no QRESYNC)');
      const reply = await examine!;
      if (!/^OK/i.test(reply.status)) throw new CannotCarry(`the mailbox cannot be examined: ${reply.status}`);
      const vanished: number[] = [];
      const changed: NodeFacts['changed'] = [];
      for (const line of reply.untagged) {
        let m = /^\* VANISHED \(EARLIER\) (\S+)$/i.exec(line);
        if (m) {
          const uids = parseUids(m[1]!);
          if (!uids) throw new CannotCarry('too many messages vanished to follow');
          vanished.push(...uids);
          continue;
        }
        m = /^\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\) MODSEQ \((\d+)\)\)$/i.exec(line);
        if (m) changed.push({ uid: Number(m[1]), flags: m[2]!, modseq: Number(m[3]) });
      }
      aux.send(`${this.nextTag()} LOGOUT\r\n`);
      return { vanished, changed };
    } finally {
      setTimeout(() => aux.close(), 1_000).unref();
    }
  }

  /** Sends the pending commands again, each as safe: re-entered IDLE, NOOP stand-ins, or itself. */
  private replay(link: NodeLink): void {
    for (const [i, p] of this.pending.entries()) {
      gatewayStats.imapReplays++;
      if (p.name === 'IDLE') {
        if (p.doneSent) {
          // The client ended the IDLE already: a NOOP collects the updates, answered as the IDLE.
          p.rewrite = `${p.tag} OK IDLE terminated`;
          link.send(`${p.tag} NOOP\r\n`);
          continue;
        }
        p.nodePlus = false;
        link.send(`${p.tag} IDLE\r\n`);
        continue;
      }
      if ((i > 0 || p.unsent) && !this.replayable(p)) {
        // Behind an unfinished command (or never sent) the node had not started it: surely not done.
        p.rewrite = `${p.tag} NO [UNAVAILABLE] ${p.name} was not carried out (the server handling it stopped); please try again`;
        link.send(`${p.tag} NOOP\r\n`);
        continue;
      }
      p.unsent = !link.send(p.bytes);
    }
  }

  // ---- draining ------------------------------------------------------------------------------

  private static readonly watched = new Set<ImapFront>();
  private static timer: NodeJS.Timeout | undefined;

  private static watch(front: ImapFront): void {
    ImapFront.watched.add(front);
    ImapFront.timer ??= setInterval(() => ImapFront.checkDrains(), DRAIN_CHECK_MS);
    ImapFront.timer.unref();
  }

  private static unwatch(front: ImapFront): void {
    ImapFront.watched.delete(front);
    if (ImapFront.watched.size === 0 && ImapFront.timer) {
      clearInterval(ImapFront.timer);
      ImapFront.timer = undefined;
    }
  }

  /** Sessions idle on a draining node move to another one (`quill drain NODE`). */
  private static checkDrains(): void {
    // Per directory (one per gateway): the draining nodes, and whether another node can take sessions.
    const seen = new Map<NodeDirectory, { draining: Set<string>; takers: number }>();
    for (const front of ImapFront.watched) {
      if (ImapFront.drainMoves >= MAX_DRAIN_MOVES) return; // the rest at the next tick
      const nodeId = front.link?.nodeId;
      if (!nodeId || !front.movable) continue;
      const { directory } = front.deps;
      let view = seen.get(directory);
      if (!view) {
        view = { draining: new Set(directory.list().filter((n) => n.member.state === 'draining').map((n) => n.id)), takers: directory.candidates('imap').length };
        seen.set(directory, view);
      }
      if (!view.draining.has(nodeId) || view.takers === 0) continue;
      ImapFront.drainMoves++;
      void front.move('drain').finally(() => ImapFront.drainMoves--);
    }
  }

  /** Drain moves under way in this process. */
  private static drainMoves = 0;
}

/** The command as bytes for the node; literals become non-synchronizing (RFC 7888), the node never asks. */
export function wireBytes(chunks: Chunks): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i]!;
    if (typeof chunk !== 'string') {
      parts.push(chunk);
      continue;
    }
    const literal = chunks[i + 1];
    parts.push(Buffer.from(Buffer.isBuffer(literal) ? `${chunk}{${literal.length}+}\r\n` : `${chunk}\r\n`, 'utf8'));
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** Capabilities the front end cannot carry are not offered (COMPRESS: the gateway reads the stream). */
function filterCaps(caps: string): string {
  return caps
    .split(/\s+/)
    .filter((cap) => cap && !/^COMPRESS=/i.test(cap))
    .join(' ');
}

function quoteString(text: string): string {
  return `"${text.replace(/["\\]/g, '\\$&')}"`;
}

/** A mailbox name as the client sent it, ready for a command line of the gateway's own. */
function wireAstring(value: ImapValue): string {
  const text = isAtom(value) ? value.atom : Buffer.isBuffer(value) ? value.toString('utf8') : typeof value === 'string' ? value : '';
  if (/^[\x20-\x7e]*$/.test(text)) return quoteString(text);
  const bytes = Buffer.from(text, 'utf8');
  return `{${bytes.length}+}\r\n${text}`;
}
