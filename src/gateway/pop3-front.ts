// The gateway's POP3 front end (record and replay, as smtp-front.ts does for SMTP; DESIGN.md
// "Gateway"). The gateway speaks AUTHORIZATION itself — greeting, CAPA, STLS (TLS ends here),
// USER/PASS and AUTH PLAIN, checked against the store — and carries the TRANSACTION state on a
// node. It records what another node needs to take the session over: the user, the maildrop
// view at login (the UIDL listing: RFC 1939 8, messages that arrive later are not part of the
// session), the DELE marks, and the pending command with how many bytes of its response
// reached the client. When the node dies, the session moves to another node: log in again,
// check the view, replay the marks, and finish the pending command — a RETR resumes where the
// client's copy stopped, byte for byte.
//
// Re-authentication uses `XCLIENT LOGIN=` (src/pop3/commands/xclient.ts), honoured only on
// connections from a gateway the node trusts, not the client's password kept in memory:
// the password is checked once here and forgotten, nodes need not see plaintext passwords
// over the private network, a client that logged in over STLS from a non-loopback address
// would be refused a plaintext USER/PASS by the node (its connection from the gateway is not
// TLS), and a failover does not count as a failed login if the password changed meanwhile.
import net from 'node:net';
import tls from 'node:tls';
import { isLoopback } from '../auth/authenticator.js';
import { proxyLine } from '../protocol/proxy-header.js';
import type { Logger } from '../util/logger.js';
import { type Candidate, firstTaker, type FrontDeps, LineLink, LinkLost, NodeRefused, openNodeSocket, withFailover } from './node-link.js';
import { isSaslMechanism, SASL_MECHANISMS, SaslError, saslExchange } from '../protocol/sasl.js';
import { dataEnd, tailAfter, unstuffLine } from '../protocol/dot-stuffing.js';
import { SocketReader } from '../protocol/socket-reader.js';
import { encodeXtext } from '../protocol/xtext.js';
import { roomOrClose } from '../net/room.js';

/** Nodes a session may move to before the client gets a temporary error. */
const MAX_FAILOVERS = 3;
/** How long a failover waits for a maildrop lock held by the session's own stale copy. */
const LOCK_WAIT_MS = 3_000;
const SYS_TEMP_MOVED = '-ERR [SYS/TEMP] the maildrop changed while the session moved to another mail node; please log in again';
const SYS_TEMP_NO_NODE = '-ERR [SYS/TEMP] no mail node available, try again later';

export interface Pop3FrontDeps extends FrontDeps {
  /** Counts sessions moved to another node after theirs was lost (metrics). */
  onFailover?: () => void;
}

/** The node link was lost (or refused to continue): fail over. */
/** The session cannot go on: tell the client this line and close. */
class SessionOver extends Error {}
/** The client went away. */
class ClientGone extends Error {}

/** A plain connection to a node's POP3 listener. */
class NodeLink extends LineLink {
  static async open(nodeId: string, address: string, timeoutMs: number, secret: string | undefined): Promise<NodeLink> {
    return new NodeLink(nodeId, await openNodeSocket(address, timeoutMs, secret));
  }

  async command(line: string): Promise<string> {
    this.send(`${line}\r\n`);
    return this.line();
  }

  /** The lines of a multi-line response after its +OK, unstuffed (RFC 1939 3). */
  async body(): Promise<string[]> {
    const lines: string[] = [];
    for (;;) {
      const line = await this.line();
      if (line === '.') return lines;
      lines.push(unstuffLine(line));
    }
  }
}

/** A command on its way to a node, with what its response has given the client so far. */
interface Pending {
  line: string;
  kind: 'single' | 'listing' | 'message' | 'stat' | 'rset';
  /** Bytes of the response written to the client. */
  forwarded: number;
  /** The response's status line as the client got it (a resumed RETR must start the same). */
  status?: string;
}

