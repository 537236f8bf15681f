// SMTP load for failover tests and trials: senders that retry after 4xx as MTAs do, each 250
// and each 4xx recorded with its time, and a count of what the store holds of the 250s.
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import type { Store } from '../src/store/types.js';

/** One message to alice@example.com whose Subject is its id. */
export async function send(port: number, id: string): Promise<void> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, name: 'client.example', localAddress: '127.0.0.2', tls: { rejectUnauthorized: false } });
  try {
    const raw = `From: bob@remote.test\r\nTo: alice@example.com\r\nMessage-ID: <${id}@remote.test>\r\nSubject: ${id}\r\n\r\nbody of ${id}\r\n`;
    await transport.sendMail({ envelope: { from: 'bob@remote.test', to: ['alice@example.com'] }, raw });
  } finally {
    transport.close();
  }
}

/** Senders that retry after 4xx; records every 250 and every 4xx with the time its attempt started. */
export class Load {
  readonly acked: { id: string; at: number }[] = [];
  readonly temporary: { id: string; startedAt: number; message: string }[] = [];
  private stopped = false;
  private readonly running: Promise<void[]>;
  private next = 0;

  constructor(
    private readonly port: number,
    private readonly prefix: string,
    senders = 4,
  ) {
    this.running = Promise.all(Array.from({ length: senders }, () => this.sender()));
  }

  private async sender(): Promise<void> {
    while (!this.stopped) {
      const id = `${this.prefix}${this.next++}`;
      while (!this.stopped) {
        const startedAt = Date.now();
        try {
          await send(this.port, id);
          this.acked.push({ id, at: Date.now() });
          break;
        } catch (error) {
          const code = (error as { responseCode?: number }).responseCode;
          if (code === undefined || code < 400 || code >= 500) throw error;
          this.temporary.push({ id, startedAt, message: (error as Error).message });
          await sleep(50);
        }
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  /** 4xx answers to attempts started after `at`. */
  temporaryAfter(at: number): string[] {
    return this.temporary.filter((t) => t.startedAt > at).map((t) => `${t.id} at +${t.startedAt - at} ms: ${t.message}`);
  }

  /** The longest time without a 250 (ms). */
  writeGap(): number {
    const times = this.acked.map((a) => a.at).sort((a, b) => a - b);
    return Math.max(0, ...times.slice(1).map((at, i) => at - times[i]!));
  }
}

/** Which acknowledged ids alice's INBOX lacks, and which it holds more than once. */
export async function storedCounts(store: Store, acked: readonly { id: string }[]): Promise<{ missing: string[]; doubled: string[] }> {
  const user = (await store.getUser('alice@example.com'))!;
  const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
  const stored = new Map<string, number>();
  for (const meta of await store.listMessages(inbox.id)) {
    const id = /^Subject: (\S+)/m.exec((await store.getBlob(meta.blobHash))!.toString())?.[1];
    if (id) stored.set(id, (stored.get(id) ?? 0) + 1);
  }
  return {
    missing: acked.filter((a) => !stored.has(a.id)).map((a) => a.id),
    doubled: acked.filter((a) => (stored.get(a.id) ?? 0) > 1).map((a) => a.id),
  };
}
