// The Cluster role over Kysely (roles/cluster.ts): the membership's heartbeats.
import type { Cluster } from '../roles/cluster.js';
import type { LoadFigures, Member, MemberRequest, MemberState } from '../types.js';
import { num, type KyselyContext } from './context.js';

export class KyselyCluster implements Cluster {
  constructor(private readonly ctx: KyselyContext) {}

  async heartbeat(member: Omit<Member, 'requestedState' | 'beatAt'>): Promise<MemberRequest | null> {
    const values = {
      kind: member.kind,
      state: member.state,
      version: member.version,
      addresses: JSON.stringify(member.addresses),
      load: JSON.stringify(member.load),
      started_at: member.startedAt.getTime(),
      beat_at: Date.now(),
    };
    return this.ctx.write(async (tx) => {
      const row = await tx
        .insertInto('members')
        .values({ id: member.id, requested_state: null, ...values })
        .onConflict((oc) => oc.column('id').doUpdateSet(values))
        .returning('requested_state')
        .executeTakeFirstOrThrow();
      return row.requested_state as MemberRequest | null;
    });
  }

  async listMembers(): Promise<Member[]> {
    const rows = await this.ctx.read(() => this.ctx.db.selectFrom('members').selectAll().orderBy('kind').orderBy('id').execute());
    return rows.map((row) => ({
      id: row.id,
      kind: row.kind as Member['kind'],
      state: row.state as MemberState,
      requestedState: row.requested_state as MemberRequest | null,
      version: row.version,
      addresses: JSON.parse(row.addresses) as Record<string, string>,
      load: JSON.parse(row.load) as LoadFigures,
      startedAt: new Date(num(row.started_at)),
      beatAt: new Date(num(row.beat_at)),
    }));
  }

  async requestMemberState(id: string, state: MemberRequest | null): Promise<boolean> {
    return this.ctx.write(async (tx) => {
      const result = await tx.updateTable('members').set({ requested_state: state }).where('id', '=', id).executeTakeFirst();
      return Number(result.numUpdatedRows) > 0;
    });
  }

  async removeMember(id: string): Promise<void> {
    await this.ctx.write(async (tx) => {
      await tx.deleteFrom('members').where('id', '=', id).execute();
    });
  }
}
