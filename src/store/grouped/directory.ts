// The Directory role of the grouped store: domains in the directory database (copied into every
// group, whose users refer to them); each user in one group, found through the directory.
import type { Directory } from '../roles/directory.js';
import { StoreError, type Domain, type User } from '../types.js';
import { forward } from './forward.js';
import { dirCall, ensureDomain, type GroupRouter } from './router.js';

export function groupedDirectory(r: GroupRouter): Directory {
  return {
    ...forward(['getDomain', 'listDomains'], () => r.directoryStore),
    ...forward(['getUserById'], (args) => r.storeForId(args[0] as number)),
    ...forward(['setPassword', 'setDisplayName', 'setQuota', 'setUserDisabled', 'setUserAdmin'], async (args) => (await r.mustLocate(args[0] as string)).store),

    async addDomain(name: string): Promise<Domain> {
      const domain = await r.directoryStore.addDomain(name);
      await Promise.all(r.groups.filter((g) => g.store !== r.directoryStore).map((g) => dirCall(() => ensureDomain(g.store.kysely, domain.name))));
      return domain;
    },

    async removeDomain(name: string): Promise<void> {
      const lower = name.toLowerCase();
      const users = await dirCall(() => r.directory.countDomainUsers(lower));
      if (users > 0) throw new StoreError('conflict', `domain ${lower} still has ${users} user(s); remove them first`);
      await r.directoryStore.removeDomain(lower);
      const others = r.groups.filter((g) => g.store !== r.directoryStore);
      await Promise.all(others.map((g) => dirCall(() => g.store.kysely.deleteFrom('domains').where('name', '=', lower).execute())));
    },

    addUser: (input) => r.addUserIn(input),

    async getUser(address: string): Promise<User | undefined> {
      return (await r.findUser(address))?.user;
    },

    async listUsers(domain?: string): Promise<User[]> {
      await r.allUp();
      const [placements, lists] = await Promise.all([dirCall(() => r.directory.all()), Promise.all(r.groups.map((g) => g.store.listUsers(domain).then((users) => ({ g, users }))))]);
      // Rows of a move in progress (or an interrupted one) are not users yet.
      const users = lists.flatMap(({ g, users }) => users.filter((u) => placements.get(u.address)?.group === g.info.name));
      return users.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    },

    async removeUser(address: string): Promise<void> {
      const group = await r.mustLocate(address);
      let missing: unknown;
      try {
        await group.store.removeUser(address);
      } catch (error) {
        // Also when the group has no such user: an add interrupted between the directory entry
        // and the user row leaves an entry that only this frees.
        if (!(error instanceof StoreError && error.code === 'not-found')) throw error;
        missing = error;
      }
      await dirCall(() => r.directory.unbind(address));
      r.forget(address);
      if (missing) throw missing;
    },

    async searchUsers(query: { q?: string; offset?: number; limit?: number }): Promise<{ users: User[]; total: number }> {
      const q = query.q?.toLowerCase();
      const all = (await this.listUsers()).filter((u) => q === undefined || u.address.includes(q));
      const offset = query.offset ?? 0;
      return { users: all.slice(offset, offset + (query.limit ?? 100)), total: all.length };
    },
  };
}
