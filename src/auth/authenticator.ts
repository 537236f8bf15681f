// One place that checks passwords for every protocol: scrypt verification, a delay after
// each failure, and a lockout of client addresses that fail too often (RFC 2505 spirit).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Store, User } from '../store/types.js';
import { verifyPassword } from '../util/password.js';

export interface AuthLimits {
  authFailuresPerIp: number;
  lockoutSeconds: number;
  authFailureDelayMs: number;
}

export type AuthResult = { ok: true; user: User } | { ok: false; reason: 'invalid' | 'locked' | 'disabled' };

// A fixed hash to verify against for unknown users, so timing does not reveal which exist.
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export class Authenticator {
  private failures = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly store: Store,
    private readonly limits: AuthLimits,
  ) {}

  isLocked(remoteIp: string): boolean {
    const entry = this.failures.get(remoteIp);
    if (!entry) return false;
    if (Date.now() - entry.since > this.limits.lockoutSeconds * 1000) {
      this.failures.delete(remoteIp);
      return false;
    }
    return entry.count >= this.limits.authFailuresPerIp;
  }

  /** Verifies an address and password. Store errors propagate (they are temporary failures). */
  async authenticate(address: string, password: string, remoteIp: string): Promise<AuthResult> {
    if (this.isLocked(remoteIp)) {
      await sleep(this.limits.authFailureDelayMs);
      return { ok: false, reason: 'locked' };
    }
    const user = await this.store.getUser(address.trim());
    const valid = await verifyPassword(password, user?.passwordHash ?? DUMMY_HASH);
    if (user && valid && !user.disabled) {
      this.failures.delete(remoteIp);
      return { ok: true, user };
    }
    this.recordFailure(remoteIp);
    await sleep(this.limits.authFailureDelayMs);
    return { ok: false, reason: user && valid ? 'disabled' : 'invalid' };
  }

  private recordFailure(remoteIp: string): void {
    const entry = this.failures.get(remoteIp);
    const now = Date.now();
    if (!entry || now - entry.since > this.limits.lockoutSeconds * 1000) this.failures.set(remoteIp, { count: 1, since: now });
    else entry.count++;
    if (this.failures.size > 100_000) this.failures.clear(); // bounded memory under a spray of addresses
  }
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}
