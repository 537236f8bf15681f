// The gateway's SMTP front end (Bluetail Mail Robustifier's record and replay; DESIGN.md
// "Gateway"). The gateway speaks the start of the dialogue itself — greeting, EHLO, STARTTLS
// (TLS ends here) and AUTH (checked here) — and hands the transaction to a node over a plain
// connection opened with XCLIENT, which tells the node the client's address and login. It
// records what a node would need to rebuild the session (EHLO, login, MAIL, accepted RCPTs,
// the DATA sent so far) and when the node dies, replays it on another node and carries on:
// the client sees a pause, never an error. Every transaction carries an id in a MAIL
// parameter, so a message whose node died after storing it is not stored twice.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { isLoopback } from '../auth/authenticator.js';
import type { Logger } from '../util/logger.js';
import { processMetrics } from '../metrics/metrics.js';
import { firstTaker, type FrontDeps, LineLink, LinkLost, NodeRefused, openNodeSocket, withFailover } from './node-link.js';
import { dataEnd, tailAfter } from '../protocol/dot-stuffing.js';
import { PROXY_UNKNOWN } from '../protocol/proxy-header.js';
import { replyLine, SmtpCode, SmtpReplies } from '../protocol/smtp-replies.js';
import { SocketReader } from '../protocol/socket-reader.js';
import { encodeXtext } from '../protocol/xtext.js';

/** The MAIL parameter nodes read the transaction id from (src/smtp/listener.ts). */
const TXN_PARAM = 'XQUILL-TXN';
/** A client's own transaction id, anywhere in its MAIL line. */
const TXN_PARAM_RE = new RegExp(`\\s${TXN_PARAM}=`, 'i');
/** What a command line may not hold once its CRLF is taken off. */
const BARE_LINE_BREAK = /[\r\n\0]/;
/** Nodes a session may fail over to before the client gets a temporary error. */
const MAX_REPLAYS = 3;

export interface SmtpFrontDeps extends FrontDeps {
  protocol: 'smtp' | 'submission';
  gatewayId: string;
}


interface Reply {
  code: number;
  text: string;
}

/** A plain connection to one node's SMTP listener, read in replies. */
class NodeLink extends LineLink {
  static async open(nodeId: string, address: string, timeoutMs: number, secret: string | undefined): Promise<NodeLink> {
    return new NodeLink(nodeId, await openNodeSocket(address, timeoutMs, secret));
  }

  /** One reply, multi-line joined (RFC 5321 4.2.1). */
  async reply(): Promise<Reply> {
    const lines: string[] = [];
    for (;;) {
      const line = await this.reader.text();
      if (line === undefined || !/^\d{3}[ -]/.test(line)) throw new LinkLost(`bad reply from node: ${line}`);
      lines.push(line);
      if (line[3] !== ' ') continue;
      const code = Number(line.slice(0, 3));
      // RFC 5321 3.8: 421 means the node is closing the channel (shutting down, over its
      // connection limit, or said so unasked while idle): the session moves to another node
      // rather than the client hearing it. The node answered: it stays in rotation.
      if (code === SmtpCode.ServiceClosing) {
        this.socket.destroy();
        throw new NodeRefused(`node closing the channel: ${line}`);
      }
      return { code, text: lines.join('\r\n') };
    }
  }

  async command(line: string): Promise<Reply> {
    this.send(`${line}\r\n`);
    return this.reply();
  }
}

/** What a node needs to take over the session. */
interface Recorded {
  ehlo?: string;
  user?: string;
  mail?: string;
  rcpts: string[];
  /** DATA bytes sent so far (terminator included once `dataDone`). */
  data?: Buffer[];
  /** The node said 354: the session is inside DATA. */
  inData: boolean;
  dataDone: boolean;
}

/** Bytes a reader holds before it pauses its socket. */
const READ_HIGH_WATER = 256 * 1024;

