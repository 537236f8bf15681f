// What the MX and submission listeners share: smtp-server set up from config.limits,
// connection limits, one log line per session event, and DATA -> Received header -> one
// durable deliver -> 250. Each listener adds its own rules for auth, sender and recipients.
import { setTimeout as sleep } from 'node:timers/promises';
import type {
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerAuthenticationResponse,
  SMTPServerDataStream,
  SMTPServerOptions,
  SMTPServerSession,
} from 'smtp-server';
import { splitHostPort } from '../config/config.js';
import type { Service, ServiceDeps } from '../service.js';
import type { Logger } from '../util/logger.js';
import { processMetrics } from '../metrics/metrics.js';
import { Replies, SmtpReply } from './codes.js';
import { gatewayTrust } from '../net/gateway-link.js';
import { QuillSmtpServer, type GatewayAwareSession } from './connection.js';
import { resolveRecipient, storeMessage, type Recipient, type SmtpStore } from './delivery.js';
import { readMessage, receivedHeader } from './message.js';

export interface SessionContext {
  log: Logger;
  /** The address this session counts against (limits.connectionsPerIp), kept from connect to close; none over a gateway link. */
  countedIp?: string;
  authFailures: number;
  /** Counted for the disconnect log line. */
  commands: number;
  messages: number;
  rejected: number;
}

/** The authenticated identity kept in session.user (never the password hash). */
export interface SessionUser {
  id: number;
  address: string;
}

export interface ListenerSpec {
  name: 'smtp' | 'submission';
  listen: string;
  /** smtp-server options that differ between the two listeners. */
  options: SMTPServerOptions;
  /** Per-session settings at connect and again after STARTTLS (which is what auth depends on). */
  prepareSession?(session: SMTPServerSession): void;
  /** Resolves to the user, or throws an SmtpReply. */
  authenticate?(auth: SMTPServerAuthentication, session: SMTPServerSession, context: SessionContext): Promise<SessionUser>;
  /** Throws an SmtpReply when the sender is refused. */
  checkSender(address: string, session: SMTPServerSession): void;
  /** Throws an SmtpReply when this listener does not take mail for the recipient. */
  checkRecipient(recipient: Recipient, session: SMTPServerSession): void;
  /**
   * Looks at a received message before it is stored: header lines to add below Received and
   * a mailbox other than INBOX for the local copies, or a changed body; throws an SmtpReply to refuse it.
   */
  inspect?(body: Buffer, session: SMTPServerSession): Promise<{ headers: Buffer; mailbox?: string; body?: Buffer }>;
  /** The user whose Sent mailbox gets a copy, if any. */
  sentCopyUserId?(session: SMTPServerSession): number | undefined;
}

type Callback = (error?: Error | null) => void;

/** The MAIL parameter a gateway tags each transaction with, so a replayed one is stored once. */
export const TXN_PARAM = 'XQUILL-TXN';

/** The gateway's transaction id, believed only in a session a trusted gateway opened (XCLIENT). */
function gatewayTxnId(session: SMTPServerSession): string | undefined {
  const args = session.envelope.mailFrom ? session.envelope.mailFrom.args : false;
  const value = args ? args[TXN_PARAM] : undefined;
  const viaGateway = (session as SMTPServerSession & { xClient?: Map<string, unknown> }).xClient?.has('ADDR') ?? false;
  return viaGateway && typeof value === 'string' && /^[A-Za-z0-9._-]{8,80}$/.test(value) ? value : undefined;
}

