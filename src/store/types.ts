// The store's data types and the Store, the union of its roles (src/store/roles/, DESIGN.md
// "Store"). Backends: SQLite (embedded default), PostgreSQL, several PostgreSQL groups.
import type { Blobs } from './roles/blobs.js';
import type { Cluster } from './roles/cluster.js';
import type { Directory } from './roles/directory.js';
import type { Drive } from './roles/drive.js';
import type { Mailstore } from './roles/mailstore.js';
import type { Queue } from './roles/queue.js';
import type { WebState } from './roles/web-state.js';

export type { Blobs, Cluster, Directory, Drive, Mailstore, Queue, WebState };
export type { ChangeFeed } from './roles/mailstore.js';

export interface Domain {
  id: number;
  name: string;
  createdAt: Date;
}

export interface User {
  id: number;
  address: string;
  domainId: number;
  passwordHash: string;
  quotaBytes: number; // 0 = unlimited
  usedBytes: number;
  isAdmin: boolean;
  disabled: boolean;
  createdAt: Date;
  /** The name the webmail puts in From; '' when none was set. */
  displayName: string;
}

export interface Mailbox {
  id: number;
  userId: number;
  name: string;
  uidvalidity: number;
  uidnext: number;
  highestModseq: number;
  recentUid: number;
  specialUse: string | null;
  subscribed: boolean;
}

export interface MailboxStatus {
  messages: number;
  unseen: number;
  recent: number;
  uidnext: number;
  uidvalidity: number;
  highestModseq: number;
  size: number;
}

export interface MessageMeta {
  id: number;
  mailboxId: number;
  uid: number;
  blobHash: string;
  size: number;
  internalDate: Date;
  flags: string[];
  modseq: number;
}

/** One recipient's copy of a delivered message. */
export interface DeliveryTarget {
  userId: number;
  /** Mailbox name; INBOX when omitted. Falls back to INBOX when the mailbox is missing. */
  mailbox?: string;
  flags?: string[];
}

export interface DeliveryOptions {
  internalDate?: Date;
  /** Idempotency key: a second delivery with the same id stores nothing (replayed DATA). */
  txnId?: string;
  /** Foreign recipients written to the outbound queue in the same commit. */
  outbound?: { sender: string; recipients: string[] };
}

export interface DeliveryResult {
  /** False when the txnId had already been stored. */
  stored: boolean;
  copies: { userId: number; mailboxId: number; uid: number; uidvalidity: number }[];
  outboundIds: number[];
}

export type FlagOp = 'add' | 'remove' | 'replace';

export interface FlagUpdate {
  uid: number;
  flags: string[];
  modseq: number;
}

export interface OutboundEntry {
  id: number;
  sender: string;
  recipient: string;
  domain: string;
  blobHash: string;
  size: number;
  status: 'queued' | 'held' | 'failed' | 'sending';
  attempts: number;
  createdAt: Date;
  nextAttemptAt: Date;
  lastError: string | null;
  /** Whether the sender has been told of the delay already (warning DSN). */
  warned: boolean;
}

export type MemberKind = 'node' | 'gateway';
export type MemberState = 'active' | 'draining' | 'stopping';
/** What an operator may ask of a member: a state, or 'restarting' (stop, and let the supervisor start it again). */
export type MemberRequest = MemberState | 'restarting';

/** Load figures a member reports with every heartbeat. */
export interface LoadFigures {
  connections: Record<string, number>;
  eventLoopDelayMs: number;
  cpuPercent: number;
  rssBytes: number;
  queueDepth?: number;
}

/** One node or gateway as its last heartbeat described it (soft state). */
export interface Member {
  id: string;
  kind: MemberKind;
  state: MemberState;
  /** What an operator asked for (quill drain/undrain/admin stop/admin restart); the member obeys at its next beat. */
  requestedState: MemberRequest | null;
  version: string;
  addresses: Record<string, string>;
  load: LoadFigures;
  startedAt: Date;
  beatAt: Date;
}

export type ChangeKind = 'append' | 'expunge' | 'flags' | 'mailbox';

/** A change-feed event: something changed in one user's mailbox (or mailbox list). */
export interface ChangeEvent {
  id: number;
  userId: number;
  mailboxId: number | null;
  kind: ChangeKind;
  /** On events of this process's own flag changes, expunges and IMAP APPENDs only: exactly what the write did. */
  delta?: MailboxDelta;
}

/**
 * What one write did to a mailbox, with the modseq it took: one above the mailbox's highest
 * before it (every change takes the next modseq, RFC 7162 3.1.1). A mailbox index holding exactly
 * that highest follows the write without reading it back (MailboxIndex.follow).
 */