export class SmtpFront {
  private client: net.Socket;
  private readonly reader: SocketReader;
  private link: NodeLink | undefined;
  private secure = false;
  private readonly recorded: Recorded = { rcpts: [], inData: false, dataDone: false };
  private readonly log: Logger;
  private badCommands = 0;
  private authFailures = 0;
  /** A command or DATA is in flight on the node link: its loss means a replay, not a quiet reconnect. */
  private busy = false;
  /** Commands the client pipelined behind MAIL, already sent to the node, replies not yet read. */
  private prefetched: string[] = [];
  /** A node link was open before: the next one re-establishes the session (a replay). */
  private linked = false;
  /** Transaction ids: random per session, counted within it (unique without a random draw each). */
  private readonly txnPrefix = randomBytes(9).toString('base64url');
  private txnCount = 0;
  /** Replies held while more replies to commands the client pipelined are due (see say()). */
  private batch: string[] = [];

  constructor(
    socket: net.Socket,
    private readonly deps: SmtpFrontDeps,
  ) {
    this.client = socket;
    // On an implicit-TLS listener (465, RFC 8314 3.3) the socket is encrypted from the start.
    this.secure = socket instanceof tls.TLSSocket;
    this.reader = new SocketReader(socket, { maxLine: deps.config.limits.lineLength, highWater: READ_HIGH_WATER, onEnd: () => new LinkLost('connection closed') });
    this.log = deps.logger.child({ proto: deps.protocol, remote: socket.remoteAddress });
    socket.setTimeout(deps.config.limits.idleTimeoutSeconds * 1000, () => this.say(replyLine(SmtpReplies.idleTooLong)).then(() => this.end()));
  }

  /** The node the session is on now, if any (tests and `quill status` use it). */
  get nodeId(): string | undefined {
    return this.link?.nodeId;
  }

  async run(): Promise<void> {
    try {
      // RFC 5321 4.3.1: the client waits for the greeting; one that talks first is a spammer's
      // tool more often than not (RFC 2505 screening).
      const delay = this.deps.config.gateway.smtpGreetDelayMs;
      if (delay > 0) {
        await new Promise((resolve) => setTimeout(resolve, delay));
        if (this.reader.pending) {
          this.log.warn('gateway: early talker refused');
          await this.say(replyLine(SmtpReplies.talkingEarly(this.deps.config.hostname)));
          return;
        }
      }
      await this.say(`${SmtpCode.Ready} ${this.deps.config.hostname} ESMTP Quillmail`);
      for (;;) {
        const line = await this.reader.text();
        if (line === undefined) {
          await this.say(replyLine(SmtpReplies.lineTooLong));
          continue;
        }
        // One framing rule on both sides (RFC 5321 2.3.8, 4.1.1): a command line ends at CRLF
        // and holds no other CR or LF, nor NUL. Such a line is refused here, never forwarded: the
        // node would read it as two commands, and the replies would be out of step.
        if (BARE_LINE_BREAK.test(line)) {
          if (!(await this.refuse(replyLine(SmtpReplies.bareLineBreak)))) break;
          continue;
        }
        if (!(await this.handle(line))) break;
      }
    } catch (error) {
      if (error instanceof ClientGone) await this.say(error.message);
      else if (!(error instanceof LinkLost)) this.log.warn({ err: (error as Error).message }, 'gateway SMTP session failed');
    } finally {
      this.end();
    }
  }

  private end(): void {
    this.link?.close();
    this.link = undefined;
    if (!this.client.destroyed) {
      // Replies still held go out before the end.
      if (this.batch.length > 0) this.client.write(`${this.batch.splice(0).join('\r\n')}\r\n`);
      this.client.end();
    }
    setTimeout(() => this.client.destroy(), 2_000).unref();
  }

  /**
   * A reply to the client. RFC 2920: while replies to more of the commands the client pipelined
   * (sent to the node along with MAIL) are due, it is held, and the group leaves in one write
   * with the last of them, as a node answering the client itself would send it.
   */
  private say(text: string): Promise<void> {
    if (this.prefetched.length > 0) {
      this.batch.push(text);
      return Promise.resolve();
    }
    if (this.batch.length > 0) text = `${this.batch.splice(0).join('\r\n')}\r\n${text}`;
    return new Promise((resolve) => {
      if (this.client.destroyed) return resolve();
      this.client.write(`${text}\r\n`, () => resolve());
    });
  }

