// The Queue role: outbound mail waiting for remote delivery (leased to one worker at a time)
// and the DKIM keys it is signed with. Entries are written by Mailstore.deliver's `outbound`.
import type { OutboundEntry } from '../types.js';
import { roleMethods } from './methods.js';

export interface Queue {
  listOutbound(): Promise<OutboundEntry[]>;
  getOutbound(id: number): Promise<OutboundEntry | undefined>;
  deleteOutbound(id: number): Promise<boolean>;
  /** Hold, release or retry now ('queued' also makes the entry due at once). */
  setOutboundStatus(id: number, status: 'queued' | 'held'): Promise<boolean>;
  /**
   * Leases due entries to one worker: an entry leased by a live worker is never handed to
   * another, and a lease that runs out (its worker died) makes the entry due again.
   */
  leaseOutbound(owner: string, leaseMs: number, limit: number): Promise<OutboundEntry[]>;
  /** Ends a leased entry: delivered or bounced. False when the lease was lost meanwhile. */
  finishOutbound(id: number, owner: string): Promise<boolean>;
  /** Records a failed attempt and when to try again; marks the warning DSN as sent when asked. */
  deferOutbound(id: number, owner: string, error: string, nextAttemptAt: Date, warned?: boolean): Promise<boolean>;
  /** Gives a leased entry back untried, due again at `until` (a rate limit): no attempt counted. */
  postponeOutbound(id: number, owner: string, until: Date): Promise<boolean>;

  // DKIM keys per domain
  setDkimKey(domain: string, selector: string, privateKeyPem: string): Promise<void>;
  getDkimKey(domain: string): Promise<{ selector: string; privateKeyPem: string } | undefined>;
}

export const QUEUE_METHODS = roleMethods<Queue>()([
  'listOutbound',
  'getOutbound',
  'deleteOutbound',
  'setOutboundStatus',
  'leaseOutbound',
  'finishOutbound',
  'deferOutbound',
  'postponeOutbound',
  'setDkimKey',
  'getDkimKey',
]);
