// One subscription to the store's change feed for the whole listener, fanned out to the
// process's mailbox indexes and to the sessions of the user concerned (no polling per client).
// Sessions on the same mailbox that wake together catch up through one shared index, so one
// store read serves them all.
import type { ChangeEvent, Mailbox, Mailstore } from '../store/types.js';
import { MailboxIndexes } from './mailbox-index.js';

export interface ChangeSubscriber {
  readonly userId: number;
  /** A change in one of the user's mailboxes (mailboxId null: the mailbox list). */
  changed(event: ChangeEvent, generation: number): void;
}

export class ChangeHub {
  /** The mailbox indexes sessions share; told about every change before any session. */
  readonly indexes: MailboxIndexes;
  private readonly byUser = new Map<number, Set<ChangeSubscriber>>();
  private generation = 0;
  private readonly lastByUser = new Map<number, number>();
  private readonly unsubscribe: () => void;
  /**
   * Each connected user's mailbox list (STATUS and LIST read it per command): dropped at any
   * 'mailbox' change of the user (create, delete, rename) from the feed, and only used where the
   * store can bring the feed up to date with other processes first (Mailstore.syncChanges). Counts
   * are not kept here (the mailbox indexes have them), nor subscriptions (read from the store).
   */
  private readonly mailboxLists = new Map<number, Promise<Mailbox[]>>();

  constructor(private readonly store: Mailstore) {
    this.indexes = new MailboxIndexes(store);
    this.unsubscribe = store.onChange((event) => this.dispatch(event));
  }

  add(subscriber: ChangeSubscriber): void {
    let set = this.byUser.get(subscriber.userId);
    if (!set) this.byUser.set(subscriber.userId, (set = new Set()));
    set.add(subscriber);
  }

  remove(subscriber: ChangeSubscriber): void {
    const set = this.byUser.get(subscriber.userId);
    if (!set) return;
    set.delete(subscriber);
    if (set.size === 0) {
      this.byUser.delete(subscriber.userId);
      this.lastByUser.delete(subscriber.userId);
      this.mailboxLists.delete(subscriber.userId);
    }
  }

  /** Generation of the user's latest change: a session loading a view compares it before and after. */
  userGeneration(userId: number): number {
    return this.lastByUser.get(userId) ?? 0;
  }

  sessionsOf(userId: number): number {
    return this.byUser.get(userId)?.size ?? 0;
  }

  /** The user's mailboxes by name as listMailboxes orders them; uidnext, highestModseq and recentUid may be old. */
  async mailboxes(userId: number): Promise<Mailbox[]> {
    if (!this.byUser.has(userId) || this.store.syncChanges?.() !== true) return this.store.listMailboxes(userId);
    let list = this.mailboxLists.get(userId);
    if (!list) {
      const read = this.store.listMailboxes(userId);
      this.mailboxLists.set(userId, (list = read));
      read.catch(() => {
        if (this.mailboxLists.get(userId) === read) this.mailboxLists.delete(userId);
      });
    }
    return list;
  }

  /** A mailbox by canonical name, from mailboxes(). */
  async mailbox(userId: number, name: string): Promise<Mailbox | undefined> {
    return (await this.mailboxes(userId)).find((m) => m.name === name);
  }

  close(): void {
    this.unsubscribe();
  }

  private dispatch(event: ChangeEvent): void {
    if (event.kind === 'mailbox') this.mailboxLists.delete(event.userId);
    this.indexes.changed(event);
    const set = this.byUser.get(event.userId);
    if (!set) return;
    const generation = ++this.generation;
    this.lastByUser.set(event.userId, generation);
    for (const subscriber of set) subscriber.changed(event, generation);
  }
}
