// Not-authenticated state (RFC 3501 6.2): STARTTLS, AUTHENTICATE PLAIN (RFC 4616) and LOGIN
// (draft-murchison-sasl-login), with the initial response of SASL-IR (RFC 4959), and LOGIN.
import { isSaslMechanism, SASL_MECHANISMS as SASL, SaslError, saslExchange } from '../../protocol/sasl.js';
import { astring, atomText } from '../args.js';
import { bad, CODE, no } from '../errors.js';
import { chunksAsLine } from '../parser.js';
import type { CommandInfo, Session } from '../session.js';
import type { ImapValue } from '../value.js';
import { continuation } from '../writer.js';
import { arity, type CommandResult } from './types.js';

// RFC 3501 6.2.1
export async function starttls(s: Session, args: ImapValue[], info: CommandInfo): Promise<CommandResult> {
  arity(args, 0);
  if (s.secure) throw bad('TLS is already active');
  s.tagged(info.tag, 'OK', 'begin TLS negotiation now');
  s.flush();
  await s.startTls();
  return { responded: true };
}

// RFC 3501 6.2.3
export async function login(s: Session, args: ImapValue[]): Promise<CommandResult> {
  arity(args, 2);
  if (!s.plaintextAllowed()) throw no('use STARTTLS first', CODE.privacyRequired);
  return authenticateUser(s, astring(args[0], 'user name'), astring(args[1], 'password'));
}

/** The mechanisms AUTHENTICATE takes (advertised as AUTH=... while plaintext is allowed). */
export const SASL_MECHANISMS: readonly string[] = SASL;

// RFC 3501 6.2.2, RFC 4959 initial response; the exchange itself is src/protocol/sasl.ts.
export async function authenticate(s: Session, args: ImapValue[]): Promise<CommandResult> {
  arity(args, 1, 2);
  const mechanism = atomText(args[0]) ?? '';
  if (!isSaslMechanism(mechanism)) throw no(`mechanism ${astring(args[0], 'mechanism')} is not supported`, CODE.cannot);
  if (!s.plaintextAllowed()) throw no('use STARTTLS first', CODE.privacyRequired);
  const initial = args.length === 2 ? astring(args[1], 'initial response') : undefined;
  let credentials;
  try {
    credentials = await saslExchange(mechanism, initial, (challenge) => ask(s, challenge));
  } catch (error) {
    if (!(error instanceof SaslError)) throw error;
    if (error.reason === 'bad-authzid') throw no(error.message, CODE.authenticationFailed);
    throw bad(error.message);
  }
  return authenticateUser(s, credentials.authcid, credentials.password);
}

/** Sends a continuation with the (base64) challenge and reads the client's line. */
async function ask(s: Session, challenge: string): Promise<string> {
  s.write(continuation(challenge));
  const event = await s.next();
  if (!event || event.kind !== 'command') throw bad('authentication exchange failed');
  return chunksAsLine(event.chunks).trim();
}

/**
 * `tag XQUILL-LOGIN user`: the gateway's IMAP front end (src/gateway/imap-front.ts) checked
 * the password itself and opens the session here, first or again after a failover. Only a
 * verified gateway link (src/net/gateway-link.ts: a trusted address, and the cluster secret when
 * one is set) may say it; anyone else hears of no such command.
 */
export async function gatewayLogin(s: Session, args: ImapValue[], info: CommandInfo): Promise<CommandResult> {
  const { config, store } = s.ctx.deps;
  if (!s.fromGatewayLink) throw bad(`unknown command ${info.name}`);
  arity(args, 1);
  const user = await store.getUser(astring(args[0], 'user name'));
  if (!user || user.disabled) throw no('authentication failed', CODE.authenticationFailed);
  if (s.ctx.hub.sessionsOf(user.id) >= config.limits.imapConnectionsPerUser) throw no('too many sessions for this user', CODE.limit);
  s.loggedIn(user);
  s.viaGateway = true;
  return { code: `CAPABILITY ${s.capabilities().join(' ')}`, text: 'logged in' };
}

async function authenticateUser(s: Session, address: string, password: string): Promise<CommandResult> {
  const { auth, config } = s.ctx.deps;
  const result = await auth.authenticate(address, password, s.remoteIp);
  if (!result.ok) {
    s.log.info({ address, reason: result.reason }, 'authentication failed');
    s.ctx.metrics?.auth.inc('failed');
    if (++s.authFailures >= config.limits.authFailures) {
      s.untaggedStatus('BYE', 'too many failed authentications');
      s.state = 'logout';
    }
    // Throttled (src/auth/throttle.ts): a temporary refusal, so clients retry rather than ask for a new password.
    if (result.reason === 'locked') throw no('too many failed logins, try again later', CODE.unavailable);
    throw no('authentication failed', CODE.authenticationFailed);
  }
  if (s.ctx.hub.sessionsOf(result.user.id) >= config.limits.imapConnectionsPerUser) {
    throw no('too many sessions for this user', CODE.limit);
  }
  s.loggedIn(result.user);
  s.log.info({ tls: s.secure }, 'login');
  s.ctx.metrics?.auth.inc('ok');
  return { code: `CAPABILITY ${s.capabilities().join(' ')}`, text: 'logged in' };
}
