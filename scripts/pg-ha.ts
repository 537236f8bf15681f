// A pg_auto_failover group (monitor, primary, synchronous standby) in a temp dir for local
// trials, as the `postgres` user when run as root. Prints the store URL; Ctrl-C stops it all.
//   node --import tsx scripts/pg-ha.ts [--nodes N]
import { startAutoFailover } from '../test/pg-ha.js';

const index = process.argv.indexOf('--nodes');
const nodes = index === -1 ? 2 : Number(process.argv[index + 1]);
if (!Number.isInteger(nodes) || nodes < 1 || nodes > 5) {
  process.stderr.write('usage: scripts/pg-ha.ts [--nodes 1..5]\n');
  process.exit(2);
}

const group = await startAutoFailover({ nodes });
process.stdout.write(
  [
    `pg_auto_failover group in ${group.dir}`,
    `monitor:  ${group.monitorUrl}`,
    `store:    ${group.url}`,
    '',
    `  npx quill db init --store '${group.url}'`,
    `  npx quill start --store '${group.url}'`,
    '',
    'Nodes:',
    ...(await group.states()).map((n) => `  ${n.name}  127.0.0.1:${n.port}  ${n.reported}`),
    '',
    `Watch:  pg_autoctl show state --monitor '${group.monitorUrl}'`,
    'Ctrl-C stops the monitor and the nodes and removes their files.',
    '',
  ].join('\n'),
);
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  group.destroy().then(() => process.exit(0), () => process.exit(1));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
