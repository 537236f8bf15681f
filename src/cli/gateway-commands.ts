// `quill gateway`: the protocol gateway in front of the nodes, sharing only the store with them.
import { Option, type Command } from 'commander';
import { EXIT_RESTART } from '../cluster/membership.js';
import { openStore } from '../store/open.js';
import { addStoreOptions, configFrom, stopOnSignals } from './common.js';

export function addGatewayCommand(program: Command): void {
  addStoreOptions(program.command('gateway'))
    .description('run a gateway: take clients on the public ports and hand each session to the least loaded live node')
    .option('--id <name>', "the gateway's name in the membership")
    .option('--smtp <host:port>', 'SMTP (MX) listener')
    .option('--submission <host:port>', 'submission listener')
    .option('--pop3 <host:port>', 'POP3 listener')
    .option('--imap <host:port>', 'IMAP listener')
    .option('--http <host:port>', 'HTTP listener')
    .option('--submissions <host:port>', 'submission over implicit TLS (port 465) listener')
    .option('--imaps <host:port>', 'IMAP over implicit TLS (port 993) listener')
    .option('--pop3s <host:port>', 'POP3 over implicit TLS (port 995) listener')
    .option('--https <host:port>', 'HTTPS listener (TLS ends at the gateway)')
    .option('--standby', 'hot standby on this machine: take over the listening addresses as soon as the gateway holding them exits (config gateway.standby)')
    .option('--admin <host:port>', 'admin endpoint for operators: /metrics, /healthz, /readyz (config gateway.adminListen)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action(async (options) => {
      const config = configFrom({
        ...options,
        listen: { smtp: options.smtp, submission: options.submission, pop3: options.pop3, imap: options.imap, http: options.http },
        implicitTls: { submissions: options.submissions, imaps: options.imaps, pop3s: options.pop3s, https: options.https },
      });
      // Loaded here: pino is not needed by the commands that do not serve (CLI start-up).
      const { createLogger } = await import('../util/logger.js');
      const logger = createLogger(config.log.level);
      const store = await openStore(config);
      const { startGateway } = await import('../gateway/gateway.js');
      // Asked to stop (quill admin stop) the gateway exits 0 and stays down; asked to restart it
      // exits EXIT_RESTART, for its supervisor (systemd Restart=on-failure) to start it again.
      const gateway = await startGateway(config, store, logger, {
        id: options.id,
        adminListen: options.admin,
        onStopRequested: (request) => void store.close().finally(() => process.exit(request === 'restart' ? EXIT_RESTART : 0)),
      });
      stopOnSignals('letting gateway sessions finish', () => gateway.close().then(() => store.close()));
    });
}
