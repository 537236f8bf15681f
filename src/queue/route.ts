// Where a message for a domain goes: a static route, the smart host, or the domain's MX
// hosts in preference order (RFC 5321 5.1), through an injectable resolver so tests use a
// fake zone and never the network; the server hands in its caching resolver (src/dns/resolver.ts).
import { splitHostPort, type Config } from '../config/config.js';
import type { Resolver } from '../dns/resolver.js';

export interface Hop {
  host: string;
  port: number;
  /** Name for the report (the MX host name). */
  name: string;
  auth?: { user: string; pass: string };
  implicitTls?: boolean;
}

/** A permanent routing failure: the domain does not accept mail at all. */
export class NoRouteError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

function isNotFound(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'ENOTFOUND' || code === 'ENODATA' || code === 'NOTFOUND';
}

async function addressesOf(resolver: Resolver, host: string): Promise<string[]> {
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
  return [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
}

export async function routeFor(domain: string, config: Readonly<Config>['outbound'], resolver: Resolver): Promise<Hop[]> {
  const route = config.routes[domain.toLowerCase()];
  if (route) {
    const { host, port } = splitHostPort(route);
    return [{ host, port, name: host }];
  }
  if (config.smarthost) {
    const { host, port, user, pass, tls } = config.smarthost;
    return [{ host, port, name: host, auth: user !== undefined && pass !== undefined ? { user, pass } : undefined, implicitTls: tls }];
  }
  let mx: { exchange: string; priority: number }[];
  try {
    mx = await resolver.resolveMx(domain);
  } catch (error) {
    if (!isNotFound(error)) throw new NoRouteError(`MX lookup for ${domain} failed: ${(error as Error).message}`, false);
    mx = [];
  }
  // RFC 7505: a single "." MX says the domain takes no mail.
  if (mx.length === 1 && (mx[0]!.exchange === '' || mx[0]!.exchange === '.')) {
    throw new NoRouteError(`556 5.1.10 ${domain} does not accept mail (null MX)`, true);
  }
  // RFC 5321 5.1: no MX records means the domain itself is the one host.
  const hosts = mx.length > 0 ? [...mx].sort((a, b) => a.priority - b.priority).map((r) => r.exchange) : [domain];
  const hops: Hop[] = [];
  for (const host of hosts) {
    for (const address of await addressesOf(resolver, host)) hops.push({ host: address, port: config.port, name: host });
  }
  if (hops.length === 0) {
    throw new NoRouteError(mx.length > 0 ? `no address for the MX hosts of ${domain}` : `550 5.1.2 ${domain} has no MX or address records`, mx.length === 0);
  }
  return hops;
}
