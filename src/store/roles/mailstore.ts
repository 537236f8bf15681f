// The Mailstore role: a user's mailboxes, the messages in them (UIDs, flags, modseqs) and the
// change feed that tells IMAP IDLE, the hub and the webmail's event stream what changed.
import type { ChangeListener, DeliveryOptions, DeliveryResult, DeliveryTarget, FlagOp, FlagUpdate, Mailbox, MailboxStatus, MessageMeta } from '../types.js';
import { roleMethods } from './methods.js';

/** Wakes IDLE sessions in every process that shares the store. */
export interface ChangeFeed {
  onChange(listener: ChangeListener): () => void;
  /**
   * Announces, before returning, every change other processes committed so far, where the backend
   * can tell cheaply that there are some (SQLite: PRAGMA data_version); then what a listener kept
   * current from the feed is current. Returns false (or is absent) where it cannot.
   */
  syncChanges?(): boolean;
}

export interface Mailstore extends ChangeFeed {
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
  getMessage(mailboxId: number, uid: number): Promise<MessageMeta | undefined>;
  /** CONDSTORE-aware flag update: messages with modseq > unchangedSince are left alone and reported. */
  setFlags(mailboxId: number, uids: number[], op: FlagOp, flags: string[], unchangedSince?: number): Promise<{ updated: FlagUpdate[]; failed: number[] }>;
  /** Removes messages (all \Deleted ones when uids is omitted, or those of the list that are \Deleted). */
  expunge(mailboxId: number, uids?: number[], onlyDeleted?: boolean): Promise<number[]>;
  /** UIDs expunged after a modseq (QRESYNC VANISHED). */
  expungedSince(mailboxId: number, modseq: number): Promise<number[]>;
  copy(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<{ map: [number, number][]; uidvalidity: number }>;
  move(fromMailboxId: number, uids: number[], toMailboxId: number): Promise<{ map: [number, number][]; uidvalidity: number }>;
}

/** The Mailstore's methods but the change feed (which a backend keeps beside its commits). */
export const MAILSTORE_METHODS = roleMethods<Omit<Mailstore, keyof ChangeFeed>>()([
  'listMailboxes',
  'getMailbox',
  'getMailboxById',
  'createMailbox',
  'deleteMailbox',
  'renameMailbox',
  'setSubscribed',
  'listLostSubscriptions',
  'dropLostSubscription',
  'mailboxStatus',
  'claimRecent',
  'deliver',
  'append',
  'listMessages',
  'listUids',
  'getMessage',
  'setFlags',
  'expunge',
  'expungedSince',
  'copy',
  'move',
]);
