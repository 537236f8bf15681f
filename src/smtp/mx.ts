// The MX listener (RFC 5321): mail from other servers for our own domains, no AUTH, no relay.
// Each message is judged (SPF, DKIM, DMARC, ARC; config.inbound) before it is stored.
import { judgeInbound } from '../mailauth/inbound.js';
import type { Service, ServiceDeps } from '../service.js';
import { Replies } from './codes.js';
import { startListener } from './listener.js';

export function startSmtp(deps: ServiceDeps): Promise<Service> {
  const { config } = deps;
  const log = deps.logger.child({ proto: 'smtp' });
  return startListener(deps, {
    name: 'smtp',
    listen: config.listen.smtp,
    options: { disabledCommands: ['AUTH'] },
    // Any sender here: whether it may use its domain is what inspect judges.
    checkSender() {},
    checkRecipient(recipient) {
      if (recipient.kind === 'foreign') throw Replies.relayDenied();
    },
    async inspect(body, session) {
      const facts = { ip: session.remoteAddress, helo: session.hostNameAppearsAs || '', sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : '' };
      let verdict;
      try {
        verdict = await judgeInbound(body, facts, { hostname: config.hostname, resolver: deps.resolver, policy: config.inbound });
      } catch (error) {
        // A broken verifier must not lose or bounce mail: store it unjudged.
        log.warn({ session: session.id, err: error }, 'inbound verification failed; stored without verdict');
        return { headers: Buffer.alloc(0) };
      }
      if (verdict.action === 'reject') throw Replies.policyRejected(verdict.reason ?? 'sender authentication failed');
      return { headers: Buffer.from(verdict.headers, 'utf8'), mailbox: verdict.action === 'quarantine' ? 'Junk' : undefined };
    },
  });
}
