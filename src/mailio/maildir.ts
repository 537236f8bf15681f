// Maildir (and Maildir++ folders) in and out. Flags travel in the ":2,<flags>" suffix:
// D draft, F flagged, R replied, S seen, T trashed.
import { lstatSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';

const LETTER_TO_FLAG: Record<string, string> = { D: '\\Draft', F: '\\Flagged', R: '\\Answered', S: '\\Seen', T: '\\Deleted' };
const FLAG_TO_LETTER = Object.fromEntries(Object.entries(LETTER_TO_FLAG).map(([letter, flag]) => [flag, letter]));

export interface MaildirMessage {
  folder: string;
  file: string;
  flags: string[];
  date: Date;
}

export function flagsFromName(name: string): string[] {
  const info = name.lastIndexOf(':2,');
  if (info < 0) return [];
  return [...name.slice(info + 3)].map((letter) => LETTER_TO_FLAG[letter]).filter((f): f is string => f !== undefined);
}

function isMaildir(dir: string): boolean {
  return existsSync(path.join(dir, 'cur')) || existsSync(path.join(dir, 'new'));
}

/** Folders of a Maildir++ tree: the root is INBOX, ".Work.Projects" is Work/Projects. */
export function listMaildirFolders(root: string): { name: string; dir: string }[] {
  if (!isMaildir(root)) throw new Error(`${root} is not a Maildir (no cur/ or new/)`);
  const folders = [{ name: 'INBOX', dir: root }];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (entry.isDirectory() && entry.name.startsWith('.') && entry.name.length > 1 && isMaildir(path.join(root, entry.name))) {
      folders.push({ name: entry.name.slice(1).split('.').join('/'), dir: path.join(root, entry.name) });
    }
  }
  return folders;
}

/** Messages of one folder, oldest first (by file time). */
export function listMaildirMessages(folder: { name: string; dir: string }): MaildirMessage[] {
  const out: MaildirMessage[] = [];
  for (const sub of ['new', 'cur']) {
    const dir = path.join(folder.dir, sub);
    // Only what is really inside the tree: symbolic links (to files or directories anywhere) are not followed.
    if (!existsSync(dir) || !lstatSync(dir).isDirectory()) continue;
    for (const name of readdirSync(dir)) {
      const file = path.join(dir, name);
      const stat = lstatSync(file);
      if (!stat.isFile()) continue;
      out.push({ folder: folder.name, file, flags: flagsFromName(name), date: stat.mtime });
    }
  }
  return out.sort((a, b) => a.date.getTime() - b.date.getTime() || a.file.localeCompare(b.file));
}

export function readMaildirMessage(message: MaildirMessage): Buffer {
  return readFileSync(message.file);
}

/** A folder's directory name in a Maildir++ tree: "" for INBOX, ".Work.Projects" for Work/Projects. */
export function maildirFolderName(folder: string): string {
  return folder === 'INBOX' ? '' : '.' + folder.split('/').join('.');
}

/** The directory of a folder in a Maildir++ tree being written. */
export function maildirFolderDir(root: string, folder: string): string {
  const dir = path.join(root, maildirFolderName(folder));
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(path.join(dir, sub), { recursive: true });
  return dir;
}

export function writeMaildirMessage(dir: string, uniqueName: string, raw: Buffer, flags: string[], date: Date): void {
  const letters = flags.map((f) => FLAG_TO_LETTER[f]).filter((l): l is string => l !== undefined).sort().join('');
  const file = path.join(dir, 'cur', `${uniqueName}:2,${letters}`);
  writeFileSync(file, raw);
  utimesSync(file, date, date);
}