export interface MailboxDelta {
  modseq: number;
  flags?: FlagUpdate[];
  expunged?: number[];
  /** Messages added, above every UID before, and the mailbox's UIDNEXT after them. */
  appended?: MessageMeta[];
  uidnext?: number;
}

export type ChangeListener = (event: ChangeEvent) => void;

/** A browser login (src/web). The id the browser holds is never stored, only its SHA-256. */
export interface WebSession {
  idHash: string;
  userId: number;
  /** Sent back in X-CSRF-Token on every state-changing request. */
  csrfToken: string;
  createdAt: Date;
  expiresAt: Date;
}

/** One operator action (issue 9): actor is an admin's address or 'cli:<os user>'. */
export interface AuditEntry {
  id: number;
  at: Date;
  actor: string;
  /** What was done, e.g. 'user.disable', 'queue.retry', 'node.stop', 'view'. */
  action: string;
  /** What it was done to: an address, a domain, a queue id, a node id, a path. */
  target: string;
  detail: Record<string, unknown> | null;
  /** The node that wrote the entry; null from the CLI. */
  node: string | null;
}

/** Where the store keeps its data, for the admin console; null where a figure cannot be read. */
export type StoreStatus =
  | { kind: 'sqlite'; path: string; sizeBytes: number; walBytes: number | null }
  | { kind: 'postgres'; groups: { name: string; hosts: { host: string; role: 'primary' | 'standby' | 'unknown'; lagBytes: number | null }[] }[] };

/** A folder or file of a user's drive (issue 8). parentId null is the root folder. */
export interface DriveNode {
  id: number;
  userId: number;
  parentId: number | null;
  name: string;
  kind: 'folder' | 'file';
  size: number;
  contentType: string | null;
  /** Where a file's chunks are; a file's bytes never change under one contentId (an ETag). */
  contentId: number | null;
  createdAt: Date;
  updatedAt: Date;
}

/** A drive upload in progress; the file appears when `received` reaches `size`. */
export interface DriveUpload {
  id: string;
  userId: number;
  parentId: number | null;
  name: string;
  contentType: string | null;
  size: number;
  received: number;
  expiresAt: Date;
}

/** An upload untouched this long is dropped with its bytes. */
export const DRIVE_UPLOAD_TTL_MS = 24 * 3_600_000;

/** Longest drive name in UTF-8 bytes. */
export const DRIVE_NAME_MAX_BYTES = 255;

/** Why a drive name is refused, or null when it is fine. */
export function driveNameProblem(name: string): string | null {
  if (name.length === 0) return 'a name cannot be empty';
  if (Buffer.byteLength(name) > DRIVE_NAME_MAX_BYTES) return `a name is at most ${DRIVE_NAME_MAX_BYTES} bytes`;
  if (name.includes('/')) return "a name cannot contain '/'";
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'a name cannot contain control characters';
  if (name === '.' || name === '..') return `'${name}' is not a name`;
  if (name.trim() !== name) return 'a name cannot start or end with a space';
  return null;
}

/** The store as a whole, apart from its roles: which backend, is it there, where is its data. */
export interface StoreHandle {
  readonly kind: 'sqlite' | 'postgres';
  /** Cheap round trip for /healthz. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** Where the data lives and how big it is (SQLite) or which host is primary and how far behind the standbys are (PostgreSQL). */
  status(): Promise<StoreStatus>;
}

/**
 * The whole store: every role (src/store/roles/), as one backend implements them. Code that needs
 * only some roles takes only those (e.g. POP3 takes `Directory & Mailstore & Blobs`).
 */
export interface Store extends StoreHandle, Directory, Mailstore, Blobs, Queue, Cluster, WebState, Drive {}

export type StoreErrorCode = 'conflict' | 'not-found' | 'quota' | 'invalid' | 'unavailable';

/** Errors the protocol layers map to replies: 'unavailable' is a temporary server fault. */
export class StoreError extends Error {
  constructor(readonly code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

export const DEFAULT_MAILBOXES: readonly { name: string; specialUse: string | null }[] = [
  { name: 'INBOX', specialUse: null },
  { name: 'Sent', specialUse: '\\Sent' },
  { name: 'Drafts', specialUse: '\\Drafts' },
  { name: 'Trash', specialUse: '\\Trash' },
  { name: 'Junk', specialUse: '\\Junk' },
  { name: 'Archive', specialUse: '\\Archive' },
];
