// The Directory role over Kysely: domains and users (roles/directory.ts).
import { sql, type Selectable } from 'kysely';
import type { Directory } from '../roles/directory.js';
import type { UserTable } from '../schema.js';
import { DEFAULT_MAILBOXES, StoreError, type Domain, type User } from '../types.js';
import { dropMailboxContents, insertMailbox, num, type KyselyContext } from './context.js';

function toUser(row: Selectable<UserTable>): User {
  return {
    id: num(row.id),
    address: row.address,
    domainId: num(row.domain_id),
    passwordHash: row.password_hash,
    quotaBytes: num(row.quota_bytes),
    usedBytes: num(row.used_bytes),
    isAdmin: num(row.is_admin) === 1,
    disabled: num(row.disabled) === 1,
    createdAt: new Date(num(row.created_at)),
    displayName: row.display_name,
  };
}

export class KyselyDirectory implements Directory {
  constructor(private readonly ctx: KyselyContext) {}

  async addDomain(name: string): Promise<Domain> {
    const lower = name.toLowerCase();
    return this.ctx.write(async (tx) => {
      const existing = await tx.selectFrom('domains').select('id').where('name', '=', lower).executeTakeFirst();
      if (existing) throw new StoreError('conflict', `domain ${lower} already exists`);
      const createdAt = Date.now();
      const row = await tx.insertInto('domains').values({ name: lower, created_at: createdAt }).returning('id').executeTakeFirstOrThrow();
      return { id: num(row.id), name: lower, createdAt: new Date(createdAt) };
    });
  }

  async getDomain(name: string): Promise<Domain | undefined> {
    const row = await this.ctx.read(() => this.ctx.db.selectFrom('domains').selectAll().where('name', '=', name.toLowerCase()).executeTakeFirst());
    return row && { id: num(row.id), name: row.name, createdAt: new Date(num(row.created_at)) };
  }

  async listDomains(): Promise<Domain[]> {
    const rows = await this.ctx.read(() => this.ctx.db.selectFrom('domains').selectAll().orderBy('name').execute());
    return rows.map((row) => ({ id: num(row.id), name: row.name, createdAt: new Date(num(row.created_at)) }));
  }

  async removeDomain(name: string): Promise<void> {
    const lower = name.toLowerCase();
    await this.ctx.write(async (tx) => {
      const domain = await tx.selectFrom('domains').select('id').where('name', '=', lower).executeTakeFirst();
      if (!domain) throw new StoreError('not-found', `no domain ${lower}`);
      const users = await tx.selectFrom('users').select(tx.fn.countAll().as('n')).where('domain_id', '=', domain.id).executeTakeFirstOrThrow();
      if (num(users.n as number) > 0) throw new StoreError('conflict', `domain ${lower} still has ${users.n} user(s); remove them first`);
      await tx.deleteFrom('domains').where('id', '=', domain.id).execute();
    });
  }

  // ---- users -------------------------------------------------------------

