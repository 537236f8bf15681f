// The MX listener (RFC 5321): mail from other servers for our own domains, no AUTH, no relay.
import type { Service, ServiceDeps } from '../service.js';
import { Replies } from './codes.js';
import { startListener } from './listener.js';

export function startSmtp(deps: ServiceDeps): Promise<Service> {
  return startListener(deps, {
    name: 'smtp',
    listen: deps.config.listen.smtp,
    options: { disabledCommands: ['AUTH'] },
    // Any sender: checking it (SPF, DMARC) is not this listener's job yet.
    checkSender() {},
    checkRecipient(recipient) {
      if (recipient.kind === 'foreign') throw Replies.relayDenied();
    },
  });
}
