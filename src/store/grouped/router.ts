// Where a call on the grouped store goes (grouped-store.ts): the groups, opened and reopened,
// and the lookups that name a group for an id, an address or a blob hash.
import { sql, type Kysely } from 'kysely';
import { Directory, GROUP_ID_SPAN, groupIndexOf, MAX_GROUPS, type DirectoryDatabase, type GroupInfo, type UserPlacement } from '../directory.js';
import { redactPgUrl } from '../pg-pool.js';
import { PostgresStore, type PostgresOptions } from '../postgres.js';
import type { Database } from '../schema.js';
import { StoreError, type ChangeListener, type Store, type User } from '../types.js';

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

export const num = (v: number | string | bigint): number => Number(v);

export function guard(error: unknown): never {
  if (error instanceof StoreError) throw error;
  throw new StoreError('unavailable', `directory: ${(error as Error)?.message ?? error}`, { cause: error });
}

export async function dirCall<T>(fn: () => Promise<T>): Promise<T> {
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

export async function ensureDomain(db: Kysely<Database>, name: string): Promise<number> {
  await db.insertInto('domains').values({ name, created_at: Date.now() }).onConflict((oc) => oc.column('name').doNothing()).execute();
  const row = await db.selectFrom('domains').select('id').where('name', '=', name).executeTakeFirstOrThrow();
  return num(row.id);
}

/** The groups of a grouped store and how to find the one a call belongs to. */
export class GroupRouter {
  readonly directory: Directory;
  private readonly byName = new Map<string, Group>();
  private readonly byIndex = new Map<number, Group>();
  private readonly placements = new Map<string, { placement: UserPlacement; at: number }>();
  /** Which store returned a blob hash last (message listings, outbound entries). */
  readonly blobHomes = new Map<string, PostgresStore>();
  /** The grouped store's change feed: every group's events (attach subscribes to each). */
  readonly listeners = new Set<ChangeListener>();
  private reloading: Promise<void> | undefined;
  /** Groups that could not be opened: tried again on use, at most every GROUP_RETRY_MS. */
  private readonly down = new Map<string, { info: GroupInfo; retryAt: number; error: StoreError }>();

  protected constructor(
    readonly directoryStore: PostgresStore,
    private readonly directoryUrl: string,
    private readonly options: PostgresOptions,
  ) {
    this.directory = new Directory(directoryStore.kysely as unknown as Kysely<DirectoryDatabase>);
  }

  /** Opens the groups (a group that is down is tried again on use). */
  protected async openGroups(groups: GroupInfo[]): Promise<void> {
    try {
      // A group that is down does not keep the node from serving the others.
      for (const info of groups) {
        await this.attachOrMarkDown(info).catch((error: unknown) => {
          if (!(error instanceof StoreError && error.code === 'unavailable')) throw error;
        });
      }
    } catch (error) {
      await Promise.allSettled(this.stores.map((s) => s.close()));
      throw error;
    }
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
  async allUp(): Promise<void> {
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
  get stores(): PostgresStore[] {
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

  async mustLocate(address: string): Promise<Group> {
    const where = await this.locate(address);
    if (!where) throw new StoreError('not-found', `no user ${address.toLowerCase()}`);
    return where.group;
  }

  /** The current id of a user that may have moved since `userId` was read. */
  async currentUserId(userId: number): Promise<number | undefined> {
    const address = await dirCall(() => this.directory.forwarded(userId));
    if (!address) return undefined;
    this.forget(address);
    return (await this.findUser(address))?.user.id;
  }

  noteBlobs(store: PostgresStore, metas: readonly { blobHash: string }[]): void {
    if (this.blobHomes.size + metas.length > MAX_CACHED) this.blobHomes.clear();
    for (const meta of metas) this.blobHomes.set(meta.blobHash, store);
  }

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
}
