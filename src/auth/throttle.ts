// Login throttling (issue 17 row 4). Failures are counted, each in a window of lockoutSeconds:
// - per account, from anywhere (rotating addresses does not help a guesser);
// - per client address (IPv6 by /64) and per network (IPv4 /24, IPv6 /48);
// - per (account, address) pair.
// A success clears only its own pair's count and makes the pair "known" for a while: a known
// pair is held back only by its own count, so guessing against bob (or from bob's office)
// does not lock bob out of the devices he already uses, and one's own successful logins do
// not reset the count of guesses made for others from the same address.
// Every table is bounded; the least recently failing entries go first, so a spray of new
// addresses or names cannot flush the entries that are being hit.
import { isIPv4, isIPv6 } from 'node:net';

export interface ThrottleLimits {
  authFailuresPerIp: number;
  authFailuresPerAccount: number;
  authFailuresPerNetwork: number;
  lockoutSeconds: number;
  authThrottleEntries: number;
  authKnownAddressHours: number;
}

/** Counts per key within a window from the key's first count; bounded, least recently counted evicted first. */
export class WindowCounter {
  private readonly entries = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly windowMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  count(key: string): number {
    const entry = this.entries.get(key);
    if (!entry) return 0;
    if (this.now() - entry.since >= this.windowMs) {
      this.entries.delete(key);
      return 0;
    }
    return entry.count;
  }

  add(key: string): number {
    const count = this.count(key) + 1;
    const since = count === 1 ? this.now() : this.entries.get(key)!.since;
    // Re-inserted at the end of the Map's order: the front holds the least recently counted.
    this.entries.delete(key);
    this.entries.set(key, { count, since });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return count;
  }

  /** Takes back one count (a provisional failure that turned out a success). */
  remove(key: string): void {
    const entry = this.entries.get(key);
    if (entry && entry.count > 0) entry.count--;
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** The client address as throttling sees it: IPv4 whole, IPv6 by its /64 (one customer's LAN). */
export function addressKey(remoteIp: string): string {
  const ip = remoteIp.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  if (isIPv6(ip)) return `${ipv6Groups(ip).slice(0, 4).join(':')}::/64`;
  return ip;
}

/** The client's network: IPv4 /24, IPv6 /48 (one site). */
export function networkKey(remoteIp: string): string {
  const ip = remoteIp.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  if (isIPv4(ip)) return `${ip.split('.').slice(0, 3).join('.')}.0/24`;
  if (isIPv6(ip)) return `${ipv6Groups(ip).slice(0, 3).join(':')}::/48`;
  return ip;
}

/** The eight 16-bit groups of an IPv6 address, expanded ("::" filled, an IPv4 tail converted). */
function ipv6Groups(ip: string): string[] {
  let text = ip.toLowerCase().replace(/%.*$/, '');
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((group) => Number.parseInt(group || '0', 16).toString(16));
}

/** Account names are case-insensitive; an absurdly long one shares a key with its prefix (bounded memory). */
export function accountKey(account: string): string {
  return account.trim().toLowerCase().slice(0, 320);
}

export class LoginThrottle {
  private readonly accounts: WindowCounter;
  private readonly addresses: WindowCounter;
  private readonly networks: WindowCounter;
  private readonly pairs: WindowCounter;
  /** Pairs with a recent success; the count is only used as "present". */
  private readonly known: WindowCounter;

  constructor(
    private readonly limits: ThrottleLimits,
    now: () => number = Date.now,
  ) {
    const windowMs = limits.lockoutSeconds * 1000;
    const max = limits.authThrottleEntries;
    this.accounts = new WindowCounter(windowMs, max, now);
    this.addresses = new WindowCounter(windowMs, max, now);
    this.networks = new WindowCounter(windowMs, max, now);
    this.pairs = new WindowCounter(windowMs, max, now);
    this.known = new WindowCounter(limits.authKnownAddressHours * 3600_000, max, now);
  }

  /** Whether a login for this account from this address is refused before its password is checked. */
  blocked(account: string, remoteIp: string): boolean {
    const pair = pairKey(account, remoteIp);
    if (this.pairs.count(pair) >= this.limits.authFailuresPerIp) return true;
    if (this.known.count(pair) > 0) return false;
    return this.addressBlocked(remoteIp) || this.accounts.count(accountKey(account)) >= this.limits.authFailuresPerAccount;
  }

  /** Whether the address (or its network) failed too often, whatever the account. */
  addressBlocked(remoteIp: string): boolean {
    return this.addresses.count(addressKey(remoteIp)) >= this.limits.authFailuresPerIp || this.networks.count(networkKey(remoteIp)) >= this.limits.authFailuresPerNetwork;
  }

  failed(account: string | undefined, remoteIp: string): void {
    this.addresses.add(addressKey(remoteIp));
    this.networks.add(networkKey(remoteIp));
    if (account === undefined) return;
    this.accounts.add(accountKey(account));
    this.pairs.add(pairKey(account, remoteIp));
  }

  /**
   * A password about to be checked: counted as a failure of the account and the pair at once, so
   * parallel guesses at one account cannot all pass the check before any counts. The address and
   * network count only failures that happened (attemptFailed): twenty users logging in at once
   * from one NAT or proxy must not lock that address out (their parallelism is bounded by
   * connectionsPerIp, their failures counted when they fail).
   */
  attempt(account: string, remoteIp: string): void {
    this.accounts.add(accountKey(account));
    this.pairs.add(pairKey(account, remoteIp));
  }

  /** The attempt failed: its account and pair count stand, the address and network count it now. */
  attemptFailed(remoteIp: string): void {
    this.addresses.add(addressKey(remoteIp));
    this.networks.add(networkKey(remoteIp));
  }

  /** Takes back the count of an attempt when no check could be made (a store fault). */
  withdraw(account: string, remoteIp: string): void {
    this.accounts.remove(accountKey(account));
    this.pairs.remove(pairKey(account, remoteIp));
  }

  /**
   * A success (counted as a failure while it was checked, see attempt): that count is withdrawn, the pair's own failures cleared and
   * the pair known. The account's and the address's other failures keep counting.
   */
  succeeded(account: string, remoteIp: string): void {
    this.withdraw(account, remoteIp);
    const pair = pairKey(account, remoteIp);
    this.pairs.delete(pair);
    this.known.delete(pair);
    this.known.add(pair);
  }
}

/** One account from one client address (by its /64 for IPv6). */
export function pairKey(account: string, remoteIp: string): string {
  return `${accountKey(account)} ${addressKey(remoteIp)}`;
}
