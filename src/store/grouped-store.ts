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
import { sql, type Kysely } from 'kysely';
import { Directory, GROUP_ID_SPAN, groupIndexOf, MAX_GROUPS, type DirectoryDatabase, type GroupInfo, type UserPlacement } from './directory.js';
import { KyselyBlobs } from './kysely/blobs.js';
import { KyselyCluster } from './kysely/cluster.js';
import { KyselyDirectory } from './kysely/directory.js';
import { KyselyDrive } from './kysely/drive.js';
import { KyselyMailstore } from './kysely/mailstore.js';
import { KyselyQueue } from './kysely/queue.js';
import { KyselyWebState } from './kysely/web-state.js';
import { BLOBS_METHODS } from './roles/blobs.js';
import { CLUSTER_METHODS } from './roles/cluster.js';
import { DIRECTORY_METHODS } from './roles/directory.js';
import { DRIVE_METHODS } from './roles/drive.js';
import { MAILSTORE_METHODS } from './roles/mailstore.js';
import { QUEUE_METHODS } from './roles/queue.js';
import { WEB_STATE_METHODS } from './roles/web-state.js';
import { redactPgUrl } from './pg-pool.js';
import { PostgresStore, type PostgresOptions } from './postgres.js';
import type { Database } from './schema.js';
import { StoreError, type ChangeListener, type DeliveryOptions, type DeliveryResult, type DeliveryTarget, type Domain, type MessageMeta, type Store, type User } from './types.js';

export interface Group {
  info: GroupInfo;
  store: PostgresStore;
}

/** What `quill group list` shows of a group. */
export interface GroupLoad extends GroupInfo {
  users: number;
  usedBytes: number;
  databaseBytes: number;
  /** Why the group cannot be reached, when it cannot (its figures are then 0). */
  down?: string;
}

/** How often a group that could not be opened is tried again (on use). */
const GROUP_RETRY_MS = 1000;

/** How long a node trusts its cached address -> group entry (a stale one is noticed anyway). */
const PLACEMENT_TTL_MS = 30_000;
const MAX_CACHED = 100_000;

const num = (v: number | string | bigint): number => Number(v);

/** The batched blob reads of the Store (typed here so this file does not depend on their arrival order). */
interface BlobBatches {
  getBlobs(hashes: string[]): Promise<Map<string, Buffer>>;
  getBlobMetas(hashes: string[]): Promise<Map<string, string>>;
  setBlobMetas(entries: [hash: string, meta: string][]): Promise<void>;
}
const batches = (store: PostgresStore) => store as unknown as BlobBatches;

function guard(error: unknown): never {
  if (error instanceof StoreError) throw error;
  throw new StoreError('unavailable', `directory: ${(error as Error)?.message ?? error}`, { cause: error });
}

async function dirCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    guard(error);
  }
}

/**
 * Makes a database ready to be group `index`: every sequence starts above index * 2^40 (also
 * those of tables a later migration adds, so this runs at every open), and the database
 * remembers its index, so a wrong URL in the directory is refused instead of mixing groups.
 */
export async function prepareGroup(db: Kysely<Database>, index: number, name: string): Promise<void> {
  const row = await db.selectFrom('meta').select('value').where('key', '=', 'group_index').executeTakeFirst();
  if (row && Number(row.value) !== index) {
    throw new StoreError('invalid', `the database of group ${name} is group number ${row.value}, but the directory says ${index}`);
  }
  if (index > 0) {
    const base = index * GROUP_ID_SPAN;
    if (!row) {
      const user = await db.selectFrom('users').select('id').where('id', '<', base).limit(1).executeTakeFirst();
      if (user) throw new StoreError('invalid', `the database of group ${name} already holds users; only the first group may start with data`);
    }
    await sql`select setval(format('%I.%I', schemaname, sequencename)::regclass, ${base}::bigint)
              from pg_sequences where schemaname = current_schema() and coalesce(last_value, 0) < ${base}`.execute(db);
  }
  if (!row) {
    await db.insertInto('meta').values({ key: 'group_index', value: String(index) }).onConflict((oc) => oc.column('key').doNothing()).execute();
  }
}