export class Pop3Front {
  private client: net.Socket;
  private readonly plain: net.Socket;
  private readonly reader: SocketReader;
  private link: NodeLink | undefined;
  private secure = false;
  private pendingUser: string | undefined;
  /** Set in TRANSACTION: the user the nodes log in with XCLIENT. */
  private user: string | undefined;
  /** The maildrop at login: unique-ids of messages 1..N. */
  private view: string[] | undefined;
  /** The node's maildrop lists more messages than the view (mail that came after login). */
  private extra = false;
  /** DELE marks the node acknowledged (RFC 1939 5), session state a new node must be given. */
  private readonly marks = new Set<number>();
  private badCommands = 0;
  private authFailures = 0;
  private busy = false;
  private readonly log: Logger;

  constructor(
    socket: net.Socket,
    private readonly deps: Pop3FrontDeps,
  ) {
    this.client = socket;
    this.plain = socket;
    // An implicit-TLS listener (POP3S, RFC 8314 3.3) hands over a socket already secured.
    this.secure = socket instanceof tls.TLSSocket;
    this.reader = new SocketReader(socket, { maxLine: deps.config.limits.lineLength, onEnd: () => new ClientGone() });
    this.log = deps.logger.child({ proto: 'pop3', remote: socket.remoteAddress });
    this.idleTimer(socket);
  }

  get nodeId(): string | undefined {
    return this.link?.nodeId;
  }

  /** RFC 1939 3: the autologout timer closes without a response and without UPDATE. */
  private idleTimer(socket: net.Socket): void {
    socket.setTimeout(this.deps.config.limits.idleTimeoutSeconds * 1000, () => this.end());
  }

  async run(): Promise<void> {
    try {
      await this.say(`+OK ${this.deps.config.hostname} Quillmail POP3 server ready`);
      for (;;) {
        const line = await this.reader.line();
        if (line === undefined) {
          if (!(await this.refuse('-ERR line too long'))) break;
          continue;
        }
        if (!(await this.handle(line))) break;
      }
    } catch (error) {
      // An empty SessionOver closes without a word (a response already under way cannot be finished).
      if (error instanceof SessionOver && error.message) await this.say(error.message).catch(() => undefined);
      else if (!(error instanceof ClientGone)) this.log.warn({ err: (error as Error).message }, 'gateway POP3 session failed');
    } finally {
      this.end();
    }
  }

  private end(): void {
    this.link?.close();
    this.link = undefined;
    if (!this.client.destroyed) this.client.end();
    setTimeout(() => this.client.destroy(), 2_000).unref();
  }

  private say(text: string): Promise<void> {
    return this.write(Buffer.from(`${text}\r\n`));
  }

  /** Writes to the client, waiting while its socket buffer is full. */
  private write(bytes: Buffer): Promise<void> {
    const client = this.client;
    if (client.destroyed || !client.writable) return Promise.reject(new ClientGone());
    if (client.write(bytes)) return Promise.resolve();
    return roomOrClose(client).then((open) => {
      if (!open) throw new ClientGone();
    });
  }

  /** A refused command: counts towards limits.badCommands; false ends the session. */
  private async refuse(text: string): Promise<boolean> {
    await this.say(text);
    if (++this.badCommands >= this.deps.config.limits.badCommands) return false;
    return true;
  }

  private get plaintextAllowed(): boolean {
    return this.secure || (this.deps.config.pop3.loopbackPlainAuth && isLoopback(this.plain.remoteAddress));
  }

