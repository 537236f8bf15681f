// The maildrop of a POP3 session: the user's INBOX as it was at login (RFC 1939 8: messages
// that arrive later are not part of the session), with deletion marks applied at QUIT.
import type { Blobs, Mailstore } from '../store/types.js';
import { RESP_CODE, syntaxError, userError } from './errors.js';
import { endsWithCrlf } from '../protocol/dot-stuffing.js';
import { transmittedSize } from './framing.js';

export interface MaildropMessage {
  /** Message number, 1..n (RFC 1939 5). */
  readonly number: number;
  readonly uid: number;
  readonly blobHash: string;
  readonly storedSize: number;
  deleted: boolean;
}

/**
 * Whether a blob ends with CRLF, by content hash, for one listener. Blobs never change, so
 * entries never go stale; it saves reading every message again at each login to size it.
 */
export class CrlfCache {
  private readonly byHash = new Map<string, boolean>();

  constructor(private readonly maxEntries = 200_000) {}

  get(hash: string): boolean | undefined {
    return this.byHash.get(hash);
  }

  remember(hash: string, data: Buffer): boolean {
    const crlf = endsWithCrlf(data);
    if (this.byHash.size >= this.maxEntries) this.byHash.clear();
    this.byHash.set(hash, crlf);
    return crlf;
  }
}

/** RFC 1939 8: an exclusive lock on each maildrop. In-process, so per node. */
export class MaildropLocks {
  private readonly holders = new Set<number>();

  /** False when another session holds the user's maildrop. */
  acquire(userId: number): boolean {
    if (this.holders.has(userId)) return false;
    this.holders.add(userId);
    return true;
  }

  release(userId: number): void {
    this.holders.delete(userId);
  }
}

export class Maildrop {
  private constructor(
    private readonly store: Mailstore & Blobs,
    private readonly crlf: CrlfCache,
    readonly mailboxId: number,
    private readonly uidvalidity: number,
    private readonly messages: MaildropMessage[],
  ) {}

  static async open(store: Mailstore & Blobs, crlf: CrlfCache, userId: number): Promise<Maildrop> {
    const inbox = await store.getMailbox(userId, 'INBOX');
    if (!inbox) throw userError('no INBOX for this user', RESP_CODE.sysPerm);
    const metas = await store.listMessages(inbox.id);
    const messages = metas.map((meta, i) => ({ number: i + 1, uid: meta.uid, blobHash: meta.blobHash, storedSize: meta.size, deleted: false }));
    return new Maildrop(store, crlf, inbox.id, inbox.uidvalidity, messages);
  }

  /** Messages not marked as deleted. */
  live(): MaildropMessage[] {
    return this.messages.filter((m) => !m.deleted);
  }

  /** Resolves a message-number argument; deleted messages are refused (RFC 1939 5). */
  get(arg: string | undefined): MaildropMessage {
    if (arg === undefined || !/^\d{1,10}$/.test(arg)) throw syntaxError('message number required');
    const message = this.messages[Number(arg) - 1];
    if (!message) throw userError('no such message');
    if (message.deleted) throw userError(`message ${message.number} already deleted`);
    return message;
  }

  /** RFC 1939 7 UIDL: stable across sessions and restarts while UIDVALIDITY holds. */
  uniqueId(message: MaildropMessage): string {
    return `${this.uidvalidity}.${message.uid}`;
  }

  /** Count and octets of the live messages (RFC 1939 5 STAT). */
  async sizeAll(): Promise<{ count: number; octets: number }> {
    const live = this.live();
    let octets = 0;
    for (const message of live) octets += await this.sizeOf(message);
    return { count: live.length, octets };
  }

  /** Octets RETR sends before stuffing: a message without a final CRLF gets one (RFC 1939 11). */
  async sizeOf(message: MaildropMessage): Promise<number> {
    let crlf = this.crlf.get(message.blobHash);
    if (crlf === undefined) {
      const data = await this.store.getBlob(message.blobHash);
      // A message removed meanwhile (IMAP) keeps its stored size; RETR will refuse it.
      if (!data) return message.storedSize;
      crlf = this.crlf.remember(message.blobHash, data);
    }
    return transmittedSize(message.storedSize, crlf);
  }

  /** The stored bytes, or a user error when the message was removed through another session. */
  async read(message: MaildropMessage): Promise<Buffer> {
    const present = await this.store.getMessage(this.mailboxId, message.uid);
    const data = present && (await this.store.getBlob(message.blobHash));
    if (!data) throw userError(`message ${message.number} is no longer available`);
    this.crlf.remember(message.blobHash, data);
    return data;
  }

  /** RFC 1939 5 RSET. */
  unmarkAll(): void {
    for (const message of this.messages) message.deleted = false;
  }

  /** RFC 1939 6 UPDATE: removes the marked messages in one store transaction. */
  async commit(): Promise<{ removed: number; left: number }> {
    const uids = this.messages.filter((m) => m.deleted).map((m) => m.uid);
    if (uids.length > 0) await this.store.expunge(this.mailboxId, uids, false);
    return { removed: uids.length, left: this.messages.length - uids.length };
  }
}
