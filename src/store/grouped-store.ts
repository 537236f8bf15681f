// The Store over several PostgreSQL groups (docs/postgresql.md "Several groups"). The store URL
// names the directory database; each group is a replicated PostgreSQL group of its own with the
// same schema. Users and their mail live in one group; the directory keeps what is shared.
//   - by user address: the directory (cached) names the group;
//   - by id (user, mailbox, ...): each group's sequences start at index * 2^40, so an id names
//     its group by arithmetic, with no directory lookup;
//   - by blob hash: the group a listing returned it from, else whichever group has the bytes;
//   - domains, the outbound queue, DKIM keys and the membership: the directory database;
//   - web sessions: the user's group (they go with the user), found by asking every group.
// deliver() splits the targets per group; each group commits its own part (its txns table
// makes a replay with the same txnId idempotent per group), and the call resolves only when
// every part has committed.
// The routing is per role: grouped/<role>.ts says where each method of a role goes (most only
// need the right store: grouped/forward.ts); grouped/router.ts finds the groups.
import type { Kysely } from 'kysely';
import { Directory, MAX_GROUPS, type DirectoryDatabase, type GroupInfo } from './directory.js';
import { expose } from './kysely/context.js';
import { redactPgUrl } from './pg-pool.js';
import { PostgresStore, type PostgresOptions } from './postgres.js';
import { BLOBS_METHODS } from './roles/blobs.js';
import { CLUSTER_METHODS } from './roles/cluster.js';
import { DIRECTORY_METHODS } from './roles/directory.js';
import { DRIVE_METHODS } from './roles/drive.js';
import { MAILSTORE_METHODS } from './roles/mailstore.js';
import { QUEUE_METHODS } from './roles/queue.js';
import { WEB_STATE_METHODS } from './roles/web-state.js';
import { StoreError, type Blobs, type ChangeListener, type Cluster, type Directory as DirectoryRole, type Drive, type Mailstore, type Queue, type Store, type User, type WebState } from './types.js';
import { groupedBlobs } from './grouped/blobs.js';
import { groupedDirectory } from './grouped/directory.js';
import { forward } from './grouped/forward.js';
import { groupedMailstore } from './grouped/mailstore.js';
import { groupedQueue } from './grouped/queue.js';
import { dirCall, ensureDomain, GroupRouter, num, prepareGroup } from './grouped/router.js';
import { groupedWebState } from './grouped/web-state.js';

export { prepareGroup, type Group, type GroupLoad } from './grouped/router.js';

/**
 * The store for a postgres:// URL: the plain PostgresStore while its directory lists no groups
 * (one group, as before), else the grouped store over the groups it lists.
 */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<Store> {
  const directoryStore = await PostgresStore.open(url, options);
  let groups: GroupInfo[];
  try {
    groups = await new Directory(directoryStore.kysely as unknown as Kysely<DirectoryDatabase>).listGroups();
  } catch (error) {
    await directoryStore.close().catch(() => undefined);
    throw new StoreError('unavailable', `cannot read the groups of ${directoryStore.location}: ${(error as Error).message}`, { cause: error });
  }
  if (groups.length === 0) return directoryStore;
  return GroupedStoreImpl.open(directoryStore, url, groups, options);
}

/** The grouped store: every Store method, plus what managing groups needs. */
export type GroupedStore = GroupedStoreImpl & Store;

export function isGroupedStore(store: Store): store is GroupedStore {
  return store instanceof GroupedStoreImpl;
}

/** The role methods the grouped store has from its role objects (see the constructor). */
interface GroupedStoreImpl extends DirectoryRole, Omit<Mailstore, 'onChange' | 'syncChanges'>, Blobs, Queue, Cluster, WebState, Drive {}

class GroupedStoreImpl extends GroupRouter implements Store {
  readonly kind = 'postgres' as const;

