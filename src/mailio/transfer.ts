// Moving a user's mail in and out of the store: `quill import` and `quill export`.
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import type { Store, User } from '../store/types.js';
import { canonicalMailboxName } from '../store/kysely-store.js';
import { listMaildirFolders, listMaildirMessages, maildirFolderDir, readMaildirMessage, writeMaildirMessage } from './maildir.js';
import { readMbox, writeMboxMessage } from './mbox.js';

export interface ImportItem {
  folder: string;
  raw: Buffer;
  flags: string[];
  date?: Date;
}

export interface TransferReport {
  messages: number;
  bytes: number;
  folders: string[];
}

/** How many deliveries are in flight at once: enough for group commit to batch fsyncs. */
const IN_FLIGHT = 64;

export async function importMessages(store: Store, user: User, items: AsyncIterable<ImportItem> | Iterable<ImportItem>): Promise<TransferReport> {
  const known = new Set((await store.listMailboxes(user.id)).map((m) => m.name));
  const report: TransferReport = { messages: 0, bytes: 0, folders: [] };
  const inFlight = new Set<Promise<void>>();
  for await (const item of items) {
    const folder = canonicalMailboxName(item.folder);
    if (!known.has(folder)) {
      await store.createMailbox(user.id, folder);
      known.add(folder);
    }
    if (!report.folders.includes(folder)) report.folders.push(folder);
    const done: Promise<void> = store.deliver(item.raw, [{ userId: user.id, mailbox: folder, flags: item.flags }], { internalDate: item.date }).then(() => {
      report.messages++;
      report.bytes += item.raw.length;
      inFlight.delete(done);
    });
    inFlight.add(done);
    if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return report;
}

export async function* mboxItems(file: string, folder: string): AsyncGenerator<ImportItem> {
  for await (const message of readMbox(file)) yield { folder, raw: message.raw, flags: [], date: message.date };
}

export function* maildirItems(root: string): Generator<ImportItem> {
  for (const folder of listMaildirFolders(root)) {
    for (const message of listMaildirMessages(folder)) {
      yield { folder: folder.name, raw: readMaildirMessage(message), flags: message.flags, date: message.date };
    }
  }
}

/** Writes every mailbox (or one) as Maildir++ or as one mboxrd file per mailbox. */
export async function exportMail(store: Store, user: User, format: 'mbox' | 'maildir', dest: string, only?: string): Promise<TransferReport> {
  const report: TransferReport = { messages: 0, bytes: 0, folders: [] };
  const mailboxes = (await store.listMailboxes(user.id)).filter((m) => only === undefined || m.name === canonicalMailboxName(only));
  for (const mailbox of mailboxes) {
    report.folders.push(mailbox.name);
    const dir = format === 'maildir' ? maildirFolderDir(dest, mailbox.name) : undefined;
    let out: ReturnType<typeof createWriteStream> | undefined;
    if (format === 'mbox') {
      const file = path.join(dest, `${mailbox.name}.mbox`);
      mkdirSync(path.dirname(file), { recursive: true });
      out = createWriteStream(file);
    }
    // Page through the mailbox so a large one is never loaded whole.
    for (let from = 1; ; ) {
      const page = await store.listMessages(mailbox.id, { fromUid: from, limit: 500 });
      if (page.length === 0) break;
      for (const meta of page) {
        const raw = await store.getBlob(meta.blobHash);
        if (!raw) continue;
        if (out) await writeMboxMessage(out, raw, user.address, meta.internalDate);
        else writeMaildirMessage(dir!, `${meta.internalDate.getTime()}.${mailbox.uidvalidity}_${meta.uid}.quill`, raw, meta.flags, meta.internalDate);
        report.messages++;
        report.bytes += raw.length;
      }
      from = page[page.length - 1]!.uid + 1;
    }
    if (out) {
      out.end();
      await finished(out);
    }
  }
  return report;
}
