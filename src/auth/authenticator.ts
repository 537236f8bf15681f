// One place that checks passwords for every protocol (IMAP, POP3, submission, webmail and the
// gateway's fronts): scrypt verification, a delay after each failure, and login throttling per
// account, address and network (throttle.ts) that another account's success does not reset,
// and a cache of recently verified credentials (as Dovecot's auth cache) so a client that
// logs in often does not pay for scrypt each time.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { processMetrics } from '../metrics/metrics.js';
import type { Directory, User } from '../store/types.js';
import { dummyHash, hashPassword, needsRehash, verifyPassword } from '../util/password.js';
import { LoginThrottle, pairKey, type ThrottleLimits } from './throttle.js';

export interface AuthLimits extends ThrottleLimits {
  authFailureDelayMs: number;
  /** How long a verified password is remembered (0: never). */
  authCacheSeconds: number;
  authCacheEntries: number;
}

/**
 * Passwords that verified recently, per user, as an HMAC under a key that lives only in this
 * process (never the password itself). An entry holds only while the stored hash is the one it
 * was verified against: a changed password (any node, the CLI, the web) is checked afresh at once.
 */
class VerifiedCache {
  private readonly key = randomBytes(32);
  private readonly entries = new Map<string, { storedHash: string; mac: Buffer; expires: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
  ) {}

  private mac(user: User, password: string): Buffer {
    return createHmac('sha256', this.key).update(`${user.id}\0${user.passwordHash}\0`).update(password).digest();
  }

  has(user: User, password: string): boolean {
    const entry = this.entries.get(user.address);
    if (!entry) return false;
    if (entry.storedHash !== user.passwordHash || entry.expires <= Date.now()) {
      this.entries.delete(user.address);
      return false;
    }
    return timingSafeEqual(entry.mac, this.mac(user, password));
  }

  remember(user: User, password: string): void {
    if (this.ttlMs <= 0) return;
    this.entries.delete(user.address);
    this.entries.set(user.address, { storedHash: user.passwordHash, mac: this.mac(user, password), expires: Date.now() + this.ttlMs });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }
}

export type AuthResult = { ok: true; user: User } | { ok: false; reason: 'invalid' | 'locked' | 'disabled' };

export class Authenticator {
  private readonly throttle: LoginThrottle;
  private readonly verified: VerifiedCache;

  constructor(
    private readonly store: Directory,
    private readonly limits: AuthLimits,
  ) {
    this.throttle = new LoginThrottle(limits);
    this.verified = new VerifiedCache(limits.authCacheSeconds * 1000, limits.authCacheEntries);
  }

  /** The last login in progress per (account, address) pair: the next one waits for it (bounded by connections). */
  private readonly inFlight = new Map<string, Promise<void>>();

  /** Whether the client address (or its network) failed too often, whatever the account (sign-up asks this). */
  isLocked(remoteIp: string): boolean {
    return this.throttle.addressBlocked(remoteIp);
  }

  /** Counts a failure that is not a password check (a wrong invite code) against the address. */
  async recordFailure(remoteIp: string, account?: string): Promise<void> {
    this.throttle.failed(account, remoteIp);
    await sleep(this.limits.authFailureDelayMs);
  }

  /**
   * Verifies an address and password. Store errors propagate (they are temporary failures).
   * Logins for one account from one address are checked one after another: a client opening
   * its connections at once gets them all once the first succeeded (the pair is then known and
   * the verified cache answers), where counted in parallel the eleventh would find ten
   * "failures" in progress; a guesser gains nothing from parallel connections either.
   */
  async authenticate(address: string, password: string, remoteIp: string): Promise<AuthResult> {
    const key = pairKey(address, remoteIp);
    const before = this.inFlight.get(key);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    this.inFlight.set(key, mine);
    try {
      await before;
      return await this.check(address, password, remoteIp, release);
    } finally {
      release();
      if (this.inFlight.get(key) === mine) this.inFlight.delete(key);
    }
  }

  /** One login's check; `counted` lets the next login of the pair go on before this one's failure delay. */
  private async check(address: string, password: string, remoteIp: string, counted: () => void): Promise<AuthResult> {
    if (this.throttle.blocked(address, remoteIp)) {
      counted();
      await sleep(this.limits.authFailureDelayMs);
      return { ok: false, reason: 'locked' };
    }
    // Counted as a failure until it proves otherwise: parallel attempts see each other.
    this.throttle.attempt(address, remoteIp);
    let user: User | undefined;
    let valid = false;
    try {
      user = await this.store.getUser(address.trim());
      const cached = user !== undefined && this.verified.has(user, password);
      processMetrics().passwordChecks.inc({ result: cached ? 'cached' : 'scrypt' });
      // Unknown users are checked against a hash of the same cost: timing does not tell who exists.
      valid = cached || (await verifyPassword(password, user?.passwordHash ?? dummyHash()));
    } catch (error) {
      this.throttle.withdraw(address, remoteIp); // a store fault is nobody's guess
      throw error;
    }
    if (user && valid && !user.disabled) {
      this.throttle.succeeded(address, remoteIp);
      if (needsRehash(user.passwordHash)) user = await this.rehash(user, password);
      this.verified.remember(user, password);
      return { ok: true, user };
    }
    this.throttle.attemptFailed(remoteIp);
    counted();
    await sleep(this.limits.authFailureDelayMs);
    return { ok: false, reason: user && valid ? 'disabled' : 'invalid' };
  }

  /** A hash made at an older, lower cost is replaced at login, while the password is at hand. */
  private async rehash(user: User, password: string): Promise<User> {
    try {
      const passwordHash = await hashPassword(password);
      await this.store.setPassword(user.address, passwordHash);
      return { ...user, passwordHash };
    } catch {
      return user; // the store is busy or read-only: next time
    }
  }
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}