  async addUser(input: { address: string; passwordHash: string; quotaBytes?: number; isAdmin?: boolean }): Promise<User> {
    const address = input.address.toLowerCase();
    const at = address.lastIndexOf('@');
    if (at < 1 || at === address.length - 1) throw new StoreError('invalid', `not an address: ${input.address}`);
    const domainName = address.slice(at + 1);
    const id = await this.ctx.write(async (tx, changes) => {
      const domain = await tx.selectFrom('domains').select('id').where('name', '=', domainName).executeTakeFirst();
      if (!domain) throw new StoreError('not-found', `no domain ${domainName}; add it with \`quill domain add ${domainName}\``);
      const existing = await tx.selectFrom('users').select('id').where('address', '=', address).executeTakeFirst();
      if (existing) throw new StoreError('conflict', `user ${address} already exists`);
      const row = await tx
        .insertInto('users')
        .values({
          address,
          domain_id: num(domain.id),
          password_hash: input.passwordHash,
          quota_bytes: input.quotaBytes ?? 0,
          used_bytes: 0,
          is_admin: input.isAdmin ? 1 : 0,
          disabled: 0,
          created_at: Date.now(),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      const userId = num(row.id);
      for (const mailbox of DEFAULT_MAILBOXES) await insertMailbox(tx, userId, mailbox.name, mailbox.specialUse);
      await this.ctx.recordChange(tx, userId, null, 'mailbox', changes);
      return userId;
    });
    return (await this.getUserById(id))!;
  }

  async getUser(address: string): Promise<User | undefined> {
    const row = await this.ctx.read(() => this.ctx.db.selectFrom('users').selectAll().where('address', '=', address.toLowerCase()).executeTakeFirst());
    return row && toUser(row);
  }

  async getUserById(id: number): Promise<User | undefined> {
    const row = await this.ctx.read(() => this.ctx.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst());
    return row && toUser(row);
  }

  async listUsers(domain?: string): Promise<User[]> {
    const rows = await this.ctx.read(() => {
      let q = this.ctx.db.selectFrom('users').selectAll('users').orderBy('address');
      if (domain) q = q.innerJoin('domains', 'domains.id', 'users.domain_id').where('domains.name', '=', domain.toLowerCase());
      return q.execute();
    });
    return rows.map(toUser);
  }

  async removeUser(address: string): Promise<void> {
    const lower = address.toLowerCase();
    await this.ctx.write(async (tx) => {
      const user = await tx.selectFrom('users').select('id').where('address', '=', lower).executeTakeFirst();
      if (!user) throw new StoreError('not-found', `no user ${lower}`);
      const mailboxes = await tx.selectFrom('mailboxes').select('id').where('user_id', '=', user.id).execute();
      for (const mailbox of mailboxes) await dropMailboxContents(this.ctx, tx, num(mailbox.id));
      await tx.deleteFrom('mailboxes').where('user_id', '=', user.id).execute();
      await tx.deleteFrom('users').where('id', '=', user.id).execute();
    });
  }

  async setPassword(address: string, passwordHash: string): Promise<void> {
    await this.updateUser(address, { password_hash: passwordHash });
  }

  async setQuota(address: string, quotaBytes: number): Promise<void> {
    await this.updateUser(address, { quota_bytes: quotaBytes });
  }

  async setUserDisabled(address: string, disabled: boolean): Promise<void> {
    await this.updateUser(address, { disabled: disabled ? 1 : 0 });
  }

  async setUserAdmin(address: string, isAdmin: boolean): Promise<void> {
    await this.updateUser(address, { is_admin: isAdmin ? 1 : 0 });
  }

  async setDisplayName(address: string, displayName: string): Promise<void> {
    await this.updateUser(address, { display_name: displayName });
  }

  async searchUsers(query: { q?: string; offset?: number; limit?: number }): Promise<{ users: User[]; total: number }> {
    // Addresses are stored lower-case, so a lower-case LIKE is case-insensitive on both backends.
    const pattern = query.q ? `%${query.q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%` : undefined;
    return this.ctx.read(async () => {
      let base = this.ctx.db.selectFrom('users');
      if (pattern !== undefined) base = base.where(sql<boolean>`address like ${pattern} escape '\\'`);
      const count = await base.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
      const rows = await base
        .selectAll()
        .orderBy('address')
        .limit(query.limit ?? 100)
        .offset(query.offset ?? 0)
        .execute();
      return { users: rows.map(toUser), total: num(count.n as number) };
    });
  }

  private async updateUser(address: string, values: { password_hash?: string; quota_bytes?: number; disabled?: number; is_admin?: number; display_name?: string }): Promise<void> {
    await this.ctx.write(async (tx) => {
      const result = await tx.updateTable('users').set(values).where('address', '=', address.toLowerCase()).executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) throw new StoreError('not-found', `no user ${address.toLowerCase()}`);
    });
  }
}
