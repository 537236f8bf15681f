// Judging inbound mail on the MX port: SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489)
// and ARC (RFC 8617) through mailauth, summed up in one Authentication-Results header
// (RFC 8601), and what the configured policy does with a failure.
import './key-cache.js';
import { authenticate } from 'mailauth';
import { withDeadline, type Resolver } from '../dns/resolver.js';

export type InboundAction = 'accept' | 'quarantine' | 'reject';

export interface InboundPolicy {
  /** Verify at all (the header is added only when on). */
  verify: boolean;
  /** DMARC failure: follow the domain's published p= ('enforce'), or always do this. */
  dmarc: 'enforce' | InboundAction;
  /** An SPF fail of the envelope sender, apart from DMARC. */
  spfFail: InboundAction;
  /** Time for all of one message's lookups; past it they fail as temperror (default 2500 ms). */
  budgetMs?: number;
}

export interface InboundVerdict {
  /** Header lines to prepend (Received-SPF and Authentication-Results), CRLF-terminated. */
  headers: string;
  action: InboundAction;
  /** Why, for the SMTP reply and the log. */
  reason?: string;
}

export interface SmtpFacts {
  ip: string;
  helo: string;
  /** MAIL FROM; empty for the null sender. */
  sender: string;
}

class NotFound extends Error {
  readonly code = 'ENOTFOUND';
}

/** mailauth's resolver shape (name, rrtype) on top of ours, so tests can hand in a fake zone. */
export function mailauthResolver(resolver: Resolver): (name: string, type: string) => Promise<unknown> {
  return async (name, type) => {
    switch (type) {
      case 'TXT':
        return resolver.resolveTxt(name);
      case 'MX':
        return resolver.resolveMx(name);
      case 'A':
        return resolver.resolve4(name);
      case 'AAAA':
        return resolver.resolve6(name);
      case 'PTR':
        if (resolver.resolvePtr) return resolver.resolvePtr(name);
        throw new NotFound('no PTR records');
      default:
        throw new NotFound(`${type} lookups are not supported`);
    }
  };
}

const STRICTER: Record<InboundAction, number> = { accept: 0, quarantine: 1, reject: 2 };

function stricter(a: InboundAction, b: InboundAction): InboundAction {
  return STRICTER[a] >= STRICTER[b] ? a : b;
}

export async function judgeInbound(raw: Buffer, facts: SmtpFacts, options: { hostname: string; resolver: Resolver; policy: InboundPolicy }): Promise<InboundVerdict> {
  const { policy } = options;
  if (!policy.verify) return { headers: '', action: 'accept' };
  // One time budget for every lookup of this message: past it each lookup fails at once with
  // ETIMEOUT, which mailauth reports as temperror, so a slow DNS never stalls the transaction.
  const resolver = withDeadline(options.resolver, Date.now() + (policy.budgetMs ?? 2500));
  const result = await authenticate(raw, {
    ip: facts.ip,
    helo: facts.helo,
    sender: facts.sender,
    mta: options.hostname,
    resolver: mailauthResolver(resolver) as never,
    disableBimi: true,
  });
  let action: InboundAction = 'accept';
  let reason: string | undefined;

  const spf = result.spf && typeof result.spf === 'object' ? result.spf.status?.result : undefined;
  if (spf === 'fail' && policy.spfFail !== 'accept') {
    action = stricter(action, policy.spfFail);
    reason = `SPF fail for ${facts.sender}`;
  }

  const dmarc = result.dmarc && typeof result.dmarc === 'object' ? result.dmarc : undefined;
  if (dmarc?.status?.result === 'fail') {
    // RFC 7489 6.6.4: the published policy; p=none only reports. pct is honoured by mailauth.
    const published = (dmarc.policy ?? 'none') as string;
    const wanted: InboundAction =
      policy.dmarc === 'enforce' ? (published === 'reject' ? 'reject' : published === 'quarantine' ? 'quarantine' : 'accept') : policy.dmarc;
    if (STRICTER[wanted] > STRICTER[action]) {
      action = wanted;
      reason = `DMARC policy of ${dmarc.domain ?? 'the sender domain'}`;
    }
  }
  return { headers: result.headers.replace(/\r?\n/g, '\r\n'), action, reason };
}
