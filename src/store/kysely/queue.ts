// The Queue role over Kysely (roles/queue.ts): the outbound queue, leased to workers, and DKIM keys.
import { sql, type Selectable } from 'kysely';
import type { Queue } from '../roles/queue.js';
import type { OutboundTable } from '../schema.js';
import type { OutboundEntry } from '../types.js';
import { num, releaseBlobs, type KyselyContext } from './context.js';

function toOutbound(row: Selectable<OutboundTable> & { size: number | string }): OutboundEntry {
  return {
    id: num(row.id),
    sender: row.sender,
    recipient: row.recipient,
    domain: row.domain,
    blobHash: row.blob_hash,
    size: num(row.size),
    status: row.status as OutboundEntry['status'],
    attempts: num(row.attempts),
    createdAt: new Date(num(row.created_at)),
    nextAttemptAt: new Date(num(row.next_attempt_at)),
    lastError: row.last_error,
    warned: num(row.warned) === 1,
  };
}

export class KyselyQueue implements Queue {
  constructor(private readonly ctx: KyselyContext) {}

  private outboundQuery() {
    return this.ctx.db.selectFrom('outbound').innerJoin('blobs', 'blobs.hash', 'outbound.blob_hash').selectAll('outbound').select('blobs.size as size');
  }

  async listOutbound(): Promise<OutboundEntry[]> {
    const rows = await this.ctx.read(() => this.outboundQuery().orderBy('outbound.id').execute());
    return rows.map(toOutbound);
  }

  async getOutbound(id: number): Promise<OutboundEntry | undefined> {
    const row = await this.ctx.read(() => this.outboundQuery().where('outbound.id', '=', id).executeTakeFirst());
    return row && toOutbound(row);
  }

  async deleteOutbound(id: number): Promise<boolean> {
    return this.ctx.write(async (tx) => {
      const row = await tx.selectFrom('outbound').select('blob_hash').where('id', '=', id).executeTakeFirst();
      if (!row) return false;
      await tx.deleteFrom('outbound').where('id', '=', id).execute();
      await releaseBlobs(this.ctx, tx, [row.blob_hash]);
      return true;
    });
  }

  async setOutboundStatus(id: number, status: 'queued' | 'held'): Promise<boolean> {
    return this.ctx.write(async (tx) => {
      const values = status === 'queued' ? { status, next_attempt_at: Date.now() } : { status };
      const result = await tx.updateTable('outbound').set(values).where('id', '=', id).executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    });
  }

  async leaseOutbound(owner: string, leaseMs: number, limit: number): Promise<OutboundEntry[]> {
    const now = Date.now();
    const ids = await this.ctx.write(async (tx) => {
      const due = await tx
        .selectFrom('outbound')
        .select('id')
        .where('status', '=', 'queued')
        .where('next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
        .orderBy('next_attempt_at')
        .limit(limit)
        .execute();
      const claimed: number[] = [];
      for (const { id } of due) {
        // The lease condition is checked again by the UPDATE itself, so two workers racing
        // for one entry cannot both win it (on PostgreSQL the row lock serialises them).
        const result = await tx
          .updateTable('outbound')
          .set({ lease_owner: owner, lease_until: now + leaseMs })
          .where('id', '=', id)
          .where('status', '=', 'queued')
          .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) === 1) claimed.push(num(id));
      }
      return claimed;
    });
    if (ids.length === 0) return [];
    const rows = await this.ctx.read(() => this.outboundQuery().where('outbound.id', 'in', ids).orderBy('outbound.id').execute());
    return rows.map(toOutbound);
  }

  private finishing: { id: number; owner: string; resolve: (done: boolean) => void; reject: (error: unknown) => void }[] = [];

  /** Finishes that arrive together share one commit (as deliveries do): one fsync for many sends. */
  finishOutbound(id: number, owner: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.finishing.push({ id, owner, resolve, reject });
      if (this.finishing.length === 1) setImmediate(() => void this.flushFinishes());
    });
  }

  private async flushFinishes(): Promise<void> {
    const batch = this.finishing;
    this.finishing = [];
    try {
      const results = await this.ctx.write(async (tx) => {
        const out: boolean[] = [];
        for (const { id, owner } of batch) {
          const row = await tx.selectFrom('outbound').select('blob_hash').where('id', '=', id).where('lease_owner', '=', owner).executeTakeFirst();
          if (!row) {
            out.push(false);
            continue;
          }
          await tx.deleteFrom('outbound').where('id', '=', id).execute();
          await releaseBlobs(this.ctx, tx, [row.blob_hash]);
          out.push(true);
        }
        return out;
      });
      batch.forEach((item, i) => item.resolve(results[i]!));
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
  }

  async deferOutbound(id: number, owner: string, error: string, nextAttemptAt: Date, warned?: boolean): Promise<boolean> {
    return this.ctx.write(async (tx) => {
      const values = {
        attempts: sql<number>`attempts + 1`,
        last_error: error.slice(0, 1000),
        next_attempt_at: nextAttemptAt.getTime(),
        lease_owner: null,
        lease_until: null,
        ...(warned ? { warned: 1 } : {}),
      };
      const result = await tx.updateTable('outbound').set(values).where('id', '=', id).where('lease_owner', '=', owner).executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    });
  }

  async postponeOutbound(id: number, owner: string, until: Date): Promise<boolean> {
    return this.ctx.write(async (tx) => {
      const values = { next_attempt_at: until.getTime(), lease_owner: null, lease_until: null };
      const result = await tx.updateTable('outbound').set(values).where('id', '=', id).where('lease_owner', '=', owner).executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    });
  }

  // ---- DKIM keys -------------------------------------------------------------

  async setDkimKey(domain: string, selector: string, privateKeyPem: string): Promise<void> {
    const values = { selector, private_key: privateKeyPem, created_at: Date.now() };
    await this.ctx.write(async (tx) => {
      await tx
        .insertInto('dkim_keys')
        .values({ domain: domain.toLowerCase(), ...values })
        .onConflict((oc) => oc.column('domain').doUpdateSet(values))
        .execute();
    });
  }

  async getDkimKey(domain: string): Promise<{ selector: string; privateKeyPem: string } | undefined> {
    const row = await this.ctx.read(() => this.ctx.db.selectFrom('dkim_keys').selectAll().where('domain', '=', domain.toLowerCase()).executeTakeFirst());
    return row && { selector: row.selector, privateKeyPem: row.private_key };
  }
}
