// The Drive role over Kysely (roles/drive.ts): folders and files, uploaded in chunks.
import { randomUUID } from 'node:crypto';
import { sql, type Selectable } from 'kysely';
import type { Drive } from '../roles/drive.js';
import type { DriveNodeTable, DriveUploadTable } from '../schema.js';
import { DRIVE_UPLOAD_TTL_MS, StoreError, driveNameProblem, type DriveNode, type DriveUpload } from '../types.js';
import { num, type KyselyContext, type Tx } from './context.js';

/** The root folder's parent_id; the API and the Drive interface say null. */
const ROOT = 0;

export class KyselyDrive implements Drive {
  constructor(private readonly ctx: KyselyContext) {}

  private driveNode(row: Selectable<DriveNodeTable>): DriveNode {
    return {
      id: num(row.id),
      userId: num(row.user_id),
      parentId: num(row.parent_id) === ROOT ? null : num(row.parent_id),
      name: row.name,
      kind: row.kind as DriveNode['kind'],
      size: num(row.size),
      contentType: row.content_type,
      contentId: row.content_id === null ? null : num(row.content_id),
      createdAt: new Date(num(row.created_at)),
      updatedAt: new Date(num(row.updated_at)),
    };
  }

  private driveUpload(row: Selectable<DriveUploadTable>): DriveUpload {
    return {
      id: row.id,
      userId: num(row.user_id),
      parentId: num(row.parent_id) === ROOT ? null : num(row.parent_id),
      name: row.name,
      contentType: row.content_type,
      size: num(row.size),
      received: num(row.received),
      expiresAt: new Date(num(row.expires_at)),
    };
  }

  private checkDriveName(name: string): void {
    const problem = driveNameProblem(name);
    if (problem) throw new StoreError('invalid', problem);
  }

  /** The parent_id of a folder of the user (the root when null); 'not-found' otherwise. */
  private async driveFolder(tx: Tx, userId: number, folderId: number | null): Promise<number> {
    if (folderId === null || folderId === ROOT) return ROOT;
    const row = await tx.selectFrom('drive_nodes').select('kind').where('id', '=', folderId).where('user_id', '=', userId).executeTakeFirst();
    if (!row || row.kind !== 'folder') throw new StoreError('not-found', 'no such folder');
    return folderId;
  }

  private async driveNameFree(tx: Tx, userId: number, parentId: number, name: string, exceptId?: number): Promise<void> {
    let query = tx.selectFrom('drive_nodes').select('id').where('user_id', '=', userId).where('parent_id', '=', parentId).where('name', '=', name);
    if (exceptId !== undefined) query = query.where('id', '!=', exceptId);
    if (await query.executeTakeFirst()) throw new StoreError('conflict', `${name} already exists in that folder`);
  }

  /**
   * The name itself when free, else "name (2).ext", "name (3).ext", ...: for an upload whose
   * name was taken while it was under way (two uploads of one file).
   */
  private async freeDriveName(tx: Tx, userId: number, parentId: number, name: string): Promise<string> {
    const dot = name.lastIndexOf('.');
    const [base, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
    for (let n = 1; n < 100; n++) {
      const candidate = n === 1 ? name : `${base} (${n})${ext}`;
      if (driveNameProblem(candidate)) break;
      const taken = await tx.selectFrom('drive_nodes').select('id').where('user_id', '=', userId).where('parent_id', '=', parentId).where('name', '=', candidate).executeTakeFirst();
      if (!taken) return candidate;
    }
    throw new StoreError('conflict', `${name} already exists in that folder`);
  }

  /** Charges bytes to a user in one conditional UPDATE, so concurrent writers cannot overshoot the quota. */
  private async chargeDrive(tx: Tx, userId: number, bytes: number): Promise<void> {
    if (bytes <= 0) return;
    const result = await tx
      .updateTable('users')
      .set({ used_bytes: sql`used_bytes + ${bytes}` })
      .where('id', '=', userId)
      .where((eb) => eb.or([eb('quota_bytes', '=', 0), eb(sql<number>`used_bytes + ${bytes}`, '<=', eb.ref('quota_bytes'))]))
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) throw new StoreError('quota', 'quota exceeded: the drive and mail together are full');
  }