export async function startListener(deps: ServiceDeps<SmtpStore>, spec: ListenerSpec): Promise<Service> {
  const { config, store } = deps;
  const { limits } = config;
  const { host, port } = splitHostPort(spec.listen);
  const logger = deps.logger.child({ proto: spec.name });
  const sessions = new Map<string, SessionContext>();
  const connectionsPerIp = new Map<string, number>();
  // Recipients as resolved at RCPT, keyed by the address object the library keeps in the envelope.
  const resolved = new WeakMap<SMTPServerAddress, Recipient>();

  const newContext = (log: Logger): SessionContext => ({ log, authFailures: 0, commands: 0, messages: 0, rejected: 0 });
  const contextOf = (session: SMTPServerSession): SessionContext => sessions.get(session.id) ?? newContext(logger.child({ session: session.id }));
  const metrics = processMetrics();
  const node = deps.nodeId ?? 'local';
  const accepted = metrics.connections.labels(node, spec.name);
  const commandCounts = metrics.commandsOf(node, spec.name);
  const authCounts = metrics.authOf(node, spec.name);
  const messageCounts = metrics.deliveriesOf(node, spec.name);

  /** Runs a hook: SmtpReply errors go to the client as they are, anything else is a logged 451. */
  const answer = (session: SMTPServerSession, callback: Callback, what: string, work: () => Promise<void> | void) => {
    Promise.resolve()
      .then(work)
      .then(
        () => callback(),
        (error: unknown) => {
          if (error instanceof SmtpReply) {
            contextOf(session).log.info({ reply: `${error.responseCode} ${error.message}` }, `${what} refused`);
            return callback(error);
          }
          contextOf(session).log.error({ err: error }, `${what} failed`);
          callback(Replies.temporaryFailure());
        },
      );
  };

  /**
   * DATA: reads the message, checks it and stores it; resolves to the reply (undefined when
   * over SIZE: the library answers 552 5.3.4 itself). Rejects when the client went away.
   */
  const receive = async (stream: SMTPServerDataStream, session: SMTPServerSession, log: Logger): Promise<SmtpReply | string | undefined> => {
    const body = await readMessage(stream, limits.messageSize);
    if (!body) {
      log.info({ bytes: stream.byteLength }, 'message refused: over SIZE');
      return undefined;
    }
    if (body.includes(0)) {
      log.info({ bytes: body.length }, 'message refused: NUL bytes');
      return Replies.nulBytes();
    }
    let inspected: { headers: Buffer; mailbox?: string; body?: Buffer } | undefined;
    try {
      inspected = await spec.inspect?.(body, session);
    } catch (error) {
      if (!(error instanceof SmtpReply)) {
        log.error({ err: error }, 'message not stored: inspection failed');
        return Replies.temporaryFailure();
      }
      log.info({ reply: `${error.responseCode} ${error.message}` }, 'message refused');
      return error;
    }
    const addresses = session.envelope.rcptTo;
    const recipients = addresses.map((address) => resolved.get(address)!);
    const received = receivedHeader(session, config.hostname, addresses.map((a) => a.address));
    const raw = Buffer.concat(inspected ? [received, inspected.headers, inspected.body ?? body] : [received, body]);
    const sender = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    try {
      // RFC 5321 6.1: 250 only once the message is durably stored.
      const txnId = gatewayTxnId(session);
      const result = await storeMessage(store, raw, recipients, { sender, mailbox: inspected?.mailbox, sentCopyUserId: spec.sentCopyUserId?.(session), txnId });
      const id = `${session.id}.${session.transaction}`;
      log.info({ id, bytes: raw.length, local: result.copies.length, mailbox: inspected?.mailbox, queued: result.outboundIds.length }, 'message stored');
      return `Ok: stored as ${id}`;
    } catch (error) {
      log.error({ err: error, bytes: raw.length }, 'message not stored: store error');
      return Replies.temporaryFailure();
    }
  };

  const options: SMTPServerOptions = {
    name: config.hostname,
    logger: false,
    key: deps.tls.key,
    cert: deps.tls.cert,
    size: limits.messageSize,
    rejectOversized: true,
    hideENHANCEDSTATUSCODES: false,
    hideDSN: true,
    hideREQUIRETLS: true,
    maxRecipients: limits.recipients,
    maxCommandLength: limits.lineLength,
    socketTimeout: limits.idleTimeoutSeconds * 1000,
    // Behind a gateway, the PROXY v1 line names the client: limits, the Received header and
    // the loopback rule then apply to the client's own address.
    useProxy: config.trustedGateways.length > 0 ? [...config.trustedGateways] : false,
    // A gateway that runs the SMTP dialogue itself (src/gateway/smtp-front.ts) hands over the
    // client's address and login with XCLIENT, which only trusted gateways may send.
    useXClient: config.trustedGateways.length > 0 ? [...config.trustedGateways] : false,
    // PTR through the node's resolver (hosts file first, loopback never asked); a test's fake
    // zone without reverse() has no PTR records, so none are asked of the real DNS.
    disableReverseLookup: !config.smtp.reverseLookup || !deps.resolver.reverse,
    resolver: {
      reverse(ip: string, callback: (error: Error | null, hostnames?: string[]) => void) {
        deps.resolver.reverse!(ip).then(
          (names) => callback(null, names),
          (error: Error) => callback(error),
        );
      },
    },
    ...spec.options,

    onConnect(session, callback) {
      const ip = session.remoteAddress;
      const log = logger.child({ session: session.id });
      const context = newContext(log);
      sessions.set(session.id, context);
      // A session counts against one address from connect to close, whatever XCLIENT says in
      // between; a gateway link counts against none (the gateway limits its clients itself).
      const viaGateway = (session as GatewayAwareSession).gatewayLink === true;
      let fromIp = 0;
      if (!viaGateway) {
        fromIp = (connectionsPerIp.get(ip) ?? 0) + 1;
        connectionsPerIp.set(ip, fromIp);
        context.countedIp = ip;
      }
      if (sessions.size > limits.connections || fromIp > limits.connectionsPerIp) {
        log.warn({ ip, fromIp, open: sessions.size }, 'connection refused: too many connections');
        return callback(Replies.tooManyConnections());
      }
      log.info({ ip, host: session.clientHostname }, 'connect');
      accepted.inc();
      spec.prepareSession?.(session);
      callback();
    },

    onSecure(_socket, session, callback) {
      contextOf(session).log.info({ cipher: session.tlsOptions ? session.tlsOptions.name : undefined }, 'tls');
      spec.prepareSession?.(session);
      callback();
    },

    onAuth(auth, session, callback: (error: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void) {
      const context = contextOf(session);
      if (!spec.authenticate) return callback(Replies.authInvalid());
      spec.authenticate(auth, session, context).then(
        (user) => {
          context.log.info({ user: user.address, method: auth.method }, 'authenticated');
          authCounts.inc('ok');
          callback(null, { user });
        },
        (error: unknown) => {
          const reply = error instanceof SmtpReply ? error : Replies.authUnavailable();
          authCounts.inc('failed');
          if (!(error instanceof SmtpReply)) context.log.error({ err: error }, 'authentication failed: store error');
          else context.log.info({ user: auth.username, method: auth.method, reply: `${reply.responseCode} ${reply.message}` }, 'authentication refused');
          callback(null, { message: reply.message, responseCode: reply.responseCode });
        },
      );
    },

    onMailFrom(address, session, callback) {
      answer(session, callback, 'sender', () => spec.checkSender(address.address, session));
    },

    onRcptTo(address, session, callback) {
      answer(session, callback, 'recipient', async () => {
        const args = session.envelope.mailFrom ? session.envelope.mailFrom.args : false;
        const declared = args && typeof args.SIZE === 'string' ? Number(args.SIZE) : 0;
        const recipient = await resolveRecipient(store, address.address, declared);
        spec.checkRecipient(recipient, session);
        resolved.set(address, recipient);
      });
    },

    onData(stream, session, callback: (error?: Error | null, message?: string) => void) {
      const { log } = contextOf(session);
      receive(stream, session, log).then(
        (outcome) => {
          const stored = typeof outcome === 'string';
          messageCounts.inc(stored ? 'stored' : 'rejected');
          const context = sessions.get(session.id);
          if (context) context[stored ? 'messages' : 'rejected']++;
          if (outcome instanceof SmtpReply) callback(outcome);
          else callback(null, outcome);
          if (closing) sayGoodbye(session.id); // the transaction shutdown waited for is over
        },
        (error: Error) => {
          log.info({ reason: error.message }, 'message lost: client went away during DATA');
          callback(error);
        },
      );
    },

    onClose(session) {
      const context = sessions.get(session.id);
      if (!context) return;
      sessions.delete(session.id);
      const ip = context.countedIp;
      if (ip !== undefined) {
        const left = (connectionsPerIp.get(ip) ?? 1) - 1;
        if (left > 0) connectionsPerIp.set(ip, left);
        else connectionsPerIp.delete(ip);
      }
      context.log.info({ commands: context.commands, messages: context.messages, rejected: context.rejected, authFailures: context.authFailures }, 'close');
    },
  };

  const server = new QuillSmtpServer(options, limits.badCommands, gatewayTrust(config));
  server.onCommand = (name, sessionId) => {
    commandCounts.inc(name);
    const context = sessions.get(sessionId);
    if (context) context.commands++;
  };
  let closing = false;
  const sayGoodbye = (sessionId: string) => {
    const reply = Replies.shuttingDown();
    for (const connection of server.connections) if (connection.id === sessionId) connection.send(reply.responseCode, reply.message);
  };
  server.on('error', (error: Error & { code?: string }) => logger.info({ err: error.message, code: error.code }, 'connection error'));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(port, host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const address = server.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;

  return {
    name: spec.name,
    host,
    port: bound,
    connections: () => server.connections.size,
    async close(deadline) {
      // Stop accepting; sessions outside a transaction go now, open transactions may finish
      // (onData ends each session after its reply) until the deadline, then the rest go too.
      closing = true;
      server.server.close();
      for (const connection of server.connections) {
        if (!connection.session.envelope?.mailFrom && !connection._dataStream) sayGoodbye(connection.id);
      }
      while (server.connections.size > 0 && Date.now() < deadline.getTime()) await sleep(50);
      server.options.closeTimeout = 1;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
