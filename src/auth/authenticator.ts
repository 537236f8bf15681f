// One place that checks passwords for every protocol (IMAP, POP3, submission, webmail and the
// gateway's fronts): scrypt verification, a delay after each failure, and login throttling per
// account, address and network (throttle.ts) that another account's success does not reset.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store, User } from '../store/types.js';
import { verifyPassword } from '../util/password.js';
import { LoginThrottle, type ThrottleLimits } from './throttle.js';

export interface AuthLimits extends ThrottleLimits {
  authFailureDelayMs: number;
}

export type AuthResult = { ok: true; user: User } | { ok: false; reason: 'invalid' | 'locked' | 'disabled' };

// A fixed hash to verify against for unknown users, so timing does not reveal which exist.
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export class Authenticator {
  private readonly throttle: LoginThrottle;

  constructor(
    private readonly store: Store,
    private readonly limits: AuthLimits,
  ) {
    this.throttle = new LoginThrottle(limits);
  }

  /** Whether the client address (or its network) failed too often, whatever the account (sign-up asks this). */
  isLocked(remoteIp: string): boolean {
    return this.throttle.addressBlocked(remoteIp);
  }

  /** Counts a failure that is not a password check (a wrong invite code) against the address. */
  async recordFailure(remoteIp: string, account?: string): Promise<void> {
    this.throttle.failed(account, remoteIp);
    await sleep(this.limits.authFailureDelayMs);
  }

  /** Verifies an address and password. Store errors propagate (they are temporary failures). */
  async authenticate(address: string, password: string, remoteIp: string): Promise<AuthResult> {
    if (this.throttle.blocked(address, remoteIp)) {
      await sleep(this.limits.authFailureDelayMs);
      return { ok: false, reason: 'locked' };
    }
    const user = await this.store.getUser(address.trim());
    const valid = await verifyPassword(password, user?.passwordHash ?? DUMMY_HASH);
    if (user && valid && !user.disabled) {
      this.throttle.succeeded(address, remoteIp);
      return { ok: true, user };
    }
    this.throttle.failed(address, remoteIp);
    await sleep(this.limits.authFailureDelayMs);
    return { ok: false, reason: user && valid ? 'disabled' : 'invalid' };
  }
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}