  private constructor(directoryStore: PostgresStore, directoryUrl: string, options: PostgresOptions) {
    super(directoryStore, directoryUrl, options);
    expose(this, groupedDirectory(this), DIRECTORY_METHODS);
    expose(this, groupedMailstore(this), MAILSTORE_METHODS);
    expose(this, groupedBlobs(this), BLOBS_METHODS);
    expose(this, groupedQueue(this), QUEUE_METHODS);
    expose(this, forward(CLUSTER_METHODS, () => this.directoryStore), CLUSTER_METHODS);
    expose(this, groupedWebState(this), WEB_STATE_METHODS);
    // The drive is its user's: the first argument is the user id.
    expose(this, forward(DRIVE_METHODS, (args) => this.storeForId(args[0] as number), ['readDriveFile']), DRIVE_METHODS);
  }

  static async open(directoryStore: PostgresStore, url: string, groups: GroupInfo[], options: PostgresOptions): Promise<GroupedStore> {
    const store = new GroupedStoreImpl(directoryStore, url, options);
    await store.openGroups(groups);
    return store as unknown as GroupedStore;
  }

  async ping(): Promise<void> {
    await Promise.all(this.stores.map((s) => s.ping()));
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.stores.map((s) => s.close()));
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async status(): Promise<Awaited<ReturnType<Store['status']>>> {
    const parts = this.groups.map((g) => ({ name: g.info.name, store: g.store }));
    if (!parts.some((p) => p.store === this.directoryStore)) parts.unshift({ name: 'directory', store: this.directoryStore });
    const statuses = await Promise.all(parts.map(async (p) => ({ name: p.name, status: await p.store.status() })));
    return { kind: 'postgres', groups: statuses.flatMap(({ name, status }) => (status.kind === 'postgres' ? status.groups.map((g) => ({ ...g, name })) : [])) };
  }
}

const GROUP_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/i;

/**
 * `quill group add`: registers a database as the next group of the directory at
 * `directoryUrl` (creating the database and its schema when missing). The first group may be
 * the directory's own database and may hold users already (a single-group store growing):
 * they are entered in the directory. Later groups must start empty.
 */
export async function addGroup(directoryUrl: string, name: string, url: string, options: PostgresOptions = {}): Promise<GroupInfo> {
  if (!GROUP_NAME.test(name)) throw new StoreError('invalid', `a group name is letters, digits, - and _ (up to 63): ${name}`);
  const directoryStore = await PostgresStore.open(directoryUrl, { ...options, listen: false });
  try {
    const directory = new Directory(directoryStore.kysely as unknown as Kysely<DirectoryDatabase>);
    const groups = await dirCall(() => directory.listGroups());
    if (groups.some((g) => g.name === name)) throw new StoreError('conflict', `group ${name} already exists`);
    if (groups.some((g) => g.url === url)) throw new StoreError('conflict', `${redactPgUrl(url)} is a group already`);
    const index = groups.length === 0 ? 0 : Math.max(...groups.map((g) => g.index)) + 1;
    if (index >= MAX_GROUPS) throw new StoreError('invalid', `at most ${MAX_GROUPS} groups`);
    const own = url === directoryUrl;
    if (!own) await PostgresStore.createDatabase(url, options);
    const store = own ? directoryStore : await PostgresStore.open(url, { ...options, listen: false });
    try {
      await dirCall(async () => {
        await prepareGroup(store.kysely, index, name);
        // Domains are known everywhere: users in a group refer to them.
        for (const domain of await directoryStore.listDomains()) await ensureDomain(store.kysely, domain.name);
        for (const domain of await store.listDomains()) await ensureDomain(directoryStore.kysely, domain.name);
        const users = await store.kysely.selectFrom('users').select(['id', 'address']).execute();
        for (const user of users) {
          await directory.db
            .insertInto('user_groups')
            .values({ address: user.address, group_name: name, user_id: num(user.id) })
            .onConflict((oc) => oc.column('address').doNothing())
            .execute();
        }
        await directory.insertGroup({ name, url, index });
      });
    } finally {
      if (!own) await store.close();
    }
    return { name, url, index };
  } finally {
    await directoryStore.close();
  }
}

/** `quill user add [--group NAME]`: the named group (a grouped store only), else where the store puts new users. */
export function addUserToGroup(store: Store, input: Parameters<Store['addUser']>[0], group?: string): Promise<User> {
  if (group === undefined) return store.addUser(input);
  if (!isGroupedStore(store)) throw new StoreError('invalid', '--group needs a store of several groups (quill group add)');
  return store.addUserIn(input, group);
}
