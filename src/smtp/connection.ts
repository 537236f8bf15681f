// smtp-server with three things the library leaves out: replies that carry their own enhanced
// status code (codes.ts) keep it, limits.badCommands bad commands close the session (the
// library on its own closes after 10 unrecognized ones, whatever the limit), and a gateway's
// PROXY line and XCLIENT are believed only on a verified gateway link (src/net/gateway-link.ts:
// a trusted address and, with cluster.secret set, the secret's proof before anything else).
import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import { expectsGatewayLink, isGatewayLink, markGatewayLink, readGatewayHello, type GatewayTrust } from '../net/gateway-link.js';
import { replyLine, SmtpReplies } from '../protocol/smtp-replies.js';
import { ENHANCED_PREFIX, Replies } from './codes.js';

/** The session as the listener's hooks see it: whether it came over a verified gateway link. */
export interface GatewayAwareSession {
  gatewayLink?: boolean;
}

type ProxyCallback = Parameters<SMTPServer['_handleProxy']>[1];

// Replies that mean the client sent something wrong (RFC 5321 4.2.3: 500-504).
const isBadCommandReply = (code: number) => code >= 500 && code <= 504;

class QuillConnection extends SMTPConnection {
  private badCommands = 0;

  constructor(server: SMTPServer, socket: net.Socket | tls.TLSSocket, options?: SMTPConnectionOptions | null) {
    super(server, socket, options);
    (this.session as GatewayAwareSession).gatewayLink = isGatewayLink(socket);
  }

  /**
   * The library waits 100 ms before the greeting to catch early talkers. On a gateway link the
   * gateway did that screening itself (gateway.smtpGreetDelayMs): the greeting goes at once, or
   * every session the gateway opens or moves would wait for it.
   */
  override init(): void {
    if (!(this.session as GatewayAwareSession).gatewayLink) return super.init();
    this._setListeners(() => this.connectionReady());
  }

  /** XCLIENT only on a verified gateway link, besides the library's own address check. */
  override _proxyCommandAllowed(...args: Parameters<SMTPConnection['_proxyCommandAllowed']>): boolean {
    return super._proxyCommandAllowed(...args) && isGatewayLink(this._socket);
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    // The library would put its own guess before a text that already starts with one.
    const ours = typeof data === 'string' && ENHANCED_PREFIX.test(data);
    super.send(code, data, ours ? false : context);
    if (isBadCommandReply(code) && ++this.badCommands >= (this._server as QuillSmtpServer).badCommandLimit) {
      const reply = Replies.tooManyBadCommands();
      super.send(reply.responseCode, reply.message, false); // 421 closes the connection
    }
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    // A line answering a challenge (AUTH LOGIN's base64) is no command: never counted or named.
    if (!this._nextHandler) (this._server as QuillSmtpServer).onCommand?.(commandName(command), this.id);
    super._onCommand(command, callback);
  }
}

/** Verbs counted by name; anything else is counted as OTHER (bounded metric labels). */
const VERBS = new Set(['HELO', 'EHLO', 'LHLO', 'MAIL', 'RCPT', 'DATA', 'BDAT', 'RSET', 'NOOP', 'QUIT', 'VRFY', 'EXPN', 'HELP', 'AUTH', 'STARTTLS', 'XCLIENT', 'XFORWARD']);

function commandName(line: Buffer): string {
  const space = line.indexOf(0x20);
  const name = line.toString('latin1', 0, space === -1 ? Math.min(line.length, 16) : Math.min(space, 16)).toUpperCase();
  return VERBS.has(name) ? name : 'OTHER';
}

export class QuillSmtpServer extends SMTPServer {
  /** Told of each command line (not of AUTH exchange lines or message data). */
  onCommand: ((name: string, sessionId: string) => void) | undefined;

  constructor(
    options: SMTPServerOptions,
    readonly badCommandLimit: number,
    private readonly trust: GatewayTrust = { trusted: [] },
  ) {
    super(options);
  }

  /**
   * Before the library reads the PROXY line of a connection from a trusted address: the
   * gateway's proof, when a secret is set. Without it the connection hears 421 and closes.
   */
  override _handleProxy(socket: net.Socket, callback: ProxyCallback): void {
    if (!expectsGatewayLink(this.trust, socket.remoteAddress)) return super._handleProxy(socket, callback);
    readGatewayHello(socket, this.trust).then(
      () => {
        markGatewayLink(socket);
        super._handleProxy(socket, callback);
      },
      (error: Error) => {
        socket.on('error', () => undefined);
        if (!socket.destroyed) socket.end(`${replyLine(SmtpReplies.linkNotAuthenticated)}\r\n`);
        setTimeout(() => socket.destroy(), 1_000).unref();
        callback(error);
      },
    );
  }

  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    // What SMTPServer.connect does, with our connection class.
    const connection = new QuillConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (error: Error) => this._onError(error));
    connection.on('connect', (info) => this._onClientConnect(info));
    connection.init();
  }
}
