// smtp-server with two things the library leaves out: replies that carry their own enhanced
// status code (codes.ts) keep it, and limits.badCommands bad commands close the session (the
// library on its own closes after 10 unrecognized ones, whatever the limit).
import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import { ENHANCED_PREFIX, Replies } from './codes.js';

// Replies that mean the client sent something wrong (RFC 5321 4.2.3: 500-504).
const isBadCommandReply = (code: number) => code >= 500 && code <= 504;

class QuillConnection extends SMTPConnection {
  private badCommands = 0;

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
  ) {
    super(options);
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