async function ensureDomain(db: Kysely<Database>, name: string): Promise<number> {
  await db.insertInto('domains').values({ name, created_at: Date.now() }).onConflict((oc) => oc.column('name').doNothing()).execute();
  const row = await db.selectFrom('domains').select('id').where('name', '=', name).executeTakeFirstOrThrow();
  return num(row.id);
}

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

class GroupedStoreImpl implements Partial<Store> {
  readonly kind = 'postgres' as const;
  readonly directory: Directory;
  private readonly byName = new Map<string, Group>();
  private readonly byIndex = new Map<number, Group>();
  private readonly placements = new Map<string, { placement: UserPlacement; at: number }>();
  /** Which store returned a blob hash last (message listings, outbound entries). */
  private readonly blobHomes = new Map<string, PostgresStore>();
  private readonly listeners = new Set<ChangeListener>();
  private reloading: Promise<void> | undefined;
  /** Groups that could not be opened: tried again on use, at most every GROUP_RETRY_MS. */
  private readonly down = new Map<string, { info: GroupInfo; retryAt: number; error: StoreError }>();

  private constructor(
    readonly directoryStore: PostgresStore,
    private readonly directoryUrl: string,
    private readonly options: PostgresOptions,
  ) {
    this.directory = new Directory(directoryStore.kysely as unknown as Kysely<DirectoryDatabase>);
  }

  static async open(directoryStore: PostgresStore, url: string, groups: GroupInfo[], options: PostgresOptions): Promise<GroupedStore> {
    const store = new GroupedStoreImpl(directoryStore, url, options);
    try {
      // A group that is down does not keep the node from serving the others.
      for (const info of groups) {
        await store.attachOrMarkDown(info).catch((error: unknown) => {
          if (!(error instanceof StoreError && error.code === 'unavailable')) throw error;
        });
      }
    } catch (error) {
      await store.close().catch(() => undefined);
      throw error;
    }
    return store as unknown as GroupedStore;
  }

  private async attach(info: GroupInfo): Promise<Group> {
    const known = this.byName.get(info.name);
    if (known) return known;
    const own = info.url === this.directoryUrl;
    let store: PostgresStore;
    try {
      store = own ? this.directoryStore : await PostgresStore.open(info.url, this.options);
    } catch (error) {
      throw new StoreError('unavailable', `group ${info.name}: ${(error as Error).message}`, { cause: error });
    }
    try {
      await dirCall(() => prepareGroup(store.kysely, info.index, info.name));
    } catch (error) {
      if (!own) await store.close().catch(() => undefined);
      throw error;
    }
    const group = { info, store };
    this.byName.set(info.name, group);
    this.byIndex.set(info.index, group);
    store.onChange((event) => {
      for (const listener of this.listeners) listener(event);
    });
    return group;
  }

  /** Opens a group; one that cannot be reached is remembered as down (and the error thrown). */
  private async attachOrMarkDown(info: GroupInfo): Promise<Group> {
    try {
      const group = await this.attach(info);
      this.down.delete(info.name);
      return group;
    } catch (error) {
      if (!(error instanceof StoreError && error.code === 'unavailable')) throw error;
      this.down.set(info.name, { info, retryAt: Date.now() + GROUP_RETRY_MS, error });
      throw error;
    }
  }

  /** A down group, opened again if its retry time has come; else its error. */
  private async revive(name: string): Promise<Group> {
    const entry = this.down.get(name)!;
    if (Date.now() < entry.retryAt) throw entry.error;
    return this.attachOrMarkDown(entry.info);
  }

  /** For answers that need every group (all users, a session id): unavailable while one is down. */
  private async allUp(): Promise<void> {
    for (const name of [...this.down.keys()]) await this.revive(name);
  }

  /** Reads the group list again (a group added while this node runs). */
  private async reload(): Promise<void> {
    this.reloading ??= (async () => {
      try {
        for (const info of await dirCall(() => this.directory.listGroups())) await this.attachOrMarkDown(info).catch(() => undefined);
      } finally {
        this.reloading = undefined;
      }
    })();
    return this.reloading;
  }

  get groups(): Group[] {
    return [...this.byIndex.values()].sort((a, b) => a.info.index - b.info.index);
  }

  /** Every distinct store, the directory's first. */
  private get stores(): PostgresStore[] {
    return [...new Set<PostgresStore>([this.directoryStore, ...this.groups.map((g) => g.store)])];
  }

