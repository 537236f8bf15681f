// The Drive role (issue 8): folders and files per user; bytes count against the same quota as mail.
import type { DriveNode, DriveUpload } from '../types.js';
import { roleMethods } from './methods.js';

export interface Drive {
  /** A folder's entries, folders first, then by name. Fails with 'not-found' for a missing folder. */
  listDrive(userId: number, parentId: number | null): Promise<DriveNode[]>;
  getDriveNode(userId: number, id: number): Promise<DriveNode | undefined>;
  createDriveFolder(userId: number, parentId: number | null, name: string): Promise<DriveNode>;
  /** Renames and/or moves a node; a folder cannot move into itself or below itself. */
  updateDriveNode(userId: number, id: number, change: { name?: string; parentId?: number | null }): Promise<DriveNode>;
  /** Deletes a file, or a folder with everything in it; returns the bytes freed from the quota. */
  deleteDriveNode(userId: number, id: number): Promise<number>;
  /** Starts an upload; refused with 'quota' when the file would not fit, 'conflict' when the name is taken. */
  createDriveUpload(userId: number, input: { parentId: number | null; name: string; size: number; contentType?: string | null; ttlMs?: number }): Promise<DriveUpload>;
  getDriveUpload(userId: number, id: string): Promise<DriveUpload | undefined>;
  /**
   * Stores the next chunk of an upload, committed on its own. `offset` must be the bytes
   * received so far ('conflict' otherwise). The last chunk creates the file in the same commit.
   */
  appendDriveUpload(userId: number, id: string, offset: number, data: Buffer): Promise<{ upload: DriveUpload; file: DriveNode | null }>;
  cancelDriveUpload(userId: number, id: string): Promise<void>;
  /** A file's bytes from `start` to `end` inclusive (whole file by default), one chunk at a time. */
  readDriveFile(userId: number, fileId: number, range?: { start: number; end: number }): AsyncGenerator<Buffer>;
}

export const DRIVE_METHODS = roleMethods<Drive>()([
  'listDrive',
  'getDriveNode',
  'createDriveFolder',
  'updateDriveNode',
  'deleteDriveNode',
  'createDriveUpload',
  'getDriveUpload',
  'appendDriveUpload',
  'cancelDriveUpload',
  'readDriveFile',
]);
