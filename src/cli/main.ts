// The `quill` command. Usage errors exit with code 2 and one clear line; store errors with 1.
// What only serving needs (the servers, the gateway, PostgreSQL) is imported inside the command
// that serves, so `quill user add` and `quill domain list` start in a fraction of the time.
import { Command, CommanderError, Option } from 'commander';
import { ConfigError } from '../config/config.js';
import { StoreError } from '../store/types.js';
import { VERSION } from '../version.js';
import { configurePasswords, hashPassword } from '../util/password.js';
import { formatSize, parseSize } from '../util/size.js';
import { addStoreOptions, configFrom, stopOnSignals, table, UsageError, withStore, type StoreOptions } from './common.js';
import { addClusterCommands } from './cluster-commands.js';
import { addDbCommands } from './db-commands.js';
import { addGroupCommands } from './group-commands.js';
import { addAdminCommands } from './admin-commands.js';
import { addMailCommands } from './mail-commands.js';
import { addDomainDnsCommands, addQueueCommands } from './queue-commands.js';
import { addGatewayCommand } from './gateway-commands.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function passwordFrom(options: { password?: string; passwordStdin?: boolean }): Promise<string> {
  if (options.password !== undefined && options.passwordStdin) throw new UsageError('give either --password or --password-stdin, not both');
  const password = options.passwordStdin ? await readStdin() : options.password;
  if (password === undefined) throw new UsageError('a password is required: --password PW or --password-stdin');
  if (password.length === 0) throw new UsageError('the password must not be empty');
  return password;
}

function parseQuota(value: string): number {
  try {
    return parseSize(value);
  } catch (error) {
    throw new UsageError(`--quota: ${(error as Error).message}`);
  }
}


function addServerCommand(program: Command, name: string, description: string): Command {
  return addStoreOptions(program.command(name))
    .description(description)
    .option('--hostname <name>', 'host name used in greetings and Received headers')
    .option('--smtp <host:port>', 'SMTP (MX) listener, default 127.0.0.1:2525')
    .option('--submission <host:port>', 'submission listener, default 127.0.0.1:2587')
    .option('--pop3 <host:port>', 'POP3 listener, default 127.0.0.1:2110')
    .option('--imap <host:port>', 'IMAP listener, default 127.0.0.1:2143')
    .option('--http <host:port>', 'HTTP listener (web app, API, health), default 127.0.0.1:8080')
    .option('--https <host:port>', 'also serve the web app and API over TLS here (the node certificate)')
    .option('--trusted-gateway <address...>', 'gateway addresses whose PROXY header and XCLIENT this node believes')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action(async (options) => {
      const readConfig = () =>
        configFrom({
          ...options,
          listen: { smtp: options.smtp, submission: options.submission, pop3: options.pop3, imap: options.imap, http: options.http, https: options.https },
          trustedGateways: options.trustedGateway,
        });
      const config = readConfig();
      if (options.nodes !== undefined) return (await import('./local-cluster.js')).runLocalCluster(config, options.config, options.nodes);
      const [{ startServer }, { EXIT_RESTART }] = await Promise.all([import('../server.js'), import('../cluster/membership.js')]);
      if (name === 'start') {
        // A plain `quill start` has no supervisor to start it again: after a restart request the
        // server (already closed) starts anew in this process, with its configuration read again.
        // After a stop the process exits 0.
        let server: Awaited<ReturnType<typeof startServer>>;
        const run = async (current: typeof config): Promise<void> => {
          server = await startServer(current, {
            nodeId: options.id,
            onStopRequested: (request) => {
              if (request !== 'restart') process.exit(0);
              process.stderr.write('quill: restarting in this process (configuration read again)\n');
              run(readConfig()).catch((error: unknown) => {
                process.stderr.write(`quill: could not start again: ${(error as Error).message}\n`);
                process.exit(1);
              });
            },
          });
        };
        await run(config);
        stopOnSignals('finishing open transactions', () => server.close());
        return;
      }
      // A cluster node: after an operator's stop it exits 0 (stays down); after a restart EXIT_RESTART, for its supervisor.
      const server = await startServer(config, { nodeId: options.id, onStopRequested: (request) => process.exit(request === 'restart' ? EXIT_RESTART : 0) });
      stopOnSignals('finishing open transactions', () => server.close());
    });
}

