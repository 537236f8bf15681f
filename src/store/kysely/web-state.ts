// The WebState role over Kysely (roles/web-state.ts): browser sessions and the audit log.
import type { Selectable } from 'kysely';
import type { WebState } from '../roles/web-state.js';
import type { AuditLogTable } from '../schema.js';
import type { AuditEntry, WebSession } from '../types.js';
import { num, type KyselyContext } from './context.js';

function toAudit(row: Selectable<AuditLogTable>): AuditEntry {
  return {
    id: num(row.id),
    at: new Date(num(row.at)),
    actor: row.actor,
    action: row.action,
    target: row.target,
    detail: row.detail === null ? null : (JSON.parse(row.detail) as Record<string, unknown>),
    node: row.node,
  };
}

export class KyselyWebState implements WebState {
  constructor(private readonly ctx: KyselyContext) {}

  // ---- web sessions ----------------------------------------------------------

  async createSession(session: Omit<WebSession, 'createdAt'>): Promise<void> {
    const now = Date.now();
    await this.ctx.write(async (tx) => {
      // The user's expired sessions go as a new one comes: the table stays small without a sweeper.
      await tx.deleteFrom('web_sessions').where('user_id', '=', session.userId).where('expires_at', '<=', now).execute();
      await tx
        .insertInto('web_sessions')
        .values({ id_hash: session.idHash, user_id: session.userId, csrf_token: session.csrfToken, created_at: now, expires_at: session.expiresAt.getTime() })
        .execute();
    });
  }

  async getSession(idHash: string): Promise<WebSession | undefined> {
    const row = await this.ctx.read(() =>
      this.ctx.db.selectFrom('web_sessions').selectAll().where('id_hash', '=', idHash).where('expires_at', '>', Date.now()).executeTakeFirst(),
    );
    return (
      row && {
        idHash: row.id_hash,
        userId: num(row.user_id),
        csrfToken: row.csrf_token,
        createdAt: new Date(num(row.created_at)),
        expiresAt: new Date(num(row.expires_at)),
      }
    );
  }

  async deleteSession(idHash: string): Promise<void> {
    await this.ctx.write(async (tx) => {
      await tx.deleteFrom('web_sessions').where('id_hash', '=', idHash).execute();
    });
  }

  async deleteUserSessions(userId: number, keepIdHash?: string): Promise<void> {
    await this.ctx.write(async (tx) => {
      let query = tx.deleteFrom('web_sessions').where('user_id', '=', userId);
      if (keepIdHash !== undefined) query = query.where('id_hash', '!=', keepIdHash);
      await query.execute();
    });
  }

  // ---- audit log -------------------------------------------------------------

  async addAudit(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<AuditEntry> {
    const at = Date.now();
    const detail = entry.detail === null ? null : JSON.stringify(entry.detail);
    const id = await this.ctx.write(async (tx) => {
      const row = await tx
        .insertInto('audit_log')
        .values({ at, actor: entry.actor, action: entry.action, target: entry.target, detail, node: entry.node })
        .returning('id')
        .executeTakeFirstOrThrow();
      return num(row.id);
    });
    return { ...entry, id, at: new Date(at) };
  }

  async listAudit(query: { limit: number; before?: number }): Promise<AuditEntry[]> {
    const rows = await this.ctx.read(() => {
      let q = this.ctx.db.selectFrom('audit_log').selectAll().orderBy('id', 'desc').limit(query.limit);
      if (query.before !== undefined) q = q.where('id', '<', query.before);
      return q.execute();
    });
    return rows.map(toAudit);
  }
}