  private async releaseDrive(tx: Tx, userId: number, bytes: number): Promise<void> {
    if (bytes > 0) await tx.updateTable('users').set({ used_bytes: sql`used_bytes - ${bytes}` }).where('id', '=', userId).execute();
  }

  private async nextContentId(tx: Tx): Promise<number> {
    const row = await tx
      .insertInto('meta')
      .values({ key: 'drive_content', value: '1' })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value: sql`cast(cast(meta.value as bigint) + 1 as text)` }))
      .returning('value')
      .executeTakeFirstOrThrow();
    return Number(row.value);
  }

  private async dropChunks(tx: Tx, contentIds: number[]): Promise<void> {
    for (let i = 0; i < contentIds.length; i += 500) {
      await tx.deleteFrom('drive_chunks').where('content_id', 'in', contentIds.slice(i, i + 500)).execute();
    }
  }

  /** Removes an unfinished upload and its chunks, and gives its bytes back. */
  private async dropUpload(tx: Tx, row: Selectable<DriveUploadTable>): Promise<void> {
    await this.dropChunks(tx, [num(row.content_id)]);
    await tx.deleteFrom('drive_uploads').where('id', '=', row.id).execute();
    await this.releaseDrive(tx, num(row.user_id), num(row.received));
  }

  async listDrive(userId: number, parentId: number | null): Promise<DriveNode[]> {
    const rows = await this.ctx.read(async () => {
      const folder = await this.driveFolder(this.ctx.db, userId, parentId);
      return this.ctx.db.selectFrom('drive_nodes').selectAll().where('user_id', '=', userId).where('parent_id', '=', folder).orderBy('kind', 'desc').orderBy('name').execute();
    });
    return rows.map((row) => this.driveNode(row));
  }

  async getDriveNode(userId: number, id: number): Promise<DriveNode | undefined> {
    const row = await this.ctx.read(() => this.ctx.db.selectFrom('drive_nodes').selectAll().where('id', '=', id).where('user_id', '=', userId).executeTakeFirst());
    return row && this.driveNode(row);
  }

  async createDriveFolder(userId: number, parentId: number | null, name: string): Promise<DriveNode> {
    this.checkDriveName(name);
    const row = await this.ctx.write(async (tx) => {
      const parent = await this.driveFolder(tx, userId, parentId);
      await this.driveNameFree(tx, userId, parent, name);
      const now = Date.now();
      return tx
        .insertInto('drive_nodes')
        .values({ user_id: userId, parent_id: parent, name, kind: 'folder', size: 0, content_type: null, content_id: null, created_at: now, updated_at: now })
        .returningAll()
        .executeTakeFirstOrThrow();
    });
    return this.driveNode(row);
  }

  async updateDriveNode(userId: number, id: number, change: { name?: string; parentId?: number | null }): Promise<DriveNode> {
    if (change.name !== undefined) this.checkDriveName(change.name);
    const row = await this.ctx.write(async (tx) => {
      const node = await tx.selectFrom('drive_nodes').selectAll().where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
      if (!node) throw new StoreError('not-found', 'no such file or folder');
      const parent = change.parentId === undefined ? num(node.parent_id) : await this.driveFolder(tx, userId, change.parentId);
      if (node.kind === 'folder') {
        // Walk up from the new parent: meeting the node itself would make a cycle.
        for (let at = parent; at !== ROOT; ) {
          if (at === id) throw new StoreError('invalid', 'a folder cannot move into itself');
          const up = await tx.selectFrom('drive_nodes').select('parent_id').where('id', '=', at).executeTakeFirstOrThrow();
          at = num(up.parent_id);
        }
      }
      const name = change.name ?? node.name;
      await this.driveNameFree(tx, userId, parent, name, id);
      return tx.updateTable('drive_nodes').set({ name, parent_id: parent, updated_at: Date.now() }).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
    });
    return this.driveNode(row);
  }

  async deleteDriveNode(userId: number, id: number): Promise<number> {
    return this.ctx.write(async (tx) => {
      const node = await tx.selectFrom('drive_nodes').select(['id', 'kind', 'size', 'content_id']).where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
      if (!node) throw new StoreError('not-found', 'no such file or folder');
      const ids: number[] = [num(node.id)];
      const contentIds: number[] = node.content_id === null ? [] : [num(node.content_id)];
      let freed = num(node.size);
      // Breadth first through the folder's subtree.
      for (let level = node.kind === 'folder' ? [num(node.id)] : []; level.length > 0; ) {
        const next: number[] = [];
        for (let i = 0; i < level.length; i += 500) {
          const children = await tx.selectFrom('drive_nodes').select(['id', 'kind', 'size', 'content_id']).where('user_id', '=', userId).where('parent_id', 'in', level.slice(i, i + 500)).execute();
          for (const child of children) {
            ids.push(num(child.id));
            if (child.kind === 'folder') next.push(num(child.id));
            if (child.content_id !== null) contentIds.push(num(child.content_id));
            freed += num(child.size);
          }
        }
        level = next;
      }
      await this.dropChunks(tx, contentIds);
      for (let i = 0; i < ids.length; i += 500) await tx.deleteFrom('drive_nodes').where('id', 'in', ids.slice(i, i + 500)).execute();
      await this.releaseDrive(tx, userId, freed);
      return freed;
    });
  }

  async createDriveUpload(userId: number, input: { parentId: number | null; name: string; size: number; contentType?: string | null; ttlMs?: number }): Promise<DriveUpload> {
    this.checkDriveName(input.name);
    if (!Number.isSafeInteger(input.size) || input.size < 0) throw new StoreError('invalid', 'size must be a whole number of bytes');
    const ttlMs = input.ttlMs ?? DRIVE_UPLOAD_TTL_MS;
    const row = await this.ctx.write(async (tx) => {
      const now = Date.now();
      // Abandoned uploads go as new ones start, the user's own first (their bytes count against
      // the quota), then a few of anyone's, so no sweeper is needed.
      const expired = [
        ...(await tx.selectFrom('drive_uploads').selectAll().where('user_id', '=', userId).where('expires_at', '<=', now).execute()),
        ...(await tx.selectFrom('drive_uploads').selectAll().where('user_id', '!=', userId).where('expires_at', '<=', now).limit(10).execute()),
      ];
      for (const old of expired) await this.dropUpload(tx, old);
      const parent = await this.driveFolder(tx, userId, input.parentId);
      await this.driveNameFree(tx, userId, parent, input.name);
      const user = await tx.selectFrom('users').select(['quota_bytes', 'used_bytes']).where('id', '=', userId).executeTakeFirst();
      if (!user) throw new StoreError('not-found', 'no such user');
      const quota = num(user.quota_bytes);
      const used = num(user.used_bytes);
      if (quota > 0 && used + input.size > quota) {
        throw new StoreError('quota', `quota exceeded: the file needs ${input.size} bytes, ${Math.max(0, quota - used)} of ${quota} are free`);
      }
      return tx
        .insertInto('drive_uploads')
        .values({
          id: randomUUID(),
          user_id: userId,
          parent_id: parent,
          name: input.name,
          content_type: input.contentType ?? null,
          content_id: await this.nextContentId(tx),
          size: input.size,
          received: 0,
          next_seq: 0,
          created_at: now,
          expires_at: now + ttlMs,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    });
    return this.driveUpload(row);
  }

  async getDriveUpload(userId: number, id: string): Promise<DriveUpload | undefined> {
    const row = await this.ctx.read(() =>
      this.ctx.db.selectFrom('drive_uploads').selectAll().where('id', '=', id).where('user_id', '=', userId).where('expires_at', '>', Date.now()).executeTakeFirst(),
    );
    return row && this.driveUpload(row);
  }

  async appendDriveUpload(userId: number, id: string, offset: number, data: Buffer): Promise<{ upload: DriveUpload; file: DriveNode | null }> {
    return this.ctx.write(async (tx) => {
      const now = Date.now();
      const row = await tx.selectFrom('drive_uploads').selectAll().where('id', '=', id).where('user_id', '=', userId).where('expires_at', '>', now).executeTakeFirst();
      if (!row) throw new StoreError('not-found', 'no such upload (finished, cancelled or expired)');
      const received = num(row.received);
      const size = num(row.size);
      if (offset !== received) throw new StoreError('conflict', `the upload continues at byte ${received}, not ${offset}`);
      if (received + data.length > size) throw new StoreError('invalid', `the upload is ${size} bytes; this chunk would end at ${received + data.length}`);
      const contentId = num(row.content_id);
      const seq = num(row.next_seq);
      if (data.length > 0) {
        await this.chargeDrive(tx, userId, data.length);
        await tx.insertInto('drive_chunks').values({ content_id: contentId, seq, user_id: userId, start: received, size: data.length, data }).execute();
      }
      const upload = { ...row, received: received + data.length, next_seq: seq + (data.length > 0 ? 1 : 0), expires_at: now + (num(row.expires_at) - num(row.created_at)) };
      if (upload.received < size) {
        await tx.updateTable('drive_uploads').set({ received: upload.received, next_seq: upload.next_seq, expires_at: upload.expires_at }).where('id', '=', id).execute();
        return { upload: this.driveUpload(upload), file: null };
      }
      // The last chunk: the file appears in the same commit, or not at all.
      const parent = await this.driveFolder(tx, userId, num(row.parent_id));
      const name = await this.freeDriveName(tx, userId, parent, row.name);
      await tx.deleteFrom('drive_uploads').where('id', '=', id).execute();
      const file = await tx
        .insertInto('drive_nodes')
        .values({ user_id: userId, parent_id: parent, name, kind: 'file', size, content_type: row.content_type, content_id: contentId, created_at: now, updated_at: now })
        .returningAll()
        .executeTakeFirstOrThrow();
      return { upload: this.driveUpload(upload), file: this.driveNode(file) };
    });
  }

  async cancelDriveUpload(userId: number, id: string): Promise<void> {
    await this.ctx.write(async (tx) => {
      const row = await tx.selectFrom('drive_uploads').selectAll().where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
      if (!row) throw new StoreError('not-found', 'no such upload');
      await this.dropUpload(tx, row);
    });
  }

  async *readDriveFile(userId: number, fileId: number, range?: { start: number; end: number }): AsyncGenerator<Buffer> {
    const node = await this.getDriveNode(userId, fileId);
    if (!node || node.kind !== 'file' || node.contentId === null) throw new StoreError('not-found', 'no such file');
    const contentId = node.contentId;
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? node.size - 1, node.size - 1);
    if (start > end) return;
    // The index first (small: a row per MiB), then each chunk's bytes as the reader wants them.
    const index = await this.ctx.read(() => this.ctx.db.selectFrom('drive_chunks').select(['seq', 'start', 'size']).where('content_id', '=', contentId).orderBy('seq').execute());
    for (const chunk of index) {
      const from = num(chunk.start);
      const to = from + num(chunk.size) - 1;
      if (to < start) continue;
      if (from > end) break;
      const row = await this.ctx.read(() => this.ctx.db.selectFrom('drive_chunks').select('data').where('content_id', '=', contentId).where('seq', '=', chunk.seq).executeTakeFirst());
      if (!row) throw new StoreError('not-found', 'the file was deleted while being read');
      const data = Buffer.isBuffer(row.data) ? row.data : Buffer.from(row.data);
      yield data.subarray(Math.max(start, from) - from, Math.min(end, to) - from + 1);
    }
  }
}