  async group(name: string): Promise<Group> {
    let group = this.byName.get(name);
    if (!group && this.down.has(name)) return this.revive(name);
    if (!group) {
      await this.reload();
      group = this.byName.get(name);
    }
    if (!group) throw new StoreError('not-found', `no group ${name}`);
    return group;
  }

  /** The group an id (of a user, mailbox, ...) belongs to: by arithmetic. */
  async groupForId(id: number): Promise<Group> {
    const index = groupIndexOf(id);
    let group = this.byIndex.get(index);
    const down = !group && [...this.down.values()].find((d) => d.info.index === index);
    if (down) return this.revive(down.info.name);
    if (!group && index < MAX_GROUPS) {
      await this.reload();
      group = this.byIndex.get(index);
    }
    if (!group) throw new StoreError('not-found', `no group holds id ${id}`);
    return group;
  }

  async storeForId(id: number): Promise<PostgresStore> {
    return (await this.groupForId(id)).store;
  }

  /** Where a user lives: the cached directory entry, or the directory itself when `fresh`. */
  async locate(address: string, fresh = false): Promise<{ group: Group; userId: number; movingTo?: string } | undefined> {
    const key = address.toLowerCase();
    const cached = this.placements.get(key);
    let placement = !fresh && cached && Date.now() - cached.at < PLACEMENT_TTL_MS ? cached.placement : undefined;
    if (!placement) {
      placement = await dirCall(() => this.directory.lookup(key));
      if (!placement) {
        this.placements.delete(key);
        return undefined;
      }
      if (this.placements.size >= MAX_CACHED) this.placements.clear();
      this.placements.set(key, { placement, at: Date.now() });
    }
    return { group: await this.group(placement.group), userId: placement.userId, ...(placement.movingTo ? { movingTo: placement.movingTo } : {}) };
  }

  /**
   * The user and their group, also when a cached entry is stale (the user moved) and in the
   * moment of a move when the source has let the user go but the directory is not switched yet.
   */
  async findUser(address: string): Promise<{ group: Group; user: User } | undefined> {
    const where = await this.locate(address);
    if (!where) return undefined;
    const user = await where.group.store.getUser(address);
    if (user) return { group: where.group, user };
    const fresh = await this.locate(address, true);
    if (!fresh) return undefined;
    for (const group of [fresh.group, ...(fresh.movingTo ? [await this.group(fresh.movingTo)] : [])]) {
      if (group === where.group) continue; // asked already
      const found = await group.store.getUser(address);
      if (found) return { group, user: found };
    }
    return undefined;
  }

  forget(address: string): void {
    this.placements.delete(address.toLowerCase());
  }

  private async mustLocate(address: string): Promise<Group> {
    const where = await this.locate(address);
    if (!where) throw new StoreError('not-found', `no user ${address.toLowerCase()}`);
    return where.group;
  }

  /** The current id of a user that may have moved since `userId` was read. */
  private async currentUserId(userId: number): Promise<number | undefined> {
    const address = await dirCall(() => this.directory.forwarded(userId));
    if (!address) return undefined;
    this.forget(address);
    return (await this.findUser(address))?.user.id;
  }

  private noteBlobs(store: PostgresStore, metas: readonly { blobHash: string }[]): void {
    if (this.blobHomes.size + metas.length > MAX_CACHED) this.blobHomes.clear();
    for (const meta of metas) this.blobHomes.set(meta.blobHash, store);
  }

  // ---- the store as a whole -----------------------------------------------------

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

  // ---- domains: the directory, copied into every group (users refer to them) ---

  async addDomain(name: string): Promise<Domain> {
    const domain = await this.directoryStore.addDomain(name);
    await Promise.all(this.groups.filter((g) => g.store !== this.directoryStore).map((g) => dirCall(() => ensureDomain(g.store.kysely, domain.name))));
    return domain;
  }

  getDomain(...args: Parameters<Store['getDomain']>) {
    return this.directoryStore.getDomain(...args);
  }

  listDomains(...args: Parameters<Store['listDomains']>) {
    return this.directoryStore.listDomains(...args);
  }

