// The MX listener (RFC 5321): mail from other servers for our own domains, no AUTH, no relay.
// Each message is judged (SPF, DKIM, DMARC, ARC; config.inbound) before it is stored, in a pool of
// worker threads (inbound.workers) so the checks' CPU does not hold up accepting and storing.
import { judgeInbound, type InboundVerdict, type SmtpFacts } from '../mailauth/inbound.js';
import { defaultWorkers, JudgePool } from '../mailauth/pool.js';
import type { Service, ServiceDeps } from '../service.js';
import { Replies } from './codes.js';
import type { SmtpStore } from './delivery.js';
import { startListener } from './listener.js';

export async function startSmtp(deps: ServiceDeps<SmtpStore>): Promise<Service> {
  const { config } = deps;
  const log = deps.logger.child({ proto: 'smtp' });
  const workers = config.inbound.workers ?? defaultWorkers();
  const pool =
    config.inbound.verify && workers > 0
      ? new JudgePool({
          hostname: config.hostname,
          policy: config.inbound,
          resolver: deps.resolver,
          size: workers,
          onWorkerLost: (why) => log.warn({ why }, 'inbound verifier thread lost; replaced, its messages judged temperror'),
        })
      : undefined;
  const judge = (body: Buffer, facts: SmtpFacts): Promise<InboundVerdict> =>
    pool ? pool.judge(body, facts) : judgeInbound(body, facts, { hostname: config.hostname, resolver: deps.resolver, policy: config.inbound });
  let service: Service;
  try {
    service = await startListener(deps, {
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
          verdict = await judge(body, facts);
        } catch (error) {
          // A broken verifier must not lose or bounce mail: store it unjudged.
          log.warn({ session: session.id, err: error }, 'inbound verification failed; stored without verdict');
          return { headers: Buffer.alloc(0) };
        }
        if (verdict.action === 'reject') throw Replies.policyRejected(verdict.reason ?? 'sender authentication failed');
        return { headers: Buffer.from(verdict.headers, 'utf8'), mailbox: verdict.action === 'quarantine' ? 'Junk' : undefined };
      },
    });
  } catch (error) {
    await pool?.close();
    throw error;
  }
  if (!pool) return service;
  return {
    get name() {
      return service.name;
    },
    get host() {
      return service.host;
    },
    get port() {
      return service.port;
    },
    connections: service.connections ? () => service.connections!() : undefined,
    async close(deadline) {
      try {
        await service.close(deadline);
      } finally {
        await pool.close();
      }
    },
  };
}
