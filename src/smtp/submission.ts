// The submission listener (RFC 6409): authenticated users send as themselves, to local users
// directly and to everyone else through the outbound queue.
import type { SMTPServerAuthentication, SMTPServerSession } from 'smtp-server';
import { isLoopback } from '../auth/authenticator.js';
import type { Service, ServiceDeps } from '../service.js';
import { Replies } from './codes.js';
import type { SmtpStore } from './delivery.js';
import { startListener, type SessionContext, type SessionUser } from './listener.js';
import { checkHeaderSenders, mayUseAddress } from './sender-check.js';
import { fixUpSubmission } from './submission-fixups.js';

const userOf = (session: SMTPServerSession): SessionUser | undefined => (session.user ? (session.user as SessionUser) : undefined);

export function startSubmission(deps: ServiceDeps<SmtpStore>): Promise<Service> {
  const { config } = deps;

  async function authenticate(auth: SMTPServerAuthentication, session: SMTPServerSession, context: SessionContext): Promise<SessionUser> {
    const username = auth.username ?? '';
    if (auth.method === 'XCLIENT') {
      // XCLIENT LOGIN: a trusted gateway already checked the password (smtp-server allows
      // the command only from config.trustedGateways).
      const user = await deps.store.getUser(username);
      if (!user || user.disabled) throw Replies.authInvalid();
      return { id: user.id, address: user.address };
    }
    // RFC 4616: acting for another identity (an authzid that is not the user) is not offered.
    const proxied = auth.method === 'PLAIN' && auth.authzid && auth.authcid && auth.authzid.toLowerCase() !== auth.authcid.toLowerCase();
    const result = proxied ? ({ ok: false, reason: 'invalid' } as const) : await deps.auth.authenticate(username, auth.password ?? '', session.remoteAddress);
    if (result.ok) return { id: result.user.id, address: result.user.address };
    if (result.reason === 'locked') throw Replies.authLocked();
    context.authFailures++;
    if (context.authFailures >= config.limits.authFailures) throw Replies.tooManyAuthFailures();
    throw Replies.authInvalid();
  }

  return startListener(deps, {
    name: 'submission',
    listen: config.listen.submission,
    // Whether AUTH is offered is decided per session (prepareSession).
    options: { authMethods: ['PLAIN', 'LOGIN'], allowInsecureAuth: true, authRequiredMessage: Replies.authRequired().message },
    prepareSession(session) {
      // RFC 4954 4: no passwords in the clear, except over loopback when configured.
      const plainAllowed = session.secure || (config.smtp.loopbackPlainAuth && isLoopback(session.remoteAddress));
      session.disabledCommands = plainAllowed ? undefined : ['AUTH'];
    },
    authenticate,
    checkSender(address, session) {
      const user = userOf(session);
      if (!user) throw Replies.authRequired();
      if (!mayUseAddress(user.address, address, config.smtp.trustedSenders)) throw Replies.senderNotOwned();
    },
    checkRecipient(_recipient, session) {
      if (!userOf(session)) throw Replies.authRequired();
    },
    async inspect(body, session) {
      const user = userOf(session);
      const refused = user ? checkHeaderSenders(body, user.address, config.smtp.trustedSenders) : Replies.authRequired();
      if (refused) throw refused;
      return { headers: Buffer.alloc(0), body: fixUpSubmission(body, config.hostname) };
    },
    sentCopyUserId: (session) => (config.smtp.sentCopy ? userOf(session)?.id : undefined),
  });
}