  /** One client command; false ends the session. */
  private async handle(raw: Buffer): Promise<boolean> {
    // One framing rule on both sides: a command line ends at CRLF and holds no other CR or LF, nor NUL.
    if (raw.includes(0) || raw.includes(0x0d) || raw.includes(0x0a)) return this.refuse('-ERR bare CR, LF or NUL in command');
    const text = raw.toString('utf8');
    const space = text.indexOf(' ');
    const name = (space === -1 ? text : text.slice(0, space)).toUpperCase();
    const rest = space === -1 ? '' : text.slice(space + 1);
    const words = rest.split(' ').filter((word) => word !== '');
    const transaction = this.user !== undefined;
    switch (name) {
      case 'CAPA':
        return this.capa();
      case 'QUIT':
        return this.quit();
      case 'STLS':
      case 'USER':
      case 'PASS':
      case 'AUTH':
        if (transaction) return this.refuse(`-ERR ${name} is not valid in the TRANSACTION state`);
        if (name === 'STLS') return this.startTls();
        if (name === 'USER') return this.userCommand(rest);
        if (name === 'PASS') return this.passCommand(rest);
        return this.authCommand(words);
      case 'STAT':
      case 'LIST':
      case 'UIDL':
      case 'RETR':
      case 'TOP':
      case 'DELE':
      case 'RSET':
      case 'NOOP':
        if (!transaction) return this.refuse(`-ERR ${name} is not valid in the AUTHORIZATION state`);
        return this.transactionCommand(name, words);
      default:
        // A web browser or other stranger on the port gets one line and a hang-up.
        if (this.badCommands === 0 && /^(GET|POST|HEAD|PUT|CONNECT|OPTIONS) \S+ HTTP\/\d/.test(text)) {
          await this.say('-ERR this is a POP3 server');
          return false;
        }
        return this.refuse('-ERR unknown command');
    }
  }

  /** RFC 2449 5 CAPA, as the nodes list it (src/pop3/commands/capa.ts). */
  private async capa(): Promise<boolean> {
    const lines = ['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING'];
    if (this.user === undefined) {
      if (this.deps.tlsContext && !this.secure) lines.push('STLS');
      if (this.plaintextAllowed) lines.push('USER', `SASL ${SASL_MECHANISMS.join(' ')}`);
    }
    lines.push('IMPLEMENTATION Quillmail');
    await this.say(['+OK capability list follows', ...lines, '.'].join('\r\n'));
    return true;
  }

  /** RFC 2595 4: TLS ends at the gateway; whatever was pipelined behind STLS is dropped. */
  private async startTls(): Promise<boolean> {
    if (!this.deps.tlsContext) return this.refuse('-ERR TLS not available');
    if (this.secure) return this.refuse('-ERR TLS is already active');
    const plain = this.client;
    plain.setTimeout(0);
    this.reader.detach();
    plain.write('+OK begin TLS negotiation\r\n');
    const secured = new tls.TLSSocket(plain, { isServer: true, secureContext: this.deps.tlsContext });
    secured.on('error', () => undefined);
    // A client that stalls in the handshake is closed after gateway.tlsHandshakeTimeoutMs.
    const timer = setTimeout(() => secured.destroy(), this.deps.config.gateway.tlsHandshakeTimeoutMs);
    const ok = await new Promise<boolean>((resolve) => {
      secured.once('secure', () => resolve(true));
      secured.once('close', () => resolve(false));
    }).finally(() => clearTimeout(timer));
    if (!ok) throw new ClientGone();
    this.client = secured;
    this.secure = true;
    this.pendingUser = undefined;
    this.reader.reset(secured);
    this.idleTimer(secured);
    return true;
  }

  private async userCommand(rest: string): Promise<boolean> {
    if (!this.plaintextAllowed) return this.authFailed('-ERR [AUTH] plaintext authentication is not allowed without TLS; use STLS first');
    if (rest.trim() === '') return this.refuse('-ERR USER needs a name');
    this.pendingUser = rest.trim();
    await this.say('+OK send PASS');
    return true;
  }

  private async passCommand(rest: string): Promise<boolean> {
    const name = this.pendingUser;
    this.pendingUser = undefined;
    if (name === undefined) return this.refuse('-ERR send USER first');
    if (!this.plaintextAllowed) return this.authFailed('-ERR [AUTH] plaintext authentication is not allowed without TLS; use STLS first');
    return this.login(name, rest);
  }

