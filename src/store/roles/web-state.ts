// The WebState role: browser sessions (in the store, so any node serves any session behind the
// gateway) and the audit log of operator actions (issue 9).
import type { AuditEntry, WebSession } from '../types.js';
import { roleMethods } from './methods.js';

export interface WebState {
  createSession(session: Omit<WebSession, 'createdAt'>): Promise<void>;
  /** Undefined when unknown or expired. */
  getSession(idHash: string): Promise<WebSession | undefined>;
  deleteSession(idHash: string): Promise<void>;
  /** Ends a user's sessions, all but `keepIdHash` (after a password change). */
  deleteUserSessions(userId: number, keepIdHash?: string): Promise<void>;

  addAudit(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<AuditEntry>;
  /** Newest first; `before` is an entry id, for the next page. */
  listAudit(query: { limit: number; before?: number }): Promise<AuditEntry[]>;
}

export const WEB_STATE_METHODS = roleMethods<WebState>()(['createSession', 'getSession', 'deleteSession', 'deleteUserSessions', 'addAudit', 'listAudit']);
