// `quill admin ...`, `quill user disable|enable`, and the audit log entries of the CLI's
// operator commands (issue 9). Every command that changes users, domains, the queue or the
// membership writes an audit entry with actor 'cli:<os user>' once it has succeeded: one
// postAction hook on the program, so the existing commands stay as they are.
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { isAlive } from '../cluster/membership.js';
import type { Cluster, MemberRequest, WebState } from '../store/types.js';
import { addStoreOptions, requireUser, table, UsageError, withStore, type StoreOptions } from './common.js';

/** Who runs the CLI, as the audit log names them. */
export function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return `cli:uid-${process.getuid?.() ?? 'unknown'}`;
  }
}

export async function auditCli(store: WebState, action: string, target: string, detail: Record<string, unknown> | null = null): Promise<void> {
  await store.addAudit({ actor: cliActor(), action, target, detail, node: null });
}

type Audited = (args: string[], options: Record<string, unknown>) => { action: string; target: string; detail?: Record<string, unknown> }[];

/** The existing commands that change state, by their path, and what their audit entries say. */
const AUDITED: Record<string, Audited> = {
  'domain add': ([name]) => [{ action: 'domain.add', target: name!.toLowerCase() }],
  'domain remove': ([name]) => [{ action: 'domain.remove', target: name!.toLowerCase() }],
  'user add': ([address], options) => [{ action: 'user.add', target: address!.toLowerCase(), detail: { quota: options.quota ?? null, isAdmin: options.admin === true } }],
  'user remove': ([address]) => [{ action: 'user.remove', target: address!.toLowerCase() }],
  'user passwd': ([address], options) => {
    const entries = [];
    // `passwd` sets the password unless only --quota was given (main.ts).
    if (options.password !== undefined || options.passwordStdin || options.quota === undefined) entries.push({ action: 'user.password', target: address!.toLowerCase() });
    if (options.quota !== undefined) entries.push({ action: 'user.quota', target: address!.toLowerCase(), detail: { quota: options.quota } });
    return entries;
  },
  'user move': ([address, group]) => [{ action: 'user.move', target: address!.toLowerCase(), detail: { to: group } }],
  'queue retry': ([id]) => [{ action: 'queue.retry', target: id! }],
  'queue hold': ([id]) => [{ action: 'queue.hold', target: id! }],
  'queue release': ([id]) => [{ action: 'queue.release', target: id! }],
  'queue delete': ([id]) => [{ action: 'queue.delete', target: id! }],
  drain: ([id]) => [{ action: 'node.drain', target: id!, detail: { requestedState: 'draining' } }],
  undrain: ([id]) => [{ action: 'node.undrain', target: id!, detail: { requestedState: 'active' } }],
};

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

async function requestStop(store: Cluster, id: string, request: MemberRequest): Promise<void> {
  const member = (await store.listMembers()).find((m) => m.id === id);
  if (!member) throw new UsageError(`no node or gateway ${id} (see quill status)`);
  if (!isAlive(member)) throw new UsageError(`${member.kind} ${id} is not running`);
  await store.requestMemberState(id, request);
}

