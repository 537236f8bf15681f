// The directory of a store spread over several PostgreSQL groups (docs/postgresql.md "Several
// groups"): which groups there are and which group holds each user. It lives in the database
// the store URL names (a small replicated group of its own, or the first group), next to the
// data every group shares: domains, the outbound queue, DKIM keys and the membership.
import { sql, type Kysely, type Migration } from 'kysely';
import type { Database } from './schema.js';
import { StoreError } from './types.js';

/** Ids of group i are i * GROUP_ID_SPAN + 1 and up: a mailbox id names its group by arithmetic. */
export const GROUP_ID_SPAN = 2 ** 40;
/** Ids stay below 2^53 (JS numbers): at most 8192 groups. */
export const MAX_GROUPS = 2 ** 13;

export function groupIndexOf(id: number): number {
  return Math.floor(id / GROUP_ID_SPAN);
}

export interface GroupTable {
  name: string;
  url: string;
  idx: number;
  created_at: number;
}

export interface UserGroupTable {
  address: string;
  group_name: string;
  user_id: number;
  /** Set while a move to this group is under way: the user may already be there only. */
  moving_to: string | null;
}

/** Old user ids of moved users, so a delivery resolved before a move finds the user again. */
export interface UserForwardTable {
  old_user_id: number;
  address: string;
  created_at: number;
}

export interface DirectoryDatabase extends Database {
  groups: GroupTable;
  user_groups: UserGroupTable;
  user_forwards: UserForwardTable;
}

/** '007_groups': the directory's tables (created in every database, used in the directory's). */
export function migration007Groups(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('groups')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('idx', 'integer', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('user_groups')
        .addColumn('address', 'text', (c) => c.primaryKey())
        .addColumn('group_name', 'text', (c) => c.notNull())
        .addColumn('user_id', 'bigint', (c) => c.notNull())
        .addColumn('moving_to', 'text')
        .execute();
      await db.schema.createIndex('user_groups_group').on('user_groups').column('group_name').execute();
      await db.schema
        .createTable('user_forwards')
        .addColumn('old_user_id', 'bigint', (c) => c.primaryKey())
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  };
}

export interface GroupInfo {
  name: string;
  /** Connection URL of the group (multi-host for a replicated group). */
  url: string;
  /** Position of the group's id range (see GROUP_ID_SPAN); 0 for the first group. */
  index: number;
}

export interface UserPlacement {
  group: string;
  userId: number;
  /** The target of a move under way. */
  movingTo?: string;
}

const num = (v: number | string | bigint): number => Number(v);

/** Queries on the directory tables. */
export class Directory {
  constructor(readonly db: Kysely<DirectoryDatabase>) {}

  async listGroups(): Promise<GroupInfo[]> {
    const rows = await this.db.selectFrom('groups').selectAll().orderBy('idx').execute();
    return rows.map((r) => ({ name: r.name, url: r.url, index: num(r.idx) }));
  }

  async insertGroup(group: GroupInfo): Promise<void> {
    try {
      await this.db.insertInto('groups').values({ name: group.name, url: group.url, idx: group.index, created_at: Date.now() }).execute();
    } catch (error) {
      if (/duplicate key/i.test((error as Error).message)) throw new StoreError('conflict', `group ${group.name} (or index ${group.index}) already exists`);
      throw error;
    }
  }

  async lookup(address: string): Promise<UserPlacement | undefined> {
    const row = await this.db.selectFrom('user_groups').select(['group_name', 'user_id', 'moving_to']).where('address', '=', address.toLowerCase()).executeTakeFirst();
    return row && { group: row.group_name, userId: num(row.user_id), ...(row.moving_to ? { movingTo: row.moving_to } : {}) };
  }

  /**
   * Marks the start of a move (before the source deletes the user) or its end without a switch.
   * The old id forwards to the address from now on, so deliveries resolved before find the user.
   */
  async setMoving(address: string, from: UserPlacement, target: string | null): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      const result = await tx.updateTable('user_groups').set({ moving_to: target }).where('address', '=', address).where('group_name', '=', from.group).executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) throw new StoreError('conflict', `${address} is no longer in group ${from.group}`);
      if (target === null) return;
      await tx
        .insertInto('user_forwards')
        .values({ old_user_id: from.userId, address, created_at: Date.now() })
        .onConflict((oc) => oc.column('old_user_id').doUpdateSet({ address, created_at: Date.now() }))
        .execute();
    });
  }

  async all(): Promise<Map<string, UserPlacement>> {
    const rows = await this.db.selectFrom('user_groups').selectAll().execute();
    return new Map(rows.map((r) => [r.address, { group: r.group_name, userId: num(r.user_id) }]));
  }

  /** Claims an address for a group; conflict when the address is taken. */
  async bind(address: string, group: string, userId: number): Promise<void> {
    const row = await this.db
      .insertInto('user_groups')
      .values({ address: address.toLowerCase(), group_name: group, user_id: userId })
      .onConflict((oc) => oc.column('address').doNothing())
      .returning('address')
      .executeTakeFirst();
    if (!row) throw new StoreError('conflict', `user ${address.toLowerCase()} already exists`);
  }

  async setUserId(address: string, userId: number): Promise<void> {
    await this.db.updateTable('user_groups').set({ user_id: userId }).where('address', '=', address.toLowerCase()).execute();
  }

  async unbind(address: string): Promise<void> {
    await this.db.deleteFrom('user_groups').where('address', '=', address.toLowerCase()).execute();
  }

  /** The address a moved user's old id belonged to. */
  async forwarded(oldUserId: number): Promise<string | undefined> {
    const row = await this.db.selectFrom('user_forwards').select('address').where('old_user_id', '=', oldUserId).executeTakeFirst();
    return row?.address;
  }

  /** Users per group. */
  async userCounts(): Promise<Map<string, number>> {
    const rows = await this.db.selectFrom('user_groups').select(['group_name', sql<number>`count(*)`.as('n')]).groupBy('group_name').execute();
    return new Map(rows.map((r) => [r.group_name, num(r.n)]));
  }

  /** Users of a domain, over all groups. */
  async countDomainUsers(domain: string): Promise<number> {
    const row = await this.db
      .selectFrom('user_groups')
      .select(sql<number>`count(*)`.as('n'))
      .where('address', 'like', `%@${domain.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}`)
      .executeTakeFirstOrThrow();
    return num(row.n);
  }

  /**
   * The switch of a user move, in one directory transaction: the address now points at the
   * target group, and the old id forwards to the address.
   */
  async switchUser(address: string, from: UserPlacement, to: UserPlacement): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      const result = await tx
        .updateTable('user_groups')
        .set({ group_name: to.group, user_id: to.userId, moving_to: null })
        .where('address', '=', address)
        .where('group_name', '=', from.group)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) throw new StoreError('conflict', `${address} is no longer in group ${from.group}`);
      await tx
        .insertInto('user_forwards')
        .values({ old_user_id: from.userId, address, created_at: Date.now() })
        .onConflict((oc) => oc.column('old_user_id').doUpdateSet({ address, created_at: Date.now() }))
        .execute();
    });
  }
}
