// One subscription to the store's change feed for the whole listener, fanned out to the
// process's mailbox indexes and to the sessions of the user concerned (no polling per client).
// Sessions on the same mailbox that wake together catch up through one shared index, so one
// store read serves them all.
import type { ChangeEvent, Store } from '../store/types.js';
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

  constructor(store: Store) {
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
    }
  }

  /** Generation of the user's latest change: a session loading a view compares it before and after. */
  userGeneration(userId: number): number {
    return this.lastByUser.get(userId) ?? 0;
  }

  sessionsOf(userId: number): number {
    return this.byUser.get(userId)?.size ?? 0;
  }

  close(): void {
    this.unsubscribe();
  }

  private dispatch(event: ChangeEvent): void {
    this.indexes.changed(event);
    const set = this.byUser.get(event.userId);
    if (!set) return;
    const generation = ++this.generation;
    this.lastByUser.set(event.userId, generation);
    for (const subscriber of set) subscriber.changed(event, generation);
  }
}
