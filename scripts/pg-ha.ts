// A pg_auto_failover group (monitor, primary, synchronous standby) in a temp dir for local
// trials, as the `postgres` user when run as root. Keepers are started again when they exit, as
// systemd's Restart=always does (deploy/pg-autoctl-*.service). Prints the store URL; Ctrl-C
// stops it all.
//   node --import tsx scripts/pg-ha.ts [--nodes N] [--test-settings]
// --trial runs the failover trial instead: production settings, the standby first in the store
// URL, SMTP senders that retry after 4xx, the primary SIGKILLed (down for --down seconds, as a
// machine rebooting), then counts what was lost or stored twice, the write gap, and how long
// the killed node took to come back as a standby.
//   node --import tsx scripts/pg-ha.ts --trial [--senders 8] [--down 10] [--rounds 1]
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestServer } from '../test/helpers.js';
import { PRODUCTION_FAILOVER, startAutoFailover, type AutoFailoverGroup } from '../test/pg-ha.js';
import { Load, storedCounts } from '../test/smtp-load.js';

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(name);
  return index === -1 ? fallback : Number(process.argv[index + 1]);
}

const nodes = option('--nodes', 2);
if (!Number.isInteger(nodes) || nodes < 1 || nodes > 5) {
  process.stderr.write('usage: scripts/pg-ha.ts [--nodes 1..5] [--test-settings] | --trial [--senders N] [--down S] [--rounds N]\n');
  process.exit(2);
}
const say = (line: string) => process.stdout.write(`${line}\n`);

async function until(what: string, timeoutMs: number, condition: () => Promise<boolean> | boolean): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await condition()); await sleep(100)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

async function trial(): Promise<boolean> {
  const senders = option('--senders', 8);
  const downMs = option('--down', 10) * 1000;
  const rounds = option('--rounds', 1);
  const group = await startAutoFailover({ nodes: 2, settings: 'production', supervise: true });
  let ok = true;
  try {
    const ports = Object.fromEntries((await group.states()).map((n) => [n.name, n.port]));
    // The standby first: the node must find the primary, not take the first host that answers.
    const url = `postgres://postgres@127.0.0.1:${ports.node2},127.0.0.1:${ports.node1}/quill?target_session_attrs=read-write`;
    say(`group in ${group.dir}, keepers restarted like systemd; store ${url}`);
    const partition = (await group.autoctl(['config', 'get', '--pgdata', `${group.dir}/node1`, 'timeout.network_partition_timeout'])).trim();
    say(`monitor: ${Object.entries(PRODUCTION_FAILOVER.monitor).map(([k, v]) => `${k}=${v}`).join(' ')}; keepers: timeout.network_partition_timeout=${partition}`);
    const server = await startTestServer({ overrides: { outbound: { enabled: false }, store: { url, connectTimeoutSeconds: 2 } } });
    try {
      await server.addUser('alice@example.com', 'alice-pw');
      for (let round = 1; round <= rounds; round++) ok = (await failover(group, server.port('smtp'), server.store, senders, downMs, round)) && ok;
    } finally {
      await server.stop();
    }
  } finally {
    await group.destroy();
  }
  return ok;
}

async function failover(group: AutoFailoverGroup, port: number, store: Parameters<typeof storedCounts>[0], senders: number, downMs: number, round: number): Promise<boolean> {
  const load = new Load(port, `r${round}-`, senders);
  let crashedAt = 0;
  let victim = '';
  let backAfter = -1;
  try {
    await until('mail before the crash', 30_000, () => load.acked.length >= 50);
    victim = await group.primary();
    crashedAt = Date.now();
    group.crash(victim, downMs);
    const before = load.acked.length;
    await until('mail after the failover', 60_000, () => load.acked.length >= before + 100);
    await until(`${victim} back as a standby`, 120_000, async () => (await group.states()).some((n) => n.name === victim && n.reported === 'secondary'));
    backAfter = Date.now() - crashedAt;
    // Writes go on with the returned standby in sync again.
    const again = load.acked.length;
    await until('mail with the standby back', 30_000, () => load.acked.length >= again + 20);
  } finally {
    await load.stop();
  }
  const firstAfter = (load.acked.map((a) => a.at).find((at) => at > crashedAt) ?? crashedAt) - crashedAt;
  const { missing, doubled } = await storedCounts(store, load.acked);
  const gap = load.writeGap();
  const states = (await group.states()).map((n) => `${n.name}=${n.reported}`).join(' ');
  say(`round ${round}: SIGKILL ${victim} (keeper and postgres, down ${downMs / 1000} s); ${load.acked.length} acknowledged, ${load.temporary.length} 4xx answers`);
  say(`round ${round}: lost ${missing.length}, duplicated ${doubled.length}, write gap ${(gap / 1000).toFixed(1)} s (first 250 ${(firstAfter / 1000).toFixed(1)} s after the kill)`);
  say(`round ${round}: ${victim} back as standby ${(backAfter / 1000).toFixed(1)} s after the kill; now ${states}`);
  return missing.length === 0 && doubled.length === 0 && gap <= 10_000 && backAfter <= 60_000;
}

if (process.argv.includes('--trial')) {
  const ok = await trial().catch((error: unknown) => {
    process.stderr.write(`trial failed: ${(error as Error).message}\n`);
    return false;
  });
  say(ok ? 'PASS: 0 lost, 0 duplicated, write gap <= 10 s, killed node back as standby within 60 s' : 'FAIL');
  process.exit(ok ? 0 : 1);
}

const group = await startAutoFailover({ nodes, settings: process.argv.includes('--test-settings') ? 'test' : 'production', supervise: true });
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
    'Keepers that exit are started again after a second (as systemd Restart=always would).',
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
