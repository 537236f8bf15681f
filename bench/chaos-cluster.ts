// The cluster under faults, measured (issue 20): a gateway and three node processes; SMTP senders
// (nodemailer, from 127.0.0.2), POP3 readers (from 127.0.0.3) and IMAP sessions (imapflow:
// fetches of the newest message) run without pause while
//   --mode kill: a node is SIGKILLed every 8 s and started again, for --seconds (30);
//   --mode stop: a node is SIGSTOPped for 15 s (then SIGCONT) within --seconds (30).
// Reports messages acknowledged, lost and stored twice, client errors, and the longest time any
// one client operation took (a delivery, a POP3 command, an IMAP fetch): the client-visible stall,
// counted once every client is through its first operation (the warm-up's longest is said apart),
// and each operation over 700 ms with when it started, to set against the faults' times.
//   node --import tsx bench/chaos-cluster.ts [--mode kill|stop] [--seconds 30]
import { setTimeout as sleep } from 'node:timers/promises';
import { ImapFlow } from 'imapflow';
import { noteStall, POP3_CLIENTS, SENDERS, SLOW_MS, tally, TestCluster, type Tally } from '../test/cluster-kit.js';

const argv = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 && argv[at + 1] ? argv[at + 1]! : fallback;
};
const mode = option('mode', 'kill');
const seconds = Number(option('seconds', '30'));
const NODES = ['c-1', 'c-2', 'c-3'];
const IMAP_CLIENTS = 2;

function imapReaders(cluster: TestCluster, seen: Tally, done: () => boolean): Promise<void>[] {
  return Array.from({ length: IMAP_CLIENTS }, async (_, c) => {
    while (!done()) {
      const client = new ImapFlow({ host: '127.0.0.1', port: cluster.gateway.port('imap'), secure: false, tls: { rejectUnauthorized: false }, auth: { user: 'bob@example.com', pass: 'pw' }, logger: false, disableAutoIdle: true });
      let dropped = false;
      client.on('error', () => (dropped = true));
      client.on('close', () => (dropped = true));
      try {
        await client.connect();
        await client.mailboxOpen('INBOX');
        while (!done() && !dropped) {
          const started = Date.now();
          await client.fetchOne('*', { uid: true, envelope: true });
          noteStall(seen, started, `imap${c} FETCH`);
          seen.imapFetches++;
          await sleep(50);
        }
        if (!dropped) {
          await client.logout();
          return;
        }
      } catch (error) {
        if (!dropped) seen.errors.push(`imap${c}: ${(error as Error).message}`);
      }
      seen.imapDrops++;
      client.close();
      await sleep(100);
    }
  });
}

async function main(): Promise<void> {
  const cluster = new TestCluster(NODES, ['smtp', 'pop3', 'imap']);
  await cluster.start();
  const seen = tally();
  let over = false;
  const done = () => over;
  const load = [...cluster.senders(seen, done, 'bench'), ...cluster.pop3Readers(seen, done), ...imapReaders(cluster, seen, done)];
  // Warm-up: every client through its first operation (the first login pays for scrypt, the nodes'
  // code runs cold) before the clock and the stall record start; the faults come after.
  const warm = Date.now() + 15_000;
  while (Date.now() < warm && (seen.acknowledged.length < SENDERS || seen.pop3Sessions < POP3_CLIENTS || seen.imapFetches < IMAP_CLIENTS)) await sleep(50);
  const warmUp = seen.longestStall.ms;
  seen.longestStall = { ms: 0, what: '' };
  seen.slow = [];
  const started = (seen.started = Date.now());
  const faults: string[] = [];
  await sleep(1_000);
  if (mode === 'stop') {
    const victim = NODES[0]!;
    const child = cluster.nodes.get(victim)!;
    child.kill('SIGSTOP');
    faults.push(`SIGSTOP ${victim} at ${Date.now() - started} ms`);
    await sleep(15_000);
    child.kill('SIGCONT');
    faults.push(`SIGCONT ${victim} at ${Date.now() - started} ms`);
    await sleep(Math.max(0, seconds * 1000 - (Date.now() - started)));
  } else {
    let round = 0;
    while (Date.now() - started < seconds * 1000 - 2_000) {
      const victim = NODES[round++ % NODES.length]!;
      await cluster.stopNode(victim, 'SIGKILL');
      faults.push(`SIGKILL ${victim} at ${Date.now() - started} ms`);
      void (async () => {
        await cluster.waitForNode(victim, false);
        cluster.startNode(victim);
      })();
      await sleep(8_000);
    }
  }
  over = true;
  await Promise.all(load);
  const stored = await cluster.storedSubjects('bob@example.com', /\r\nSubject: (bench-\d+-\d+)\r\n/);
  const lost = seen.acknowledged.filter((id) => !stored.has(id)).length;
  const twice = [...stored.values()].filter((n) => n > 1).length;
  console.log(`mode ${mode}, ${((Date.now() - started) / 1000).toFixed(1)} s: ${faults.join('; ')}`);
  console.log(`acknowledged ${seen.acknowledged.length}, lost ${lost}, stored twice ${twice}`);
  console.log(`POP3 sessions ${seen.pop3Sessions} (RETR ${seen.pop3Retrieved}, [SYS/TEMP] ${seen.pop3TempErrors}), IMAP fetches ${seen.imapFetches}, IMAP drops ${seen.imapDrops}`);
  console.log(`client errors ${seen.errors.length}${seen.errors.length ? `: ${[...new Set(seen.errors)].slice(0, 8).join(' | ')}` : ''}`);
  console.log(`longest client stall ${seen.longestStall.ms} ms (${seen.longestStall.what}); warm-up before the clock: longest ${warmUp} ms`);
  if (seen.slow.length > 0) console.log(`operations over ${SLOW_MS} ms: ${seen.slow.map((s) => `${s.what} ${s.ms} ms at ${s.at} ms`).join('; ')}`);
  await cluster.close();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
