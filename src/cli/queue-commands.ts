// `quill queue ...` and the DNS/DKIM helpers of `quill domain`: the outbound side for operators.
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { Command } from 'commander';
import { headerBlock } from '../queue/dsn.js';
import { loadConfig } from '../config/config.js';
import type { Queue } from '../store/types.js';
import { formatSize } from '../util/size.js';
import { addStoreOptions, table, UsageError, withStore, type StoreOptions } from './common.js';

function queueId(text: string): number {
  const id = Number(text);
  if (!Number.isInteger(id) || id <= 0) throw new UsageError(`not a queue id: ${text}`);
  return id;
}

export function addQueueCommands(program: Command): void {
  const queue = program.command('queue').description('the outbound queue');
  addStoreOptions(queue.command('list'))
    .description('list queued outbound messages')
    .option('--json', 'machine-readable output')
    .action(async (options: StoreOptions & { json?: boolean }) => {
      const entries = await withStore(options, (store) => store.listOutbound());
      if (options.json) {
        process.stdout.write(JSON.stringify(entries, null, 2) + '\n');
        return;
      }
      if (entries.length === 0) {
        process.stdout.write('queue is empty\n');
        return;
      }
      const rows = [['ID', 'STATUS', 'ATTEMPTS', 'SIZE', 'QUEUED', 'NEXT ATTEMPT', 'FROM', 'TO', 'LAST ERROR']];
      for (const e of entries) {
        rows.push([String(e.id), e.status, String(e.attempts), formatSize(e.size), e.createdAt.toISOString(), e.nextAttemptAt.toISOString(), e.sender || '<>', e.recipient, e.lastError ?? '']);
      }
      process.stdout.write(table(rows));
    });

  addStoreOptions(queue.command('show <id>'))
    .description('one queued message: envelope, attempts, last error and its headers')
    .action(async (idText: string, options: StoreOptions) => {
      const id = queueId(idText);
      await withStore(options, async (store) => {
        const entry = await store.getOutbound(id);
        if (!entry) throw new UsageError(`no queue entry ${id}`);
        const raw = await store.getBlob(entry.blobHash);
        const lines = [
          `id:           ${entry.id}`,
          `status:       ${entry.status}`,
          `from:         ${entry.sender || '<>'}`,
          `to:           ${entry.recipient}`,
          `size:         ${formatSize(entry.size)}`,
          `queued:       ${entry.createdAt.toISOString()}`,
          `attempts:     ${entry.attempts}`,
          `next attempt: ${entry.nextAttemptAt.toISOString()}`,
          `last error:   ${entry.lastError ?? '-'}`,
          '',
        ];
        process.stdout.write(lines.join('\n') + (raw ? headerBlock(raw).toString('utf8') : '(message bytes missing)\n'));
      });
    });

  const actions: [string, string, (id: number, store: Queue) => Promise<boolean>, string][] = [
    ['retry', 'try a message again now', (id, store) => store.setOutboundStatus(id, 'queued'), 'will be retried now'],
    ['release', 'release a held message', (id, store) => store.setOutboundStatus(id, 'queued'), 'released'],
    ['hold', 'keep a message in the queue without sending it', (id, store) => store.setOutboundStatus(id, 'held'), 'held'],
    ['delete', 'remove a message from the queue without sending it or a bounce', (id, store) => store.deleteOutbound(id), 'deleted'],
  ];
  for (const [name, description, act, done] of actions) {
    addStoreOptions(queue.command(`${name} <id>`))
      .description(description)
      .action(async (idText: string, options: StoreOptions) => {
        const id = queueId(idText);
        const found = await withStore(options, (store) => act(id, store));
        if (!found) throw new UsageError(`no queue entry ${id}`);
        process.stdout.write(`queue entry ${id} ${done}\n`);
      });
  }
}

function dkimRecord(domain: string, selector: string, publicKey: KeyObject): string {
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  return `${selector}._domainkey.${domain.toLowerCase()}. IN TXT "v=DKIM1; k=rsa; p=${p}"`;
}

/** `quill domain dkim` and `quill domain dns`, added to the existing `domain` command. */
export function addDomainDnsCommands(domain: Command): void {
  addStoreOptions(domain.command('dkim <name>'))
    .description('generate a DKIM key for a domain (outbound mail is signed with it) and print its DNS record')
    .option('--selector <selector>', 'DKIM selector', 'quill')
    .action(async (name: string, options: StoreOptions & { selector: string }) => {
      if (!/^[a-z0-9][a-z0-9-]*$/i.test(options.selector)) throw new UsageError(`not a selector: ${options.selector}`);
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      await withStore(options, async (store) => {
        if (!(await store.getDomain(name))) throw new UsageError(`no domain ${name}; add it with \`quill domain add ${name}\``);
        await store.setDkimKey(name, options.selector, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
      });
      process.stdout.write(dkimRecord(name, options.selector, publicKey) + '\n');
    });

  addStoreOptions(domain.command('dns <name>'))
    .description('print the DNS records a domain needs: MX, SPF, DKIM, DMARC, client autoconfiguration')
    .action(async (name: string, options: StoreOptions) => {
      const config = loadConfig(options.config, options);
      const host = config.hostname;
      const d = name.toLowerCase();
      const key = await withStore(options, async (store) => {
        if (!(await store.getDomain(d))) throw new UsageError(`no domain ${d}`);
        return store.getDkimKey(d);
      });
      const lines = [
        `${d}. IN MX 10 ${host}.`,
        `${d}. IN TXT "v=spf1 mx -all"`,
        key ? dkimRecord(d, key.selector, createPublicKey(key.privateKeyPem)) : `; DKIM: run \`quill domain dkim ${d}\` to create a key and its record`,
        `_dmarc.${d}. IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@${d}"`,
        `; RFC 6186 client autoconfiguration`,
        `_submission._tcp.${d}. IN SRV 0 1 587 ${host}.`,
        `_imap._tcp.${d}. IN SRV 0 1 143 ${host}.`,
        `_pop3._tcp.${d}. IN SRV 0 1 110 ${host}.`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });
}