  async removeDomain(name: string): Promise<void> {
    const lower = name.toLowerCase();
    const users = await dirCall(() => this.directory.countDomainUsers(lower));
    if (users > 0) throw new StoreError('conflict', `domain ${lower} still has ${users} user(s); remove them first`);
    await this.directoryStore.removeDomain(lower);
    const others = this.groups.filter((g) => g.store !== this.directoryStore);
    await Promise.all(others.map((g) => dirCall(() => g.store.kysely.deleteFrom('domains').where('name', '=', lower).execute())));
  }

  // ---- users ----------------------------------------------------------------------

  /** Group loads for placement and `quill group list`. */
  async loads(): Promise<GroupLoad[]> {
    const counts = await dirCall(() => this.directory.userCounts());
    await this.allUp().catch(() => undefined);
    const infos = [...this.groups.map((g) => g.info), ...[...this.down.values()].map((d) => d.info)].sort((a, b) => a.index - b.index);
    return Promise.all(
      infos.map(async (info) => {
        const base = { ...info, url: redactPgUrl(info.url), users: counts.get(info.name) ?? 0 };
        const group = this.byName.get(info.name);
        try {
          if (!group) throw this.down.get(info.name)?.error ?? new StoreError('unavailable', 'not open');
          const row = await dirCall(() =>
            sql<{ used: number; size: number }>`select coalesce((select sum(used_bytes) from users), 0) as used, pg_database_size(current_database()) as size`.execute(group.store.kysely),
          );
          return { ...base, usedBytes: num(row.rows[0]!.used), databaseBytes: num(row.rows[0]!.size) };
        } catch (error) {
          return { ...base, usedBytes: 0, databaseBytes: 0, down: (error as Error).message };
        }
      }),
    );
  }

  /** New users go to the group with the fewest users, then the fewest bytes, then the first; never to one that is down. */
  async leastLoaded(): Promise<Group> {
    const loads = (await this.loads()).filter((l) => !l.down);
    if (loads.length === 0) throw new StoreError('unavailable', 'no group can be reached');
    loads.sort((a, b) => a.users - b.users || a.usedBytes - b.usedBytes || a.index - b.index);
    return this.group(loads[0]!.name);
  }

  addUser(input: Parameters<Store['addUser']>[0]): Promise<User> {
    return this.addUserIn(input);
  }

  /** Adds a user to the named group, or to the least-loaded one. */
  async addUserIn(input: Parameters<Store['addUser']>[0], groupName?: string): Promise<User> {
    const address = input.address.toLowerCase();
    const at = address.lastIndexOf('@');
    if (at < 1 || at === address.length - 1) throw new StoreError('invalid', `not an address: ${input.address}`);
    const domain = address.slice(at + 1);
    if (!(await this.directoryStore.getDomain(domain))) throw new StoreError('not-found', `no domain ${domain}; add it with \`quill domain add ${domain}\``);
    const group = groupName ? await this.group(groupName) : await this.leastLoaded();
    // The directory entry first: its primary key decides between two nodes adding the same address.
    await dirCall(() => this.directory.bind(address, group.info.name, 0));
    try {
      await dirCall(() => ensureDomain(group.store.kysely, domain));
      let user: User;
      try {
        user = await group.store.addUser(input);
      } catch (error) {
        if (!(error instanceof StoreError && error.code === 'conflict')) throw error;
        // The directory said the address was free, so this row is what an interrupted move left behind.
        await group.store.removeUser(address);
        user = await group.store.addUser(input);
      }
      await dirCall(() => this.directory.setUserId(address, user.id));
      this.placements.set(address, { placement: { group: group.info.name, userId: user.id }, at: Date.now() });
      return user;
    } catch (error) {
      await this.directory.unbind(address).catch(() => undefined);
      throw error;
    }
  }

  async getUser(address: string): Promise<User | undefined> {
    return (await this.findUser(address))?.user;
  }

  async getUserById(...args: Parameters<Store['getUserById']>) {
    return (await this.storeForId(args[0])).getUserById(...args);
  }

  async listUsers(domain?: string): Promise<User[]> {
    await this.allUp();
    const [placements, lists] = await Promise.all([dirCall(() => this.directory.all()), Promise.all(this.groups.map((g) => g.store.listUsers(domain).then((users) => ({ g, users }))))]);
    // Rows of a move in progress (or an interrupted one) are not users yet.
    const users = lists.flatMap(({ g, users }) => users.filter((u) => placements.get(u.address)?.group === g.info.name));
    return users.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  }

