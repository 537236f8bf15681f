// The one Store interface that all protocol code uses (DESIGN.md "Store").
// Backends: SQLite (embedded default) now, PostgreSQL in the cluster.

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

export interface Store {
  readonly kind: 'sqlite' | 'postgres';

  /** Cheap round trip for /healthz. */
  ping(): Promise<void>;
  close(): Promise<void>;

  // Domains
  addDomain(name: string): Promise<Domain>;
  getDomain(name: string): Promise<Domain | undefined>;
  listDomains(): Promise<Domain[]>;
  /** Fails with StoreError('conflict') while the domain still has users. */
  removeDomain(name: string): Promise<void>;

  // Users. Addresses are stored lower-case; lookups are case-insensitive.
  addUser(input: { address: string; passwordHash: string; quotaBytes?: number; isAdmin?: boolean }): Promise<User>;
  getUser(address: string): Promise<User | undefined>;
  getUserById(id: number): Promise<User | undefined>;
  listUsers(domain?: string): Promise<User[]>;
  removeUser(address: string): Promise<void>;
  setPassword(address: string, passwordHash: string): Promise<void>;
  /** The webmail's From name (migration 011); '' clears it. */
  setDisplayName(address: string, displayName: string): Promise<void>;
  setQuota(address: string, quotaBytes: number): Promise<void>;
  /** A disabled user can log in nowhere and receives no mail. */
  setUserDisabled(address: string, disabled: boolean): Promise<void>;
  setUserAdmin(address: string, isAdmin: boolean): Promise<void>;
  /** Users whose address contains `q` (case-insensitive), ordered by address, one page and the total. */
  searchUsers(query: { q?: string; offset?: number; limit?: number }): Promise<{ users: User[]; total: number }>;

  // Mailboxes. Names use '/' as the hierarchy separator; INBOX is case-insensitive.
  listMailboxes(userId: number): Promise<Mailbox[]>;
  getMailbox(userId: number, name: string): Promise<Mailbox | undefined>;
  getMailboxById(id: number): Promise<Mailbox | undefined>;
  /** A new mailbox, subscribed unless `subscribed` is false (IMAP CREATE: RFC 3501 does not subscribe). */
  createMailbox(userId: number, name: string, specialUse?: string | null, subscribed?: boolean): Promise<Mailbox>;
  deleteMailbox(mailboxId: number): Promise<void>;
  /** Renames a mailbox and its children; RENAME of INBOX moves its messages (RFC 3501 6.3.5). */
  renameMailbox(userId: number, from: string, to: string): Promise<void>;
  setSubscribed(mailboxId: number, subscribed: boolean): Promise<void>;
  /**
   * Subscriptions to names with no mailbox (RFC 3501 6.3.6): a subscribed mailbox leaves its name
   * here when deleted, and a mailbox created under such a name takes the subscription back.
   */
  listLostSubscriptions(userId: number): Promise<string[]>;
  /** Drops a subscription to a name with no mailbox; false when there was none. */
  dropLostSubscription(userId: number, name: string): Promise<boolean>;
  mailboxStatus(mailboxId: number): Promise<MailboxStatus>;
  /**
   * Claims \Recent (RFC 3501 2.3.2) for one session: raises the mailbox's recent watermark to
   * `upTo` (default: the highest UID) and returns the old one; the UIDs in (old, new] are recent
   * in the claiming session only.
   */
  claimRecent(mailboxId: number, upTo?: number): Promise<number>;