  /** RFC 5034 AUTH with PLAIN (RFC 4616) and LOGIN, as the nodes offer them (src/protocol/sasl.ts). */
  private async authCommand(words: string[]): Promise<boolean> {
    const [mechanism, initial] = words;
    if (mechanism === undefined) {
      await this.say(['+OK', ...(this.plaintextAllowed ? SASL_MECHANISMS : []), '.'].join('\r\n'));
      return true;
    }
    if (!isSaslMechanism(mechanism)) return this.refuse(`-ERR unsupported mechanism ${mechanism}`);
    if (!this.plaintextAllowed) return this.authFailed('-ERR [AUTH] plaintext authentication is not allowed without TLS; use STLS first');
    let credentials;
    try {
      credentials = await saslExchange(mechanism, initial, async (challenge) => {
        await this.say(`+ ${challenge}`);
        const line = await this.reader.line();
        if (line === undefined) throw new SaslError('malformed', 'line too long');
        return line.toString('utf8');
      });
    } catch (error) {
      if (!(error instanceof SaslError)) throw error;
      if (error.reason === 'malformed-base64') return this.refuse('-ERR malformed base64');
      if (error.reason === 'bad-authzid') return this.authFailed('-ERR [AUTH] logging in as another user is not allowed');
      return this.authFailed(`-ERR [AUTH] ${error.message}`);
    }
    return this.login(credentials.authcid, credentials.password);
  }

  private async authFailed(text: string): Promise<boolean> {
    await this.say(text);
    return ++this.authFailures < this.deps.config.limits.authFailures;
  }