  async removeUser(address: string): Promise<void> {
    const group = await this.mustLocate(address);
    let missing: unknown;
    try {
      await group.store.removeUser(address);
    } catch (error) {
      // Also when the group has no such user: an add interrupted between the directory entry
      // and the user row leaves an entry that only this frees.
      if (!(error instanceof StoreError && error.code === 'not-found')) throw error;
      missing = error;
    }
    await dirCall(() => this.directory.unbind(address));
    this.forget(address);
    if (missing) throw missing;
  }

  async setPassword(...args: Parameters<Store['setPassword']>) {
    return (await this.mustLocate(args[0])).store.setPassword(...args);
  }

  async setDisplayName(...args: Parameters<Store['setDisplayName']>) {
    return (await this.mustLocate(args[0])).store.setDisplayName(...args);
  }

  async setQuota(...args: Parameters<Store['setQuota']>) {
    return (await this.mustLocate(args[0])).store.setQuota(...args);
  }

  // ---- mailboxes and messages: by user id or mailbox id ------------------------------

  async listMailboxes(...args: Parameters<Store['listMailboxes']>) {
    return (await this.storeForId(args[0])).listMailboxes(...args);
  }

  async getMailbox(...args: Parameters<Store['getMailbox']>) {
    return (await this.storeForId(args[0])).getMailbox(...args);
  }

  async getMailboxById(...args: Parameters<Store['getMailboxById']>) {
    return (await this.storeForId(args[0])).getMailboxById(...args);
  }

  async createMailbox(...args: Parameters<Store['createMailbox']>) {
    return (await this.storeForId(args[0])).createMailbox(...args);
  }

  async deleteMailbox(...args: Parameters<Store['deleteMailbox']>) {
    return (await this.storeForId(args[0])).deleteMailbox(...args);
  }

  async renameMailbox(...args: Parameters<Store['renameMailbox']>) {
    return (await this.storeForId(args[0])).renameMailbox(...args);
  }

  async setSubscribed(...args: Parameters<Store['setSubscribed']>) {
    return (await this.storeForId(args[0])).setSubscribed(...args);
  }

  async listLostSubscriptions(...args: Parameters<Store['listLostSubscriptions']>) {
    return (await this.storeForId(args[0])).listLostSubscriptions(...args);
  }

  async dropLostSubscription(...args: Parameters<Store['dropLostSubscription']>) {
    return (await this.storeForId(args[0])).dropLostSubscription(...args);
  }

  async mailboxStatus(...args: Parameters<Store['mailboxStatus']>) {
    return (await this.storeForId(args[0])).mailboxStatus(...args);
  }

  async claimRecent(...args: Parameters<Store['claimRecent']>) {
    return (await this.storeForId(args[0])).claimRecent(...args);
  }

  async append(...args: Parameters<Store['append']>) {
    return (await this.storeForId(args[0])).append(...args);
  }

  async listMessages(...args: Parameters<Store['listMessages']>): Promise<MessageMeta[]> {
    const store = await this.storeForId(args[0]);
    const metas = await store.listMessages(...args);
    this.noteBlobs(store, metas);
    return metas;
  }

  async listUids(...args: Parameters<Store['listUids']>) {
    return (await this.storeForId(args[0])).listUids(...args);
  }

  async searchText(...args: Parameters<Store['searchText']>) {
    return (await this.storeForId(args[0])).searchText(...args);
  }

  async getMessage(...args: Parameters<Store['getMessage']>) {
    const store = await this.storeForId(args[0]);
    const meta = await store.getMessage(...args);
    if (meta) this.noteBlobs(store, [meta]);
    return meta;
  }

  async setFlags(...args: Parameters<Store['setFlags']>) {
    return (await this.storeForId(args[0])).setFlags(...args);
  }

  async expunge(...args: Parameters<Store['expunge']>) {
    return (await this.storeForId(args[0])).expunge(...args);
  }

  async expungedSince(...args: Parameters<Store['expungedSince']>) {
    return (await this.storeForId(args[0])).expungedSince(...args);
  }

  private async sameGroup(fromMailboxId: number, toMailboxId: number): Promise<Store> {
    if (groupIndexOf(fromMailboxId) !== groupIndexOf(toMailboxId)) throw new StoreError('invalid', 'cannot copy between mailboxes of different groups');
    return this.storeForId(fromMailboxId);
  }