  // Messages
  /** Stores one message for many recipients with one copy of the bytes, durably (group commit). */
  deliver(raw: Buffer, targets: DeliveryTarget[], options?: DeliveryOptions): Promise<DeliveryResult>;
  append(mailboxId: number, raw: Buffer, flags: string[], internalDate?: Date): Promise<{ uid: number; uidvalidity: number; modseq: number }>;
  /** Messages ordered by UID. `fromUid`/`toUid` are inclusive; `changedSince` filters by modseq. */
  listMessages(mailboxId: number, range?: { fromUid?: number; toUid?: number; changedSince?: number; limit?: number }): Promise<MessageMeta[]>;
  /** UIDs of all messages of a mailbox, ascending: what a session needs for its sequence map. */
  listUids(mailboxId: number): Promise<number[]>;
  /**
   * Full-text search (issue 21): UIDs of the mailbox whose header or text has every word of
   * `query` as a word prefix, case-insensitively (text-index.ts). Every stored blob is indexed
   * (after its commit, text-indexer.ts; a search first indexes what its mailbox still has queued);
   * `orPartial` adds the messages whose text was too long to index whole (IMAP reads those).
   */
  searchText(mailboxId: number, query: string, options?: { orPartial?: boolean }): Promise<number[]>;
  getMessage(mailboxId: number, uid: number): Promise<MessageMeta | undefined>;
  getBlob(hash: string): Promise<Buffer | undefined>;
  getBlobMeta(hash: string): Promise<string | null>;
  setBlobMeta(hash: string, meta: string): Promise<void>;
  /** Blobs by hash in one read (missing ones left out): for FETCH and SEARCH over many messages. */
  getBlobs(hashes: string[]): Promise<Map<string, Buffer>>;
  /** The cached parse of many blobs in one read (blobs without one, or missing, left out). */
  getBlobMetas(hashes: string[]): Promise<Map<string, string>>;
  /** Caches the parse of many blobs in one transaction (blobs no longer stored are skipped). */
  setBlobMetas(entries: [hash: string, meta: string][]): Promise<void>;
  /** CONDSTORE-aware flag update: messages with modseq > unchangedSince are left alone and reported. */
  setFlags(mailboxId: number, uids: number[], op: FlagOp, flags: string[], unchangedSince?: number): Promise<{ updated: FlagUpdate[]; failed: number[] }>;
  /** Removes messages (all \Deleted ones when uids is omitted, or those of the list that are \Deleted). */
  expunge(mailboxId: number, uids?: number[], onlyDeleted?: boolean): Promise<number[]>;
  /** UIDs expunged after a modseq (QRESYNC VANISHED). */
  expungedSince(mailboxId: number, modseq: number): Promise<number[]>;
  copy(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<{ map: [number, number][]; uidvalidity: number }>;
  move(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<{ map: [number, number][]; uidvalidity: number }>;

  // Outbound queue
  listOutbound(): Promise<OutboundEntry[]>;
  getOutbound(id: number): Promise<OutboundEntry | undefined>;
  deleteOutbound(id: number): Promise<boolean>;
  /** Hold, release or retry now ('queued' also makes the entry due at once). */
  setOutboundStatus(id: number, status: 'queued' | 'held'): Promise<boolean>;
  /**
   * Leases due entries to one worker: an entry leased by a live worker is never handed to
   * another, and a lease that runs out (its worker died) makes the entry due again.
   */
  leaseOutbound(owner: string, leaseMs: number, limit: number): Promise<OutboundEntry[]>;
  /** Ends a leased entry: delivered or bounced. False when the lease was lost meanwhile. */
  finishOutbound(id: number, owner: string): Promise<boolean>;
  /** Records a failed attempt and when to try again; marks the warning DSN as sent when asked. */
  deferOutbound(id: number, owner: string, error: string, nextAttemptAt: Date, warned?: boolean): Promise<boolean>;
  /** Gives a leased entry back untried, due again at `until` (a rate limit): no attempt counted. */
  postponeOutbound(id: number, owner: string, until: Date): Promise<boolean>;

  // DKIM keys per domain
  setDkimKey(domain: string, selector: string, privateKeyPem: string): Promise<void>;
  getDkimKey(domain: string): Promise<{ selector: string; privateKeyPem: string } | undefined>;

  // Membership (DESIGN.md "Membership"): heartbeats of nodes and gateways.
  /** Writes a member's heartbeat; returns the state an operator requested, if any. */
  heartbeat(member: Omit<Member, 'requestedState' | 'beatAt'>): Promise<MemberRequest | null>;
  listMembers(): Promise<Member[]>;
  /** Asks a member to change state; false when no such member. */
  requestMemberState(id: string, state: MemberRequest | null): Promise<boolean>;
  removeMember(id: string): Promise<void>;

  // Web sessions, in the store so any node serves any session behind the gateway.
  createSession(session: Omit<WebSession, 'createdAt'>): Promise<void>;
  /** Undefined when unknown or expired. */
  getSession(idHash: string): Promise<WebSession | undefined>;
  deleteSession(idHash: string): Promise<void>;
  /** Ends a user's sessions, all but `keepIdHash` (after a password change). */
  deleteUserSessions(userId: number, keepIdHash?: string): Promise<void>;

  // Audit log of operator actions (issue 9)
  addAudit(entry: Omit<AuditEntry, 'id' | 'at'>): Promise<AuditEntry>;
  /** Newest first; `before` is an entry id, for the next page. */
  listAudit(query: { limit: number; before?: number }): Promise<AuditEntry[]>;
  /** Where the data lives and how big it is (SQLite) or which host is primary and how far behind the standbys are (PostgreSQL). */
  status(): Promise<StoreStatus>;

  // Drive (issue 8): folders and files per user; bytes count against the same quota as mail.
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

  // Change feed: wakes IDLE sessions in every process that shares the store.
  onChange(listener: ChangeListener): () => void;
  /**
   * Announces, before returning, every change other processes committed so far, where the backend
   * can tell cheaply that there are some (SQLite: PRAGMA data_version); then what a listener kept
   * current from the feed is current. Returns false (or is absent) where it cannot.
   */
  syncChanges?(): boolean;
}

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
