// Moving a user's mail in and out of the store: `quill import` and `quill export`.
import { createWriteStream, existsSync, lstatSync, mkdirSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import type { Blobs, Mailstore, User } from '../store/types.js';
import { canonicalMailboxName } from '../store/kysely-store.js';
import { mailboxNameProblem } from '../store/mailbox-name.js';
import { listMaildirFolders, listMaildirMessages, maildirFolderDir, maildirFolderName, readMaildirMessage, writeMaildirMessage } from './maildir.js';
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
  /** Mailboxes left out, each with why: a name that is not a mailbox name or would be a path outside the directory. */
  skipped: string[];
}

/**
 * A path for `relative` inside `root`, or undefined when it would be outside: resolved, and
 * the real directory it lands in (symbolic links followed) checked to be root or below it.
 */
export function confinedPath(root: string, relative: string): string | undefined {
  const base = path.resolve(root);
  const full = path.resolve(base, relative);
  if (!isWithin(base, full)) return undefined;
  // Links: the nearest existing directory on the way must really be inside root too.
  let dir = full === base ? base : path.dirname(full);
  while (!existsSync(dir) && dir !== base) dir = path.dirname(dir);
  if (existsSync(dir) && existsSync(base) && !isWithin(realpathSync(base), realpathSync(dir))) return undefined;
  if (existsSync(full) && lstatSync(full).isSymbolicLink()) return undefined;
  return full;
}

function isWithin(base: string, full: string): boolean {
  return full === base || full.startsWith(base.endsWith(path.sep) ? base : base + path.sep);
}

/** How many deliveries are in flight at once: enough for group commit to batch fsyncs. */
const IN_FLIGHT = 64;

export async function importMessages(store: Mailstore, user: User, items: AsyncIterable<ImportItem> | Iterable<ImportItem>): Promise<TransferReport> {
  const known = new Set((await store.listMailboxes(user.id)).map((m) => m.name));
  const report: TransferReport = { messages: 0, bytes: 0, folders: [], skipped: [] };
  const inFlight = new Set<Promise<void>>();
  for await (const item of items) {
    const folder = canonicalMailboxName(item.folder);
    const problem = known.has(folder) ? undefined : mailboxNameProblem(folder);
    if (problem) {
      const note = `${JSON.stringify(folder)}: ${problem}`;
      if (!report.skipped.includes(note)) report.skipped.push(note);
      continue;
    }
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
export async function exportMail(store: Mailstore & Blobs, user: User, format: 'mbox' | 'maildir', dest: string, only?: string): Promise<TransferReport> {
  const report: TransferReport = { messages: 0, bytes: 0, folders: [], skipped: [] };
  const mailboxes = (await store.listMailboxes(user.id)).filter((m) => only === undefined || m.name === canonicalMailboxName(only));
  mkdirSync(dest, { recursive: true });
  for (const mailbox of mailboxes) {
    // A name from before names were checked ("../../x") must not become a path outside dest.
    const problem = mailboxNameProblem(mailbox.name);
    const target = problem ? undefined : confinedPath(dest, format === 'maildir' ? maildirFolderName(mailbox.name) : `${mailbox.name}.mbox`);
    if (!target) {
      report.skipped.push(`${JSON.stringify(mailbox.name)}: ${problem ?? 'would be written outside the destination'}`);
      continue;
    }
    report.folders.push(mailbox.name);
    const dir = format === 'maildir' ? maildirFolderDir(dest, mailbox.name) : undefined;
    let out: ReturnType<typeof createWriteStream> | undefined;
    if (format === 'mbox') {
      mkdirSync(path.dirname(target), { recursive: true });
      if (!confinedPath(dest, `${mailbox.name}.mbox`)) throw new Error(`${target} is outside ${dest}`);
      out = createWriteStream(target);
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