  async copy(...args: Parameters<Store['copy']>) {
    return (await this.sameGroup(args[0], args[2])).copy(...args);
  }

  async move(...args: Parameters<Store['move']>) {
    return (await this.sameGroup(args[0], args[2])).move(...args);
  }

  // ---- blobs: content-addressed, so any group holding a hash has the same bytes -----------

  private async hasBlob(store: PostgresStore, hash: string): Promise<boolean> {
    const row = await store.kysely.selectFrom('blobs').select('hash').where('hash', '=', hash).executeTakeFirst().catch(guard);
    return row !== undefined;
  }

  private async blobStore(hash: string): Promise<PostgresStore | undefined> {
    const home = this.blobHomes.get(hash);
    if (home && (await this.hasBlob(home, hash))) return home;
    const holders = await Promise.all(this.stores.map(async (store) => ((await this.hasBlob(store, hash)) ? store : undefined)));
    const store = holders.find((s) => s !== undefined);
    if (store) this.blobHomes.set(hash, store);
    else await this.allUp();
    return store;
  }

  async getBlob(hash: string): Promise<Buffer | undefined> {
    const home = this.blobHomes.get(hash);
    const blob = home && (await home.getBlob(hash));
    if (blob) return blob;
    return (await this.blobStore(hash))?.getBlob(hash);
  }

  async getBlobMeta(hash: string): Promise<string | null> {
    const store = await this.blobStore(hash);
    return store ? store.getBlobMeta(hash) : null;
  }

  async setBlobMeta(hash: string, meta: string): Promise<void> {
    const store = await this.blobStore(hash);
    if (store) await store.setBlobMeta(hash, meta);
  }

  /** Splits hashes by the store that returned them; unknown ones are asked of every store. */
  private async blobBatch<T>(hashes: string[], read: (store: PostgresStore, hashes: string[]) => Promise<Map<string, T>>): Promise<Map<string, T>> {
    const out = new Map<string, T>();
    const byHome = new Map<PostgresStore, string[]>();
    const unique = [...new Set(hashes)];
    for (const hash of unique) {
      const home = this.blobHomes.get(hash);
      if (home) byHome.set(home, [...(byHome.get(home) ?? []), hash]);
    }
    await Promise.all([...byHome].map(async ([store, part]) => (await read(store, part)).forEach((v, k) => out.set(k, v))));
    const rest = unique.filter((h) => !out.has(h));
    if (rest.length > 0) {
      const found = await Promise.all(this.stores.map(async (store) => ({ store, map: await read(store, rest) })));
      for (const { store, map } of found) {
        for (const [hash, value] of map) {
          if (out.has(hash)) continue;
          out.set(hash, value);
          this.blobHomes.set(hash, store);
        }
      }
    }
    return out;
  }

  getBlobs(hashes: string[]): Promise<Map<string, Buffer>> {
    return this.blobBatch(hashes, (store, part) => batches(store).getBlobs(part));
  }

  getBlobMetas(hashes: string[]): Promise<Map<string, string>> {
    return this.blobBatch(hashes, (store, part) => batches(store).getBlobMetas(part));
  }

  async setBlobMetas(entries: [hash: string, meta: string][]): Promise<void> {
    const byHome = new Map<PostgresStore, [string, string][]>();
    for (const entry of entries) {
      const home = this.blobHomes.get(entry[0]);
      for (const store of home ? [home] : this.stores) byHome.set(store, [...(byHome.get(store) ?? []), entry]);
    }
    await Promise.all([...byHome].map(([store, part]) => batches(store).setBlobMetas(part)));
  }

  // ---- delivery: one part per group ------------------------------------------------------

