// The change feed across processes on PostgreSQL: writers NOTIFY in the same transaction as
// their change rows (delivered only if it commits), and each process keeps one connection
// that LISTENs and hands the events to its store's listeners. After a lost connection the
// feed reconnects and replays the change rows written meanwhile, so IDLE sessions still wake.
import pg from 'pg';
import type { ChangeEvent, ChangeKind } from './types.js';

export const CHANGE_CHANNEL = 'quill_changes';

/** NOTIFY payloads must stay below 8000 bytes (PostgreSQL docs, NOTIFY). */
const MAX_PAYLOAD = 7000;

type Wire = [number, number, number | null, ChangeKind];

/** Encodes events as NOTIFY payloads tagged with the writing process, split to fit. */
export function encodeChanges(origin: string, events: readonly ChangeEvent[]): string[] {
  const payloads: string[] = [];
  let batch: Wire[] = [];
  let size = 0;
  const flush = () => {
    if (batch.length > 0) payloads.push(JSON.stringify({ o: origin, e: batch }));
    batch = [];
    size = 0;
  };
  for (const event of events) {
    const wire: Wire = [event.id, event.userId, event.mailboxId, event.kind];
    const length = JSON.stringify(wire).length + 1;
    if (size + length > MAX_PAYLOAD) flush();
    batch.push(wire);
    size += length;
  }
  flush();
  return payloads;
}

function decodeChanges(payload: string): { origin: string; events: ChangeEvent[] } | undefined {
  try {
    const parsed = JSON.parse(payload) as { o: string; e: Wire[] };
    return { origin: parsed.o, events: parsed.e.map(([id, userId, mailboxId, kind]) => ({ id, userId, mailboxId, kind })) };
  } catch {
    return undefined;
  }
}

export interface ChangeFeedOptions {
  /** This process's tag: its own notifications are skipped (it published them already). */
  origin: string;
  /** Config for a new connection to the current primary. */
  connect: () => Promise<pg.ClientConfig>;
  emit: (event: ChangeEvent) => void;
  /** Change rows written since a time (ms), replayed after a reconnect. */
  since: (ms: number) => Promise<ChangeEvent[]>;
  /** Margin for clocks of different writers and commits in flight when the connection dropped. */
  replayMarginMs?: number;
}

export class PgChangeFeed {
  private client: pg.Client | undefined;
  /** Gives up the current connection (and schedules a new one). */
  private drop: (() => void) | undefined;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = 100;
  private lostAt: number | undefined;
  /** Resolves once the feed is listening again (tests and status use it). */
  connected: Promise<void> = Promise.resolve();

  constructor(private readonly options: ChangeFeedOptions) {}

  get listening(): boolean {
    return this.client !== undefined;
  }

  /**
   * Drops the LISTEN connection and makes a new one (to the current primary), replaying the
   * changes written meanwhile: writes moved to another server, whose NOTIFYs this one misses.
   */
  reconnect(): void {
    this.drop?.();
  }

  /** Connects and LISTENs; rejects if the first attempt fails. */
  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(await this.options.connect());
    let gone = false;
    const onLost = () => {
      if (gone) return;
      gone = true;
      if (this.client === client) {
        this.client = undefined;
        this.drop = undefined;
      }
      client.end().catch(() => undefined);
      if (this.stopped) return;
      this.lostAt ??= Date.now();
      this.scheduleReconnect();
    };
    client.on('error', onLost);
    client.on('end', onLost);
    client.on('notification', (message) => {
      if (message.channel !== CHANGE_CHANNEL || !message.payload) return;
      const decoded = decodeChanges(message.payload);
      if (!decoded || decoded.origin === this.options.origin) return;
      for (const event of decoded.events) this.options.emit(event);
    });
    try {
      await client.connect();
      await client.query(`listen ${CHANGE_CHANNEL}`);
    } catch (error) {
      gone = true;
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.drop = onLost;
    this.retryDelayMs = 100;
    if (this.lostAt !== undefined) {
      const since = this.lostAt - (this.options.replayMarginMs ?? 5000);
      this.lostAt = undefined;
      // At-least-once: a listener may see an event twice, never miss one (listeners re-read state).
      for (const event of await this.options.since(since).catch(() => [])) this.options.emit(event);
    }
  }

  private scheduleReconnect(): void {
    if (this.retryTimer || this.stopped) return;
    let resolveConnected!: () => void;
    this.connected = new Promise((resolve) => (resolveConnected = resolve));
    const attempt = () => {
      this.retryTimer = undefined;
      this.connect().then(resolveConnected, () => {
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, 2000);
        if (this.stopped) return resolveConnected();
        this.retryTimer = setTimeout(attempt, this.retryDelayMs);
        this.retryTimer.unref();
      });
    };
    this.retryTimer = setTimeout(attempt, this.retryDelayMs);
    this.retryTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
