// Table shapes for Kysely. Columns are kept portable between SQLite and PostgreSQL:
// integers for booleans and times (milliseconds since the epoch), text for flags.
import type { Generated } from 'kysely';

type Id = Generated<number>;

export interface DomainTable {
  id: Id;
  name: string;
  created_at: number;
}

export interface UserTable {
  id: Id;
  address: string;
  domain_id: number;
  password_hash: string;
  quota_bytes: number;
  used_bytes: number;
  is_admin: number;
  disabled: number;
  created_at: number;
  /** Migration 011. */
  display_name: Generated<string>;
}

export interface MailboxTable {
  id: Id;
  user_id: number;
  name: string;
  uidvalidity: number;
  uidnext: number;
  highest_modseq: number;
  /** Highest UID that some session has already seen as \Recent (RFC 3501 2.3.2). */
  recent_uid: number;
  special_use: string | null;
  subscribed: number;
  created_at: number;
}

/** A subscription to a name with no mailbox (RFC 3501 6.3.6). */
export interface SubscriptionTable {
  user_id: number;
  name: string;
}

export interface BlobTable {
  hash: string;
  size: number;
  data: Buffer;
  refs: number;
}

/**
 * A blob's parsed structure (JSON), filled lazily by readers such as IMAP. A table of its own,
 * not a column of blobs: writing it there rewrote the whole message row, and reading it walked
 * the message's overflow pages (SQLite).
 */
export interface BlobMetaTable {
  hash: string;
  meta: string;
}

export interface MessageTable {
  id: Id;
  mailbox_id: number;
  uid: number;
  blob_hash: string;
  size: number;
  internal_date: number;
  flags: string;
  seen: number;
  deleted: number;
  modseq: number;
}

export interface ExpungedTable {
  mailbox_id: number;
  uid: number;
  modseq: number;
}

export interface ChangeTable {
  id: Id;
  user_id: number;
  mailbox_id: number | null;
  kind: string;
  created_at: number;
}

export interface TxnTable {
  id: string;
  created_at: number;
}

export interface OutboundTable {
  id: Id;
  sender: string;
  recipient: string;
  domain: string;
  blob_hash: string;
  status: string;
  attempts: number;
  created_at: number;
  next_attempt_at: number;
  last_error: string | null;
  lease_owner: string | null;
  lease_until: number | null;
  warned: number;
}

export interface DkimKeyTable {
  domain: string;
  selector: string;
  private_key: string;
  created_at: number;
}

export interface MetaTable {
  key: string;
  value: string;
}

/** Membership: one row per node or gateway, rewritten by its heartbeat (soft state). */
export interface MemberTable {
  id: string;
  kind: string;
  state: string;
  requested_state: string | null;
  version: string;
  addresses: string;
  load: string;
  started_at: number;
  beat_at: number;
}

/** Browser sessions (src/web): keyed by the SHA-256 of the id the cookie carries. */
export interface WebSessionTable {
  id_hash: string;
  user_id: number;
  csrf_token: string;
  created_at: number;
  expires_at: number;
}

/** Operator actions (issue 9), newest found through the index on `at`. */
export interface AuditLogTable {
  id: Id;
  at: number;
  actor: string;
  action: string;
  target: string;
  /** JSON object, or null. */
  detail: string | null;
  node: string | null;
}

/** Drive folders and files (issue 8); parent_id 0 is the user's root folder. */
export interface DriveNodeTable {
  id: Id;
  user_id: number;
  parent_id: number;
  name: string;
  kind: string;
  size: number;
  content_type: string | null;
  content_id: number | null;
  created_at: number;
  updated_at: number;
}

/** A drive file's bytes, in chunks of up to a MiB, in order of seq. */
export interface DriveChunkTable {
  content_id: number;
  seq: number;
  user_id: number;
  start: number;
  size: number;
  data: Buffer;
}

/** A drive upload in progress: its chunks are stored as they arrive, the file appears when all are in. */
export interface DriveUploadTable {
  id: string;
  user_id: number;
  parent_id: number;
  name: string;
  content_type: string | null;
  content_id: number;
  size: number;
  received: number;
  next_seq: number;
  created_at: number;
  expires_at: number;
}

export interface Database {
  domains: DomainTable;
  users: UserTable;
  mailboxes: MailboxTable;
  subscriptions: SubscriptionTable;
  blobs: BlobTable;
  blob_meta: BlobMetaTable;
  /** Full-text index by blob hash (migration 009); the words live in blob_fts (SQLite) or tsv (PostgreSQL). */
  blob_text: BlobTextTable;
  /** Blobs whose words are not indexed yet (migration 012, text-indexer.ts). */
  text_pending: TextPendingTable;
  messages: MessageTable;
  expunged: ExpungedTable;
  changes: ChangeTable;
  txns: TxnTable;
  outbound: OutboundTable;
  meta: MetaTable;
  members: MemberTable;
  dkim_keys: DkimKeyTable;
  web_sessions: WebSessionTable;
  drive_nodes: DriveNodeTable;
  drive_chunks: DriveChunkTable;
  drive_uploads: DriveUploadTable;
  audit_log: AuditLogTable;
}

export interface TextPendingTable {
  hash: string;
}

export interface BlobTextTable {
  /** SQLite only: the FTS5 rowid. */
  id: Generated<number>;
  hash: string;
  /** 1 when the message's text was cut short for the index. */
  partial: Generated<number>;
}