  async deliver(raw: Buffer, targets: DeliveryTarget[], options: DeliveryOptions = {}): Promise<DeliveryResult> {
    // One internal date for every copy, whichever group stores it.
    const base: DeliveryOptions = { internalDate: options.internalDate ?? new Date() };
    if (options.txnId) base.txnId = options.txnId;
    const result: DeliveryResult = { stored: false, copies: [], outboundIds: [] };
    let outboundDone = !options.outbound || options.outbound.recipients.length === 0;
    let pending = targets;
    for (let attempt = 1; ; attempt++) {
      const parts = new Map<PostgresStore, DeliveryTarget[]>();
      for (const target of pending) {
        const { store } = await this.groupForId(target.userId);
        parts.set(store, [...(parts.get(store) ?? []), target]);
      }
      // Outbound entries live in the directory: with the directory's group part if it has one.
      if (!outboundDone && !parts.has(this.directoryStore)) parts.set(this.directoryStore, []);
      const settled = await Promise.all(
        [...parts].map(async ([store, part]) => {
          const withOutbound = !outboundDone && store === this.directoryStore;
          const partOptions: DeliveryOptions = withOutbound ? { ...base, outbound: options.outbound } : base;
          try {
            return { part, withOutbound, done: await store.deliver(raw, part, partOptions), error: undefined };
          } catch (error) {
            return { part, withOutbound, done: undefined, error };
          }
        }),
      );
      const failed: { part: DeliveryTarget[]; error: unknown }[] = [];
      for (const outcome of settled) {
        if (!outcome.done) {
          failed.push(outcome);
          continue;
        }
        result.stored ||= outcome.done.stored;
        result.copies.push(...outcome.done.copies);
        result.outboundIds.push(...outcome.done.outboundIds);
        if (outcome.withOutbound) outboundDone = true;
      }
      if (failed.length === 0) return result;
      // A part for a user who moved meanwhile fails with not-found (its mailboxes are gone from
      // the old group): send it again to where the user is now. Any other failure is the answer.
      const other = failed.find((f) => !(f.error instanceof StoreError && f.error.code === 'not-found'));
      if (other || attempt >= 3) throw (other ?? failed[0]!).error;
      const retry: DeliveryTarget[] = [];
      let moved = false;
      for (const { part } of failed) {
        for (const target of part) {
          const now = await this.currentUserId(target.userId);
          if (now !== undefined && now !== target.userId) moved = true;
          retry.push({ ...target, userId: now ?? target.userId });
        }
      }
      if (!moved) throw failed[0]!.error;
      pending = retry;
    }
  }

  // ---- the outbound queue, DKIM keys and the membership: the directory ------------------

  async listOutbound(...args: Parameters<Store['listOutbound']>) {
    const entries = await this.directoryStore.listOutbound(...args);
    this.noteBlobs(this.directoryStore, entries);
    return entries;
  }

  async getOutbound(...args: Parameters<Store['getOutbound']>) {
    const entry = await this.directoryStore.getOutbound(...args);
    if (entry) this.noteBlobs(this.directoryStore, [entry]);
    return entry;
  }

  deleteOutbound(...args: Parameters<Store['deleteOutbound']>) {
    return this.directoryStore.deleteOutbound(...args);
  }

  setOutboundStatus(...args: Parameters<Store['setOutboundStatus']>) {
    return this.directoryStore.setOutboundStatus(...args);
  }

  async leaseOutbound(...args: Parameters<Store['leaseOutbound']>) {
    const entries = await this.directoryStore.leaseOutbound(...args);
    this.noteBlobs(this.directoryStore, entries);
    return entries;
  }

  finishOutbound(...args: Parameters<Store['finishOutbound']>) {
    return this.directoryStore.finishOutbound(...args);
  }

  deferOutbound(...args: Parameters<Store['deferOutbound']>) {
    return this.directoryStore.deferOutbound(...args);
  }

  postponeOutbound(...args: Parameters<Store['postponeOutbound']>) {
    return this.directoryStore.postponeOutbound(...args);
  }

  setDkimKey(...args: Parameters<Store['setDkimKey']>) {
    return this.directoryStore.setDkimKey(...args);
  }

  getDkimKey(...args: Parameters<Store['getDkimKey']>) {
    return this.directoryStore.getDkimKey(...args);
  }

  heartbeat(...args: Parameters<Store['heartbeat']>) {
    return this.directoryStore.heartbeat(...args);
  }

  listMembers(...args: Parameters<Store['listMembers']>) {
    return this.directoryStore.listMembers(...args);
  }

  requestMemberState(...args: Parameters<Store['requestMemberState']>) {
    return this.directoryStore.requestMemberState(...args);
  }

  removeMember(...args: Parameters<Store['removeMember']>) {
    return this.directoryStore.removeMember(...args);
  }