  /** One client command; false ends the session. */
  private async handle(line: string): Promise<boolean> {
    const verb = (/^\S*/.exec(line)?.[0] ?? '').toUpperCase();
    switch (verb) {
      case 'EHLO':
      case 'HELO':
        return this.hello(line, verb);
      case 'STARTTLS':
        return this.startTls();
      case 'AUTH':
        return this.authenticate(line);
      case 'NOOP':
        await this.say(replyLine(SmtpReplies.ok));
        return true;
      case 'QUIT':
        await this.say(replyLine(SmtpReplies.closing(this.deps.config.hostname)));
        this.link?.send('QUIT\r\n');
        return false;
      case 'RSET':
        this.clearTransaction();
        if (this.link) await this.exchange('RSET');
        await this.say(replyLine(SmtpReplies.flushed));
        return true;
      case 'MAIL':
        return this.mail(line);
      case 'RCPT':
        return this.rcpt(line);
      case 'DATA':
        return this.data();
      case 'BDAT':
        return this.refuse(replyLine(SmtpReplies.bdatNotSupported));
      case 'VRFY':
      case 'EXPN':
      case 'HELP':
        // Known verbs the node answers. Nothing else passes: XCLIENT, XFORWARD and the like are
        // the gateway's own words to a node, never a client's.
        if (!this.recorded.ehlo) return this.refuse(replyLine(SmtpReplies.ehloFirst));
        await this.say((await this.exchange(line)).text);
        return true;
      default:
        return this.refuse(replyLine(SmtpReplies.unrecognized));
    }
  }

  private async refuse(text: string): Promise<boolean> {
    await this.say(text);
    if (++this.badCommands >= this.deps.config.limits.badCommands) {
      await this.say(replyLine(SmtpReplies.tooManyBadCommands));
      return false;
    }
    return true;
  }

  private plainAuthAllowed(): boolean {
    const { config } = this.deps;
    return this.secure || (config.smtp.loopbackPlainAuth && isLoopback(this.client.remoteAddress));
  }

  private async hello(line: string, verb: string): Promise<boolean> {
    const name = line.slice(verb.length).trim();
    if (!name || /\s/.test(name)) return this.refuse(replyLine(SmtpReplies.helloSyntax(verb)));
    this.clearTransaction();
    this.recorded.ehlo = `${verb} ${name}`;
    // The node's session restarts with the new greeting at the next command that needs it.
    this.dropLink();
    if (verb === 'HELO') {
      await this.say(`${SmtpCode.Ok} ${this.deps.config.hostname}`);
      return true;
    }
    const { config, protocol } = this.deps;
    const features = ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', `SIZE ${config.limits.messageSize}`];
    if (this.deps.tlsContext && !this.secure) features.push('STARTTLS');
    if (protocol === 'submission' && this.plainAuthAllowed() && !this.recorded.user) features.push('AUTH PLAIN LOGIN');
    const lines = [`${config.hostname} Nice to meet you, ${name}`, ...features];
    await this.say(lines.map((text, i) => `250${i === lines.length - 1 ? ' ' : '-'}${text}`).join('\r\n'));
    return true;
  }