  /** The password is checked here; the node is told the user with XCLIENT and opens the maildrop. */
  private async login(address: string, password: string): Promise<boolean> {
    const ip = (this.plain.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.)/, '');
    const result = await this.deps.auth.authenticate(address, password, ip);
    if (!result.ok) {
      this.log.info({ user: address, reason: result.reason }, 'gateway POP3 login failed');
      return this.authFailed(result.reason === 'locked' ? '-ERR [AUTH] too many failed logins from your address; try again later' : '-ERR [AUTH] authentication failed');
    }
    const user = result.user.address;
    let taken;
    try {
      taken = await firstTaker(this.deps.directory.candidates('pop3', user), this.deps.directory, {
        open: (node) => this.openLink(node),
        setUp: async (link) => {
          // The user's previous session may still be letting go of the maildrop lock (its QUIT
          // answered, its cleanup not yet run): a short wait before [IN-USE] reaches the client.
          let reply = await link.command(`XCLIENT LOGIN=${encodeXtext(user)}`);
          for (let wait = 0; reply.includes('[IN-USE]') && wait < 10; wait++) {
            await new Promise((resolve) => setTimeout(resolve, 100));
            reply = await link.command(`XCLIENT LOGIN=${encodeXtext(user)}`);
          }
          return { reply, view: reply.startsWith('+OK') ? (await this.uidl(link)).map(([, uid]) => uid) : undefined };
        },
        ends: (error) => !(error instanceof LinkLost),
      });
    } catch (error) {
      if (!(error instanceof LinkLost)) throw error;
      await this.say(SYS_TEMP_NO_NODE);
      return true;
    }
    const { link, node, set: { reply, view } } = taken;
    if (!view) {
      // The node's own refusal ([IN-USE], a user gone): the client hears it.
      link.send('QUIT\r\n');
      link.close();
      await this.say(reply);
      return true;
    }
    this.view = view;
    this.extra = false;
    this.marks.clear();
    this.adopt(link);
    this.deps.directory.noteOpened(node.id, 'pop3');
    this.user = user;
    this.log.info({ user, node: node.id, messages: view.length }, 'gateway POP3 login');
    await this.say(reply);
    return true;
  }

  /** A link to the node, past its greeting, the client named with the PROXY header. */
  private async openLink(node: Candidate): Promise<NodeLink> {
    const link = await NodeLink.open(node.id, node.address, this.deps.config.gateway.connectTimeoutMs, this.deps.config.cluster.secret);
    try {
      link.send(proxyLine(this.plain));
      await greeting(link);
      return link;
    } catch (error) {
      link.close();
      throw error;
    }
  }

  /** The node's unique-id listing: [number, unique-id] of messages not marked. */
  private async uidl(link: NodeLink): Promise<[number, string][]> {
    const status = await link.command('UIDL');
    if (!status.startsWith('+OK')) throw new NodeRefused(`UIDL refused: ${status}`);
    return (await link.body()).map((line) => {
      const [number = '', uid = ''] = line.split(' ');
      return [Number(number), uid];
    });
  }

  /** A link carries the session from now on; its loss while idle is noticed at the next command. */
  private adopt(link: NodeLink): void {
    this.link = link;
    link.socket.once('close', () => {
      if (this.link === link && !this.busy) this.link = undefined;
    });
  }

  /**
   * A link to a node carrying the session: the current one, or a new one on another node,
   * logged in, checked against the view, with the DELE marks replayed.
   */
  private async ensureLink(): Promise<NodeLink> {
    if (this.link) return this.link;
    const { link, node } = await firstTaker(this.deps.directory.candidates('pop3', this.user), this.deps.directory, {
      open: (node) => this.openLink(node),
      setUp: (link) => this.takeOver(link),
      ends: (error) => !(error instanceof LinkLost),
    });
    this.adopt(link);
    this.deps.directory.noteOpened(node.id, 'pop3');
    this.log.info({ user: this.user, node: node.id, marks: this.marks.size }, 'gateway: POP3 session moved to another node');
    return link;
  }

  /** Logs in on the new node and brings it to the session's state. */
  private async takeOver(link: NodeLink): Promise<void> {
    await this.xclient(link);
    const listed = await this.uidl(link);
    const view = this.view ?? [];
    // Messages 1..N must be the same ones in the same order; mail that came later may follow.
    for (let i = 0; i < view.length; i++) {
      const entry = listed[i];
      if (!entry || entry[0] !== i + 1 || entry[1] !== view[i]) {
        link.send('QUIT\r\n');
        throw new SessionOver(SYS_TEMP_MOVED);
      }
    }
    this.extra = listed.length > view.length;
    for (const number of [...this.marks].sort((a, b) => a - b)) {
      const reply = await link.command(`DELE ${number}`);
      if (!reply.startsWith('+OK')) throw new SessionOver(SYS_TEMP_MOVED);
    }
  }

  /**
   * XCLIENT LOGIN, waiting a little when the maildrop is locked: the lock is per node
   * process (src/pop3/maildrop.ts), so only a copy of this very session on the same node (a
   * link the gateway gave up, whose close the node has not yet noticed) can hold it.
   */
  private async xclient(link: NodeLink): Promise<void> {
    const until = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      const reply = await link.command(`XCLIENT LOGIN=${encodeXtext(this.user ?? '')}`);
      if (reply.startsWith('+OK')) return;
      if (!reply.includes('[IN-USE]') || Date.now() > until) {
        this.log.warn({ user: this.user, reply }, 'gateway: POP3 session refused by the new node');
        throw new SessionOver(reply.includes('[IN-USE]') ? '-ERR [SYS/TEMP] maildrop busy on the new mail node, try again later' : SYS_TEMP_MOVED);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private lostNode(cause: unknown): void {
    const lost = this.link?.nodeId;
    if (lost) this.deps.directory.markFailed(lost, cause);
    this.link?.close();
    this.link = undefined;
    this.deps.onFailover?.();
    this.log.warn({ node: lost, user: this.user }, 'gateway: POP3 node lost mid-session; moving the session');
  }

  /** Validates a TRANSACTION command's arguments here, so nodes only see well-formed ones. */
  private async transactionCommand(name: string, words: string[]): Promise<boolean> {
    const count = this.view?.length ?? 0;
    const number = /^\d{1,10}$/;
    const needsMessage = name === 'RETR' || name === 'DELE' || name === 'TOP';
    const mayHaveMessage = name === 'LIST' || name === 'UIDL';
    if (needsMessage || (mayHaveMessage && words.length > 0)) {
      if (words[0] === undefined || !number.test(words[0])) return this.refuse('-ERR message number required');
      if (name === 'TOP' && (words[1] === undefined || !number.test(words[1]))) return this.refuse('-ERR TOP needs a message number and a line count');
      // Messages that arrived after login are not part of the session (RFC 1939 8).
      const n = Number(words[0]);
      if (n < 1 || n > count) {
        await this.say('-ERR no such message');
        return true;
      }
    }
    const line = [name, ...words.slice(0, name === 'TOP' ? 2 : needsMessage || mayHaveMessage ? 1 : 0)].join(' ');
    let kind: Pending['kind'] = 'single';
    if (name === 'RETR' || name === 'TOP') kind = 'message';
    else if ((name === 'LIST' || name === 'UIDL') && words.length === 0) kind = 'listing';
    else if (name === 'STAT') kind = 'stat';
    else if (name === 'RSET') kind = 'rset';
    const pending: Pending = { line, kind, forwarded: 0 };
    return this.onNode(SYS_TEMP_NO_NODE, async () => {
      const link = await this.ensureLink();
      this.busy = true;
      const status = await this.carry(link, pending);
      if (name === 'DELE' && status.startsWith('+OK')) this.marks.add(Number(words[0]));
      if (name === 'RSET' && status.startsWith('+OK')) this.marks.clear();
      return true;
    });
  }

  /** A step on the node link; a lost link moves the session to another node, up to MAX_FAILOVERS times, then the client hears `lastWord`. */
  private onNode<T>(lastWord: string, step: () => Promise<T>): Promise<T> {
    return withFailover({
      maxMoves: MAX_FAILOVERS,
      step: () => step().finally(() => (this.busy = false)),
      moved: (cause) => this.lostNode(cause),
      giveUp: (cause) => {
        if (!(cause instanceof LinkLost)) throw cause;
        throw new SessionOver(lastWord);
      },
    });
  }

  /** Sends the pending command and relays its response; returns the status line. */
  private async carry(link: NodeLink, pending: Pending): Promise<string> {
    const { kind } = pending;
    if (kind === 'message') return this.relayMessage(link, pending);
    // Without mail past the view the node's answers are the session's own.
    if (kind === 'single' || (!this.extra && kind !== 'listing')) {
      const status = await link.command(pending.line);
      await this.say(status);
      return status;
    }
    if (kind === 'listing') {
      const status = await link.command(pending.line);
      if (!status.startsWith('+OK')) {
        await this.say(status);
        return status;
      }
      const count = this.view?.length ?? 0;
      const lines = (await link.body()).filter((entry) => Number(entry.split(' ')[0]) <= count);
      let head = status;
      if (pending.line === 'LIST' && this.extra) head = `+OK ${lines.length} messages (${lines.reduce((n, l) => n + Number(l.split(' ')[1]), 0)} octets)`;
      await this.say([head, ...lines, '.'].join('\r\n'));
      return head;
    }
    // STAT and RSET count the session's messages only: from a listing cut to the view.
    if (kind === 'rset') {
      const status = await link.command('RSET');
      if (!status.startsWith('+OK')) {
        await this.say(status);
        return status;
      }
    }
    const status = await link.command('LIST');
    if (!status.startsWith('+OK')) throw new NodeRefused(`LIST refused: ${status}`);
    const count = this.view?.length ?? 0;
    const sizes = (await link.body()).filter((entry) => Number(entry.split(' ')[0]) <= count).map((entry) => Number(entry.split(' ')[1]));
    const octets = sizes.reduce((a, b) => a + b, 0);
    const head = kind === 'stat' ? `+OK ${sizes.length} ${octets}` : `+OK maildrop has ${sizes.length} messages (${octets} octets)`;
    await this.say(head);
    return head;
  }

  /**
   * RETR and TOP, streamed. After a failover the response is produced again and the bytes the
   * client already has are skipped, so it gets one byte-exact, complete response.
   */
  private async relayMessage(link: NodeLink, pending: Pending): Promise<string> {
    let position = 0;
    if (pending.forwarded > 0) this.log.info({ command: pending.line, skip: pending.forwarded }, 'gateway: resuming a POP3 response on another node');
    const pass = async (bytes: Buffer) => {
      const skip = Math.max(0, pending.forwarded - position);
      position += bytes.length;
      if (skip < bytes.length) {
        pending.forwarded = position;
        await this.write(skip > 0 ? bytes.subarray(skip) : bytes);
      }
    };
    const status = await link.command(pending.line);
    if (pending.status !== undefined && pending.status !== status) {
      // The message is not the same any more: the client cannot be given a whole response.
      this.log.warn({ before: pending.status, now: status }, 'gateway: resumed POP3 response differs');
      throw new SessionOver('');
    }
    pending.status = status;
    await pass(Buffer.from(`${status}\r\n`));
    if (!status.startsWith('+OK')) return status;
    // The status line's CRLF counts for a terminator right after it (an empty body).
    let tail: Buffer = Buffer.from('\r\n');
    for (;;) {
      const chunk = await link.reader.chunk();
      const end = dataEnd(tail, chunk);
      if (end >= 0) {
        link.reader.unread(chunk.subarray(end));
        await pass(chunk.subarray(0, end));
        return status;
      }
      await pass(chunk);
      tail = tailAfter(tail, chunk);
    }
  }

  /**
   * RFC 1939 6 QUIT. Without marks there is nothing to commit and no node is needed. With
   * marks, a node lost before answering may or may not have committed them (the store removes
   * them in one transaction): the session moves to another node, which deletes whichever marked
   * messages are still there (none, if the commit happened) and answers the QUIT. Either way
   * each marked message is removed exactly once and the client hears +OK.
   */
  private async quit(): Promise<boolean> {
    if (this.user === undefined || this.marks.size === 0) {
      let reply = this.user === undefined ? '+OK bye' : `+OK bye, ${this.view?.length ?? 0} messages left`;
      if (this.link) reply = await this.link.command('QUIT').catch(() => reply);
      await this.say(reply);
      return false;
    }
    return this.onNode('-ERR [SYS/TEMP] no mail node available; some deleted messages not removed', async () => {
      if (!this.link) await this.finishElsewhere();
      this.busy = true;
      const reply = await this.link!.command('QUIT');
      await this.say(reply);
      return false;
    });
  }

  /** For QUIT: a new node with the marked messages that are still there marked again. */
  private async finishElsewhere(): Promise<void> {
    const view = this.view ?? [];
    const { link, node, set: again } = await firstTaker(this.deps.directory.candidates('pop3', this.user), this.deps.directory, {
      open: (node) => this.openLink(node),
      setUp: async (link) => {
        await this.xclient(link);
        const numbers = new Map((await this.uidl(link)).map(([number, uid]) => [uid, number]));
        let again = 0;
        for (const mark of this.marks) {
          const number = numbers.get(view[mark - 1] ?? '');
          if (number === undefined) continue; // gone: the commit happened (or another client removed it)
          const reply = await link.command(`DELE ${number}`);
          if (!reply.startsWith('+OK')) throw new SessionOver('-ERR [SYS/TEMP] some deleted messages not removed');
          again++;
        }
        return again;
      },
      ends: (error) => !(error instanceof LinkLost),
    });
    this.log.info({ user: this.user, node: node.id, marks: this.marks.size, again }, 'gateway: POP3 QUIT finished on another node');
    this.adopt(link);
  }
}

/** The node's greeting; anything but +OK (over its connection limit, stopping) is its refusal, not its death. */
async function greeting(link: NodeLink): Promise<void> {
  const line = await link.line();
  if (!line.startsWith('+OK')) throw new NodeRefused(`node greeting: ${line}`);
}