  /** Where a call keyed by `key` goes: an id's group, an address's group, else the directory. */
  async route(key: unknown): Promise<PostgresStore> {
    if (typeof key === 'number') return this.storeForId(key);
    if (typeof key === 'string' && key.includes('@')) return (await this.mustLocate(key)).store;
    return this.directoryStore;
  }

  async searchUsers(query: { q?: string; offset?: number; limit?: number }): Promise<{ users: User[]; total: number }> {
    const q = query.q?.toLowerCase();
    const all = (await this.listUsers()).filter((u) => q === undefined || u.address.includes(q));
    const offset = query.offset ?? 0;
    return { users: all.slice(offset, offset + (query.limit ?? 100)), total: all.length };
  }

  async status(): Promise<Awaited<ReturnType<Store['status']>>> {
    const parts = this.groups.map((g) => ({ name: g.info.name, store: g.store }));
    if (!parts.some((p) => p.store === this.directoryStore)) parts.unshift({ name: 'directory', store: this.directoryStore });
    const statuses = await Promise.all(parts.map(async (p) => ({ name: p.name, status: await p.store.status() })));
    return { kind: 'postgres', groups: statuses.flatMap(({ name, status }) => (status.kind === 'postgres' ? status.groups.map((g) => ({ ...g, name })) : [])) };
  }

  // ---- web sessions: in the user's group ---------------------------------------------------

  async createSession(...args: Parameters<Store['createSession']>) {
    const [session] = args;
    const store = await this.storeForId(session.userId);
    await this.allUp();
    // Session ids are unique over all groups (the browser's cookie does not name a group).
    const elsewhere = await Promise.all(
      this.groups
        .filter((g) => g.store !== store)
        .map((g) => g.store.kysely.selectFrom('web_sessions').select('id_hash').where('id_hash', '=', session.idHash).executeTakeFirst().catch(guard)),
    );
    if (elsewhere.some((row) => row !== undefined)) throw new StoreError('conflict', 'session id already in use');
    return store.createSession(...args);
  }

  async getSession(...args: Parameters<Store['getSession']>) {
    const found = (await Promise.all(this.groups.map((g) => g.store.getSession(...args)))).find((s) => s !== undefined);
    // Not found while a group is down: maybe there, so a temporary error rather than a logout.
    if (!found) await this.allUp();
    return found;
  }

  async deleteSession(...args: Parameters<Store['deleteSession']>) {
    await Promise.all(this.groups.map((g) => g.store.deleteSession(...args)));
  }

  async deleteUserSessions(...args: Parameters<Store['deleteUserSessions']>) {
    return (await this.storeForId(args[0])).deleteUserSessions(...args);
  }
}

// Store methods this file does not name (added to the interface later) route by their first
// argument: a number is an id (of a user, mailbox, drive node, ...) and names its group by
// arithmetic; an address names its user's group; anything else goes to the directory database.
const roleImpls = [KyselyDirectory, KyselyMailstore, KyselyBlobs, KyselyQueue, KyselyCluster, KyselyWebState, KyselyDrive].map((impl) => impl.prototype as object);
for (const name of [...DIRECTORY_METHODS, ...MAILSTORE_METHODS, ...BLOBS_METHODS, ...QUEUE_METHODS, ...CLUSTER_METHODS, ...WEB_STATE_METHODS, ...DRIVE_METHODS] as string[]) {
  if (Object.prototype.hasOwnProperty.call(GroupedStoreImpl.prototype, name)) continue;
  const original = roleImpls.map((proto) => Object.getOwnPropertyDescriptor(proto, name)?.value as unknown).find((m) => m !== undefined);
  if (typeof original !== 'function') continue;
  const call = (target: Store, args: unknown[]) => (target as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!(...args);
  const value =
    original.constructor.name === 'AsyncGeneratorFunction'
      ? async function* (this: GroupedStoreImpl, ...args: unknown[]): AsyncGenerator<unknown> {
          yield* call(await this.route(args[0]), args) as AsyncGenerator<unknown>;
        }
      : async function (this: GroupedStoreImpl, ...args: unknown[]): Promise<unknown> {
          return call(await this.route(args[0]), args);
        };
  Object.defineProperty(GroupedStoreImpl.prototype, name, { configurable: true, writable: true, value });
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
