// The WebState role of the grouped store: a user's web sessions are in the user's group (they
// move with the user), found by asking every group; the audit log is the directory database's.
import type { WebState } from '../roles/web-state.js';
import { StoreError } from '../types.js';
import { forward } from './forward.js';
import { guard, type GroupRouter } from './router.js';

export function groupedWebState(r: GroupRouter): WebState {
  return {
    ...forward(['addAudit', 'listAudit'], () => r.directoryStore),
    ...forward(['deleteUserSessions'], (args) => r.storeForId(args[0] as number)),

    async createSession(session) {
      const store = await r.storeForId(session.userId);
      await r.allUp();
      // Session ids are unique over all groups (the browser's cookie does not name a group).
      const elsewhere = await Promise.all(
        r.groups
          .filter((g) => g.store !== store)
          .map((g) => g.store.kysely.selectFrom('web_sessions').select('id_hash').where('id_hash', '=', session.idHash).executeTakeFirst().catch(guard)),
      );
      if (elsewhere.some((row) => row !== undefined)) throw new StoreError('conflict', 'session id already in use');
      return store.createSession(session);
    },

    async getSession(idHash) {
      const found = (await Promise.all(r.groups.map((g) => g.store.getSession(idHash)))).find((s) => s !== undefined);
      // Not found while a group is down: maybe there, so a temporary error rather than a logout.
      if (!found) await r.allUp();
      return found;
    },

    async deleteSession(idHash) {
      await Promise.all(r.groups.map((g) => g.store.deleteSession(idHash)));
    },
  };
}