function buildProgram(): Command {
  const program = new Command('quill')
    .description('Quillmail: SMTP, submission, IMAP, POP3 and HTTP over one store')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });

  addServerCommand(program, 'start', 'start every protocol in one process on the embedded store').option(
    '--nodes <n>',
    'instead: a local cluster of a gateway on these ports and N node processes behind it',
    (value: string) => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > 64) throw new UsageError('--nodes must be a whole number from 1 to 64');
      return n;
    },
  );
  addServerCommand(program, 'node', 'run a cluster node: every protocol plus a heartbeat, under a stable --id').requiredOption('--id <name>', "the node's name in the membership");

  const domain = program.command('domain').description('manage local domains');
  addStoreOptions(domain.command('add <name>'))
    .description('accept mail for a domain')
    .action(async (name: string, options: StoreOptions) => {
      if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(name)) throw new UsageError(`not a domain name: ${name}`);
      await withStore(options, (store) => store.addDomain(name));
      process.stdout.write(`domain ${name.toLowerCase()} added\n`);
    });
  addStoreOptions(domain.command('list'))
    .description('list local domains')
    .action(async (options: StoreOptions) => {
      const domains = await withStore(options, (store) => store.listDomains());
      process.stdout.write(domains.map((d) => `${d.name}\n`).join(''));
    });
  addStoreOptions(domain.command('remove <name>'))
    .description('stop accepting mail for a domain (it must have no users)')
    .action(async (name: string, options: StoreOptions) => {
      await withStore(options, (store) => store.removeDomain(name));
      process.stdout.write(`domain ${name.toLowerCase()} removed\n`);
    });

  addDomainDnsCommands(domain);

  const user = program.command('user').description('manage mail users');
  addStoreOptions(user.command('add <address>'))
    .description('create a user with the default mailboxes')
    .option('--password <pw>', 'the password (visible in the process list; prefer --password-stdin)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--quota <size>', 'mail quota such as 1G or 500MB (default unlimited)')
    .option('--admin', 'make the user an administrator')
    .option('--group <name>', 'put the user in this PostgreSQL group (default: the least-loaded)')
    .action(async (address: string, options: StoreOptions & { password?: string; passwordStdin?: boolean; quota?: string; admin?: boolean; group?: string }) => {
      if (!/^[^@\s]+@[^@\s]+$/.test(address)) throw new UsageError(`not an address: ${address}`);
      const quotaBytes = options.quota ? parseQuota(options.quota) : 0;
      configurePasswords({ scryptN: configFrom(options).limits.passwordScryptN });
      const passwordHash = await hashPassword(await passwordFrom(options));
      const input = { address, passwordHash, quotaBytes, isAdmin: options.admin };
      await withStore(options, async (store) =>
        options.group === undefined ? store.addUser(input) : (await import('../store/grouped-store.js')).addUserToGroup(store, input, options.group),
      );
      process.stdout.write(`user ${address.toLowerCase()} added\n`);
    });
  addStoreOptions(user.command('list [domain]'))
    .description('list users, optionally of one domain')
    .action(async (domainName: string | undefined, options: StoreOptions) => {
      const users = await withStore(options, (store) => store.listUsers(domainName));
      const rows = users.map((u) => [u.address, `${formatSize(u.usedBytes)}/${u.quotaBytes ? formatSize(u.quotaBytes) : 'unlimited'}`, u.isAdmin ? 'admin' : '']);
      process.stdout.write(table(rows));
    });
  addStoreOptions(user.command('remove <address>'))
    .description('delete a user and all their mail')
    .action(async (address: string, options: StoreOptions) => {
      await withStore(options, (store) => store.removeUser(address));
      process.stdout.write(`user ${address.toLowerCase()} removed\n`);
    });
  addStoreOptions(user.command('passwd <address>'))
    .description("change a user's password, and optionally the quota")
    .option('--password <pw>', 'the new password')
    .option('--password-stdin', 'read the new password from standard input')
    .option('--quota <size>', 'also set the quota (0 = unlimited)')
    .action(async (address: string, options: StoreOptions & { password?: string; passwordStdin?: boolean; quota?: string }) => {
      const quota = options.quota !== undefined ? parseQuota(options.quota) : undefined;
      configurePasswords({ scryptN: configFrom(options).limits.passwordScryptN });
      const passwordHash = options.password !== undefined || options.passwordStdin || quota === undefined ? await hashPassword(await passwordFrom(options)) : undefined;
      await withStore(options, async (store) => {
        if (passwordHash) await store.setPassword(address, passwordHash);
        if (quota !== undefined) await store.setQuota(address, quota);
      });
      process.stdout.write(`user ${address.toLowerCase()} updated\n`);
    });

  addQueueCommands(program);
  addMailCommands(program);
  addClusterCommands(program);
  addGatewayCommand(program);
  addDbCommands(program);
  addGroupCommands(program, user);
  addAdminCommands(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit 0; every usage mistake exits 2.
      process.exit(error.exitCode === 0 ? 0 : 2);
    }
    if (error instanceof UsageError || error instanceof ConfigError) {
      process.stderr.write(`quill: ${error.message}\n`);
      process.exit(2);
    }
    if (error instanceof StoreError) {
      process.stderr.write(`quill: ${error.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`quill: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  }
}

await main(process.argv);
