// One subscription to the store's change feed for the whole listener, fanned out to the
// sessions of the user concerned (no polling per client). Sessions on the same mailbox
// that wake together share one store read instead of each running its own.
import type { ChangeEvent, MessageMeta, Store } from '../store/types.js';
import type { SyncReads } from './selected.js';

export interface ChangeSubscriber {
  readonly userId: number;
  /** A change in one of the user's mailboxes (mailboxId null: the mailbox list). */
  changed(event: ChangeEvent, generation: number): void;
}

export class ChangeHub implements SyncReads {
  private readonly byUser = new Map<number, Set<ChangeSubscriber>>();
  private generation = 0;
  private readonly lastByUser = new Map<number, number>();
  private readonly unsubscribe: () => void;
  private readonly inflight = new Map<string, { generation: number; promise: Promise<unknown> }>();

  constructor(private readonly store: Store) {
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
    const set = this.byUser.get(event.userId);
    if (!set) return;
    const generation = ++this.generation;
    this.lastByUser.set(event.userId, generation);
    for (const subscriber of set) subscriber.changed(event, generation);
  }

  listUids(mailboxId: number, since: number): Promise<number[]> {
    return this.shared(`u${mailboxId}`, since, () => this.store.listUids(mailboxId));
  }

  changedSince(mailboxId: number, modseq: number, since: number): Promise<MessageMeta[]> {
    return this.shared(`c${mailboxId}:${modseq}`, since, () => this.store.listMessages(mailboxId, { changedSince: modseq }));
  }

  /** Joins a read already running when it started after the change the caller has to see. */
  private shared<T>(key: string, since: number, read: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key);
    if (running && running.generation >= since) return running.promise as Promise<T>;
    const promise = read().finally(() => {
      if (this.inflight.get(key)?.promise === promise) this.inflight.delete(key);
    });
    this.inflight.set(key, { generation: this.generation, promise });
    return promise;
  }
}