  /** RFC 3207: TLS ends at the gateway; the session starts over inside it. */
  private async startTls(): Promise<boolean> {
    if (!this.deps.tlsContext || this.secure) return this.refuse(replyLine(SmtpReplies.tlsNotAvailable));
    await this.say(replyLine(SmtpReplies.readyForTls));
    const plain = this.client;
    plain.setTimeout(0);
    this.reader.detach();
    const secured = new tls.TLSSocket(plain, { isServer: true, secureContext: this.deps.tlsContext });
    // A client that stalls in the handshake is closed after gateway.tlsHandshakeTimeoutMs.
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error('handshake timed out')), this.deps.config.gateway.tlsHandshakeTimeoutMs);
      secured.once('secure', () => resolve());
      secured.once('error', reject);
      secured.once('close', () => reject(new Error('connection closed')));
    })
      .catch((error: Error) => {
        secured.on('error', () => undefined);
        secured.destroy();
        throw new LinkLost(`TLS handshake failed: ${error.message}`);
      })
      .finally(() => clearTimeout(timer));
    secured.on('error', () => undefined);
    this.client = secured;
    this.secure = true;
    this.reader.reset(secured);
    secured.setTimeout(this.deps.config.limits.idleTimeoutSeconds * 1000, () => this.say(replyLine(SmtpReplies.idleTooLong)).then(() => this.end()));
    this.recorded.ehlo = undefined;
    this.recorded.user = undefined;
    this.clearTransaction();
    this.dropLink();
    return true;
  }

  /** RFC 4954 AUTH PLAIN and LOGIN, checked here; the node learns the login through XCLIENT. */
  private async authenticate(line: string): Promise<boolean> {
    if (this.deps.protocol !== 'submission') return this.refuse(replyLine(SmtpReplies.authNotHere));
    if (!this.recorded.ehlo) return this.refuse(replyLine(SmtpReplies.ehloFirst));
    if (this.recorded.user) return this.refuse(replyLine(SmtpReplies.alreadyAuthenticated));
    if (!this.plainAuthAllowed()) return this.refuse(replyLine(SmtpReplies.startTlsFirst));
    const [, mechanism = '', initial] = line.split(' ');
    let username: string;
    let password: string;
    const ask = async (prompt: string): Promise<string | undefined> => {
      await this.say(`${SmtpCode.AuthContinue} ${prompt}`);
      const answer = await this.reader.text();
      return answer === undefined || answer === '*' || BARE_LINE_BREAK.test(answer) ? undefined : answer;
    };
    if (mechanism.toUpperCase() === 'PLAIN') {
      const response = initial && initial !== '=' ? initial : await ask('');
      if (response === undefined) return this.refuse(replyLine(SmtpReplies.authCancelled));
      const [authzid = '', authcid = '', secret = ''] = Buffer.from(response, 'base64').toString('utf8').split('\0');
      if (authzid && authzid.toLowerCase() !== authcid.toLowerCase()) return this.refuse(replyLine(SmtpReplies.authInvalid));
      username = authcid;
      password = secret;
    } else if (mechanism.toUpperCase() === 'LOGIN') {
      const user = initial ?? (await ask(Buffer.from('Username:').toString('base64')));
      if (user === undefined) return this.refuse(replyLine(SmtpReplies.authCancelled));
      const pass = await ask(Buffer.from('Password:').toString('base64'));
      if (pass === undefined) return this.refuse(replyLine(SmtpReplies.authCancelled));
      username = Buffer.from(user, 'base64').toString('utf8');
      password = Buffer.from(pass, 'base64').toString('utf8');
    } else {
      return this.refuse(replyLine(SmtpReplies.unknownMechanism));
    }
    const result = await this.deps.auth.authenticate(username, password, this.client.remoteAddress ?? '');
    if (result.ok) {
      this.recorded.user = result.user.address;
      this.dropLink();
      this.log.info({ user: result.user.address }, 'authenticated');
      await this.say(replyLine(SmtpReplies.authSucceeded));
      return true;
    }
    if (result.reason === 'locked') {
      await this.say(replyLine(SmtpReplies.authLocked));
      return true;
    }
    if (++this.authFailures >= this.deps.config.limits.authFailures) {
      await this.say(replyLine(SmtpReplies.tooManyAuthFailures));
      return false;
    }
    await this.say(replyLine(SmtpReplies.authInvalid));
    return true;
  }

  private clearTransaction(): void {
    this.recorded.mail = undefined;
    this.recorded.rcpts = [];
    this.recorded.data = undefined;
    this.recorded.inData = false;
    this.recorded.dataDone = false;
  }

  private dropLink(): void {
    this.prefetched = [];
    this.link?.send('QUIT\r\n');
    this.link?.close();
    this.link = undefined;
  }

  private async mail(line: string): Promise<boolean> {
    if (!this.recorded.ehlo) return this.refuse(replyLine(SmtpReplies.ehloFirst));
    // The transaction id is the gateway's to give (RFC 5321 4.1.1.11: 555 for a parameter not taken).
    if (TXN_PARAM_RE.test(line)) return this.refuse(replyLine(SmtpReplies.parameterNotRecognized(TXN_PARAM)));
    // Each transaction gets its own id: a replay of it on another node is stored once.
    const tagged = `${line} ${TXN_PARAM}=${this.deps.gatewayId}.${this.txnPrefix}${(++this.txnCount).toString(36)}`;
    this.clearTransaction();
    // RFC 2920: RCPTs and DATA the client sent along with MAIL go to the node in the same write
    // (one round trip instead of one per command); their replies are read when their turn comes.
    const along: string[] = [];
    for (const next of this.reader.peekLines(100)) {
      if (BARE_LINE_BREAK.test(next)) break; // refused when its turn comes
      if (/^RCPT /i.test(next)) along.push(next);
      else {
        if (/^DATA$/i.test(next)) along.push(next);
        break;
      }
    }
    const reply = await this.exchange(tagged, along);
    if (reply.code >= 200 && reply.code < 300) this.recorded.mail = tagged;
    await this.say(reply.text);
    return true;
  }

  private async rcpt(line: string): Promise<boolean> {
    if (!this.recorded.ehlo) return this.refuse(replyLine(SmtpReplies.ehloFirst));
    const reply = await this.exchange(line);
    if (reply.code >= 200 && reply.code < 300) this.recorded.rcpts.push(line);
    await this.say(reply.text);
    return true;
  }

  /** DATA: streamed to the node as it comes and kept until the node answers the end. */
  private async data(): Promise<boolean> {
    if (!this.recorded.mail || this.recorded.rcpts.length === 0) {
      await this.say((await this.exchange('DATA')).text);
      return true;
    }
    const start = await this.exchange('DATA');
    await this.say(start.text);
    if (start.code !== SmtpCode.StartData) return true;
    this.recorded.data = [];
    this.recorded.inData = true;
    this.busy = true;
    // The CRLF that ended the DATA line counts for a terminator right at the start.
    let tail: Buffer = Buffer.from('\r\n');
    let size = 0;
    const limit = this.deps.config.limits.messageSize + 64 * 1024;
    while (!this.recorded.dataDone) {
      const chunk = await this.reader.chunk();
      const upto = dataEnd(tail, chunk);
      let take = chunk;
      if (upto >= 0) {
        take = chunk.subarray(0, upto);
        this.reader.unread(chunk.subarray(upto));
        this.recorded.dataDone = true;
      }
      tail = tailAfter(tail, chunk);
      size += take.length;
      if (size > limit) {
        // The node refuses it too (SIZE); the gateway stops keeping a copy past the limit.
        this.recorded.data = undefined;
      } else {
        // The reader hands out each chunk once and never writes into it: kept as it is.
        this.recorded.data?.push(take);
      }
      await this.forward(take);
    }
    const reply = await this.awaitReply();
    this.busy = false;
    await this.say(reply.text);
    this.clearTransaction();
    return true;
  }

  /** Sends a command to the node, replaying the session on another node if this one is lost. */
  private exchange(line: string, along: string[] = []): Promise<Reply> {
    return this.onNode(async () => {
      try {
        const link = await this.ensureLink();
        this.busy = true;
        if (this.prefetched.length > 0) {
          // Sent already with an earlier MAIL: only its reply is due.
          if (this.prefetched.shift() !== line) throw new LinkLost('pipelined commands out of step');
          return await link.reply();
        }
        link.send(`${[line, ...along].join('\r\n')}\r\n`);
        this.prefetched.push(...along);
        return await link.reply();
      } catch (error) {
        this.prefetched = [];
        throw error;
      } finally {
        this.busy = false;
      }
    });
  }

  /** Passes DATA bytes on; a lost node gets the session and the bytes so far replayed elsewhere. */
  private forward(bytes: Buffer): Promise<void> {
    return this.onNode(async (attempt) => {
      const link = await this.ensureLink();
      // After a replay, the bytes so far (these included) were already sent.
      if (attempt === 0) link.send(bytes);
      // A node slower than its client: the client's next bytes wait in its own socket (the
      // reader holds one chunk at a time), not in the gateway's memory.
      await link.drained();
    });
  }

  private awaitReply(): Promise<Reply> {
    return this.onNode(async () => (await this.ensureLink()).reply());
  }

  /** A step on the node link; a lost link replays the session on another node (no pause: the client waits). */
  private onNode<T>(step: (attempt: number) => Promise<T>): Promise<T> {
    return withFailover({ maxMoves: MAX_REPLAYS, step, moved: (cause) => this.failover(cause), giveUp: (cause) => this.lost(cause), pause: async () => undefined });
  }

  private failover(cause: unknown): void {
    const lost = this.link?.nodeId;
    if (lost) this.deps.directory.markFailed(lost, cause);
    this.link?.close();
    this.link = undefined;
    this.log.warn({ node: lost }, 'gateway: node lost mid-session; replaying the session on another node');
  }

  private lost(error: unknown): never {
    this.log.warn({ err: (error as Error).message }, 'gateway: no node could take the session');
    this.link?.close();
    this.link = undefined;
    throw new ClientGone(replyLine(SmtpReplies.nodeUnavailable));
  }

  /** The node link, opened and brought up to the recorded state when there is none. */
  private async ensureLink(): Promise<NodeLink> {
    if (this.link) return this.link;
    // A submission session's user has a home node; mail from other servers has no user.
    const { link, node } = await firstTaker(this.deps.directory.candidates(this.deps.protocol, this.recorded.user), this.deps.directory, {
      open: (node) => NodeLink.open(node.id, node.address, this.deps.config.gateway.connectTimeoutMs, this.deps.config.cluster.secret),
      setUp: (link) => this.bringUp(link),
      ends: (error) => error instanceof RefusedByNode,
    });
    this.link = link;
    this.prefetched = [];
    // A node that closes an idle link (its own timeout, a restart) is simply left: the next
    // command opens a new one and replays. Replies it sent unasked go with it.
    link.socket.once('close', () => {
      if (this.link === link && !this.busy) this.link = undefined;
    });
    this.deps.directory.noteOpened(node.id, this.deps.protocol);
    // quill_gateway_failovers_total: the session was replayed on a new link (rare: no cached child).
    if (this.linked) processMetrics().gatewayFailovers.labels(this.deps.gatewayId, this.deps.protocol).inc();
    this.linked = true;
    return link;
  }

  /** Greeting, XCLIENT, EHLO, and the transaction so far: the node is where the client thinks it is. */
  private async bringUp(link: NodeLink): Promise<void> {
    const expect = async (what: string, reply: Promise<Reply>, ok: (code: number) => boolean) => {
      const got = await reply;
      if (!ok(got.code)) throw new RefusedByNode(`${what}: ${got.text}`);
      return got;
    };
    // The node believes the PROXY header and XCLIENT only from trusted gateways; UNKNOWN keeps
    // the gateway's own address for that check, XCLIENT ADDR then names the client.
    link.send(PROXY_UNKNOWN);
    await expect('greeting', link.reply(), (c) => c === SmtpCode.Ready);
    const address = (this.client.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.)/, '');
    const parts = [`ADDR=${address}`, `PORT=${this.client.remotePort ?? 0}`];
    if (this.recorded.user) parts.push(`LOGIN=${encodeXtext(this.recorded.user)}`);
    await expect('XCLIENT (is this gateway in the node\'s trustedGateways, with the same cluster.secret?)', link.command(`XCLIENT ${parts.join(' ')}`), (c) => c === SmtpCode.Ready);
    await expect('EHLO', link.command(this.recorded.ehlo ?? `EHLO ${this.deps.config.hostname}`), (c) => c === SmtpCode.Ok);
    const { mail, rcpts, data, inData } = this.recorded;
    if (!mail) return;
    if (inData && !data) throw new RefusedByNode('message too large to replay');
    // The transaction so far in one group (RFC 2920 3.1: MAIL, RCPTs and a DATA last; nodes
    // offer PIPELINING), its replies read in order: one round trip however many recipients.
    const group = [mail, ...rcpts, ...(inData ? ['DATA'] : [])];
    link.send(`${group.join('\r\n')}\r\n`);
    await expect('MAIL replay', link.reply(), (c) => c >= 200 && c < 300);
    for (let i = 0; i < rcpts.length; i++) await expect('RCPT replay', link.reply(), (c) => c >= 200 && c < 300);
    if (!inData) return;
    await expect('DATA replay', link.reply(), (c) => c === SmtpCode.StartData);
    for (const chunk of data!) link.send(chunk);
  }
}

/** The node answered the replay differently than the first time: the client gets a temporary error. */
class RefusedByNode extends NodeRefused {}

/** Ends the session after telling the client. */
class ClientGone extends Error {}
