// `quill start --nodes N`: a whole cluster on one machine for trying it out — a gateway on
// the configured ports in this process and N node processes on ephemeral loopback ports,
// all sharing the embedded store. A node that dies (or exits to be restarted) is started
// again (Porcupine's self-healing, in miniature); the gateway keeps clients away from it meanwhile.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from '../config/config.js';
import { startGateway } from '../gateway/gateway.js';
import { openStore } from '../server.js';
import { createLogger } from '../util/logger.js';
import { stopOnSignals } from './common.js';

const RESTART_DELAY_MS = 1_000;

interface NodeProcess {
  id: string;
  child?: ChildProcess;
}

export async function runLocalCluster(config: Readonly<Config>, configFile: string | undefined, count: number): Promise<void> {
  const logger = createLogger(config.log.level);
  const store = await openStore(config);
  // The nodes believe this gateway's PROXY header and XCLIENT, so they see every client's own
  // address; and only on links that prove the cluster's secret, made here for this cluster
  // unless the config names one (127.0.0.1 is every local user's address too).
  const secret = config.cluster.secret ?? randomBytes(24).toString('base64url');
  const gatewayConfig = { ...config, gateway: { ...config.gateway, proxyProtocol: true }, cluster: { ...config.cluster, secret } };
  let stopping = false;
  // The gateway obeys an operator's stop (the whole local cluster stops, as on SIGTERM) and
  // restart (a new gateway on the same ports, the nodes untouched).
  const startLocalGateway = () =>
    startGateway(gatewayConfig, store, logger, {
      id: `gateway-${hostname()}`,
      onStopRequested: (request) => {
        if (stopping) return;
        if (request === 'stop') return void process.kill(process.pid, 'SIGTERM');
        startLocalGateway().then(
          (started) => (gateway = started),
          (error: unknown) => {
            logger.error({ err: error }, 'local cluster: the gateway did not start again; stopping');
            process.kill(process.pid, 'SIGTERM');
          },
        );
      },
    });
  let gateway = await startLocalGateway();
  const nodes: NodeProcess[] = Array.from({ length: count }, (_, i) => ({ id: `node-${i + 1}` }));

  const launch = (node: NodeProcess) => {
    // The same runtime flags (tsx under tests) and entry point as this process.
    const args = [...process.execArgv, process.argv[1]!, 'node', '--id', node.id, '--data', config.data, '--hostname', config.hostname];
    if (configFile) args.push('--config', configFile);
    if (config.store.url) args.push('--store', config.store.url);
    for (const protocol of ['smtp', 'submission', 'pop3', 'imap', 'http']) args.push(`--${protocol}`, '127.0.0.1:0');
    args.push('--trusted-gateway', '127.0.0.1');
    // The secret goes in the environment, not on the command line (where ps shows it).
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, QUILL_CLUSTER_SECRET: secret } });
    node.child = child;
    logger.info({ node: node.id, pid: child.pid }, 'local cluster: node started');
    child.once('exit', (code, signal) => {
      node.child = undefined;
      if (stopping) return;
      if (code === 0) {
        // A clean exit is a stop an operator asked for (quill admin stop): it stays down.
        // A crash, a kill or a restart request (exit EXIT_RESTART) brings it back.
        logger.info({ node: node.id }, 'local cluster: node stopped; not starting it again');
        return;
      }
      logger.warn({ node: node.id, code, signal }, 'local cluster: node exited; starting it again');
      setTimeout(() => !stopping && launch(node), RESTART_DELAY_MS).unref();
    });
  };
  nodes.forEach(launch);

  stopOnSignals(`stopping the gateway and ${count} nodes`, async () => {
    stopping = true; // no restarts from here on
    const exits = nodes.map((node) => {
      const child = node.child;
      if (!child) return Promise.resolve();
      return new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    });
    await Promise.all([gateway.close(), ...exits]);
    await store.close();
  });
}
