// `quill import` and `quill export`: move a user's mail in from mbox or Maildir, and out again.
// The mail modules load when one of these runs: they bring the store's query builder, which
// `quill --help` and the other commands do not need at start-up (issue 19: ≤ 300 ms).
import { existsSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { formatSize } from '../util/size.js';
import { addStoreOptions, requireUser, UsageError, withStore, type StoreOptions } from './common.js';

export function addMailCommands(program: Command): void {
  addStoreOptions(program.command('import <format> <address> <path>'))
    .description('import mail: format mbox (one file) or maildir (a Maildir++ tree, folders kept)')
    .option('--mailbox <name>', 'target mailbox for mbox (default INBOX)', 'INBOX')
    .action(async (format: string, address: string, source: string, options: StoreOptions & { mailbox: string }) => {
      if (format !== 'mbox' && format !== 'maildir') throw new UsageError(`unknown format ${format}: use mbox or maildir`);
      if (!existsSync(source)) throw new UsageError(`${source} does not exist`);
      if (format === 'mbox' && !statSync(source).isFile()) throw new UsageError(`${source} is not an mbox file`);
      const [{ listMaildirFolders }, { importMessages, maildirItems, mboxItems }] = await Promise.all([import('../mailio/maildir.js'), import('../mailio/transfer.js')]);
      const report = await withStore(options, async (store) => {
        const user = await requireUser(store, address);
        if (format === 'mbox') return importMessages(store, user, mboxItems(source, options.mailbox));
        try {
          listMaildirFolders(source);
        } catch (error) {
          throw new UsageError((error as Error).message);
        }
        return importMessages(store, user, maildirItems(source));
      });
      process.stdout.write(`imported ${report.messages} message(s), ${formatSize(report.bytes)}, into ${report.folders.join(', ') || 'nothing'}\n`);
      for (const skipped of report.skipped) process.stderr.write(`quill: skipped mailbox ${skipped}\n`);
    });

  addStoreOptions(program.command('export <address> <path>'))
    .description("export a user's mail to a directory: Maildir++ (default) or one mbox file per mailbox")
    .option('--format <format>', 'maildir or mbox', 'maildir')
    .option('--mailbox <name>', 'only this mailbox')
    .action(async (address: string, dest: string, options: StoreOptions & { format: string; mailbox?: string }) => {
      if (options.format !== 'mbox' && options.format !== 'maildir') throw new UsageError(`unknown format ${options.format}: use mbox or maildir`);
      const format = options.format;
      const { exportMail } = await import('../mailio/transfer.js');
      const report = await withStore(options, async (store) => {
        const user = await requireUser(store, address);
        if (options.mailbox !== undefined && !(await store.getMailbox(user.id, options.mailbox))) throw new UsageError(`no mailbox ${options.mailbox}`);
        return exportMail(store, user, format, dest, options.mailbox);
      });
      process.stdout.write(`exported ${report.messages} message(s), ${formatSize(report.bytes)}, from ${report.folders.join(', ')}\n`);
      for (const skipped of report.skipped) process.stderr.write(`quill: skipped mailbox ${skipped}\n`);
    });
}