export function addAdminCommands(program: Command): void {
  program.hook('postAction', async (_program, action) => {
    const audited = AUDITED[commandPath(action)];
    if (!audited) return;
    const options = action.opts() as StoreOptions & Record<string, unknown>;
    const entries = audited(action.args, options);
    await withStore(options, async (store) => {
      for (const entry of entries) await auditCli(store, entry.action, entry.target, entry.detail ?? null);
    });
  });

  const user = program.commands.find((c) => c.name() === 'user');
  if (!user) throw new Error('the user command must be registered before the admin commands');
  for (const [name, disabled, text] of [
    ['disable', true, 'refuse a user every login (IMAP, POP3, SMTP, web) and all incoming mail, keeping their data'],
    ['enable', false, 'let a disabled user log in and receive mail again'],
  ] as const) {
    addStoreOptions(user.command(`${name} <address>`))
      .description(text)
      .action(async (address: string, options: StoreOptions) => {
        await withStore(options, async (store) => {
          const found = await requireUser(store, address);
          await store.setUserDisabled(found.address, disabled);
          if (disabled) await store.deleteUserSessions(found.id);
          await auditCli(store, `user.${name}`, found.address);
        });
        process.stdout.write(`user ${address.toLowerCase()} ${name}d\n`);
      });
  }

  const admin = program.command('admin').description('operator tools: audit log, stopping nodes, raw data views');

  addStoreOptions(admin.command('audit'))
    .description('the audit log of operator actions, newest first')
    .option('--limit <n>', 'how many entries (default 50)', (value: string) => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new UsageError('--limit must be a whole number from 1 to 10000');
      return n;
    })
    .option('--json', 'machine-readable output')
    .action(async (options: StoreOptions & { limit?: number; json?: boolean }) => {
      const entries = await withStore(options, (store) => store.listAudit({ limit: options.limit ?? 50 }));
      if (options.json) {
        process.stdout.write(JSON.stringify(entries, null, 2) + '\n');
        return;
      }
      if (entries.length === 0) {
        process.stdout.write('the audit log is empty\n');
        return;
      }
      const rows = [['ID', 'AT', 'ACTOR', 'ACTION', 'TARGET', 'DETAIL']];
      for (const e of entries) rows.push([String(e.id), e.at.toISOString(), e.actor, e.action, e.target, e.detail ? JSON.stringify(e.detail) : '']);
      process.stdout.write(table(rows));
    });

  for (const [name, request, text] of [
    ['stop', 'stopping', 'ask a node to shut down gracefully and exit 0 (it stays down)'],
    ['restart', 'restarting', 'ask a node to shut down gracefully and exit 75, so its supervisor starts it again'],
  ] as const) {
    addStoreOptions(admin.command(`${name} <node>`))
      .description(text)
      .action(async (id: string, options: StoreOptions) => {
        await withStore(options, async (store) => {
          await requestStop(store, id, request);
          await auditCli(store, `node.${name}`, id, { requestedState: request });
        });
        process.stdout.write(`node ${id}: ${name} requested; it obeys at its next heartbeat\n`);
      });
  }

  const raw = admin.command('raw').description("read-only views of a user's stored data (each one is written to the audit log)");
  addStoreOptions(raw.command('mailboxes <address>'))
    .description("a user's mailboxes with their IMAP state and message counts")
    .option('--json', 'machine-readable output')
    .action(async (address: string, options: StoreOptions & { json?: boolean }) => {
      const rows = await withStore(options, async (store) => {
        const found = await requireUser(store, address);
        const mailboxes = await store.listMailboxes(found.id);
        const counted = await Promise.all(mailboxes.map(async (m) => ({ ...m, messages: (await store.mailboxStatus(m.id)).messages })));
        await auditCli(store, 'view', found.address, { what: 'mailboxes' });
        return counted;
      });
      if (options.json) {
        process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        return;
      }
      const lines = [['ID', 'NAME', 'MESSAGES', 'UIDVALIDITY', 'UIDNEXT', 'MODSEQ', 'SPECIAL-USE', 'SUBSCRIBED']];
      for (const m of rows) lines.push([String(m.id), m.name, String(m.messages), String(m.uidvalidity), String(m.uidnext), String(m.highestModseq), m.specialUse ?? '', m.subscribed ? 'yes' : 'no']);
      process.stdout.write(table(lines));
    });

  addStoreOptions(raw.command('message <address> <mailbox> <uid>'))
    .description('the stored bytes of one message, exactly, on standard output')
    .action(async (address: string, mailboxName: string, uidText: string, options: StoreOptions) => {
      const uid = Number(uidText);
      if (!Number.isInteger(uid) || uid < 1) throw new UsageError(`not a UID: ${uidText}`);
      const bytes = await withStore(options, async (store) => {
        const found = await requireUser(store, address);
        const mailbox = await store.getMailbox(found.id, mailboxName);
        if (!mailbox) throw new UsageError(`${found.address} has no mailbox ${mailboxName}`);
        const meta = await store.getMessage(mailbox.id, uid);
        if (!meta) throw new UsageError(`no message with UID ${uid} in ${mailbox.name}`);
        const data = await store.getBlob(meta.blobHash);
        if (!data) throw new UsageError(`the bytes of message ${uid} are missing`);
        await auditCli(store, 'view', found.address, { what: 'message', mailbox: mailbox.name, mailboxId: mailbox.id, uid });
        return data;
      });
      await new Promise<void>((resolve, reject) => process.stdout.write(bytes, (error) => (error ? reject(error) : resolve())));
    });
}
