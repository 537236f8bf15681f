// Postfix's own load tool against Quillmail as shipped and against Postfix, in one run (issue 19):
//   smtp-source -d -s 20 -l 10240 -m 5000 -f sender@example.org -t user0@bench.test 127.0.0.1:PORT
// Quillmail runs with its defaults (SPF, DKIM, DMARC checks and reverse lookups on) and its resolver
// asks the test DNS server of test/dns-server.ts, which answers after --dns-latency ms (20) and drops
// --dns-drop of the queries (0.02); then once more with verification off, for comparison.
// The rate is accept-and-deliver: messages in the mailbox divided by the time from the first
// connection to the last message stored (Quillmail's 250 comes after the store; Postfix's comes
// before virtual(8) writes the Maildir, so its delivery is waited for).
//   node --import tsx bench/smtp-source.ts [--sessions 20] [--messages 5000] [--size 10240] [--only quill|postfix] [--main-thread-row]
// smtp-source has no option to bind a client address: its connections come from 127.0.0.1.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config.js';
import { openStore } from '../src/server.js';
import { startDnsServer } from '../test/dns-server.js';
import { arg, fmt, sleep, startQuill } from './lib.js';
import { postfixMissing, startPostfix } from './postfix.js';

const DOMAIN = 'bench.test';
const USERS = [`user0@${DOMAIN}`];
const sessions = arg('sessions', 20);
const messages = arg('messages', 5000);
const size = arg('size', 10240);
const dnsLatency = process.argv.includes('--dns-latency') ? Number(process.argv[process.argv.indexOf('--dns-latency') + 1]) : 20;
const dnsDrop = process.argv.includes('--dns-drop') ? Number(process.argv[process.argv.indexOf('--dns-drop') + 1]) : 0.02;
const onlyIndex = process.argv.indexOf('--only');
const only = onlyIndex >= 0 ? process.argv[onlyIndex + 1] : undefined;
const SMTP_SOURCE = existsSync('/usr/sbin/smtp-source') ? '/usr/sbin/smtp-source' : 'smtp-source';

interface Row {
  name: string;
  sourceSeconds: number;
  deliveredSeconds: number;
  delivered: number;
  note: string;
}

/** Runs smtp-source to the end; asynchronously, since the DNS server answers from this process. */
async function smtpSource(port: number): Promise<number> {
  const start = process.hrtime.bigint();
  const { stderr } = await promisify(execFile)(SMTP_SOURCE, ['-d', '-s', String(sessions), '-l', String(size), '-m', String(messages), '-f', 'sender@example.org', '-t', USERS[0]!, `127.0.0.1:${port}`]);
  if (stderr.trim()) console.error(stderr.trim());
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function quillRow(name: string, dnsServers: string[] | undefined, note: string, inboundWorkers?: number): Promise<Row> {
  const quill = await startQuill({ domain: DOMAIN, users: USERS, password: 'bench-password', dnsServers, inboundWorkers });
  try {
    const sourceSeconds = await smtpSource(quill.ports.smtp);
    const store = await openStore(loadConfig(join(quill.dir, 'quill.yaml')));
    try {
      const user = (await store.getUser(USERS[0]!))!;
      const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
      const delivered = (await store.listMessages(inbox.id)).length;
      return { name, sourceSeconds, deliveredSeconds: sourceSeconds, delivered, note };
    } finally {
      await store.close();
    }
  } finally {
    await quill.stop();
  }
}

async function main(): Promise<void> {
  console.log(`smtp-source -d -s ${sessions} -l ${size} -m ${messages}, 127.0.0.1; DNS for Quillmail: ${dnsLatency} ms, ${dnsDrop * 100}% of queries dropped`);
  const rows: Row[] = [];
  if (only !== 'postfix') {
    const dns = await startDnsServer({
      zones: ['example.org'],
      latencyMs: dnsLatency,
      dropRate: dnsDrop,
      records: [
        { name: 'example.org', type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
        { name: '_dmarc.example.org', type: 'TXT', data: 'v=DMARC1; p=reject' },
      ],
    });
    try {
      const row = await quillRow('quillmail (defaults)', [dns.address], '');
      row.note = `inbound checks on, ${dns.totalQueries()} DNS queries in all`;
      rows.push(row);
      // The same defaults with the checks on the main thread (inbound.workers: 0), as before the judge pool.
      if (process.argv.includes('--main-thread-row')) {
        const before = dns.totalQueries();
        const main = await quillRow('quillmail (defaults, inbound.workers 0)', [dns.address], '');
        main.note = `inbound checks on the main thread, ${dns.totalQueries() - before} DNS queries in all`;
        rows.push(main);
      }
    } finally {
      await dns.close();
    }
    rows.push(await quillRow('quillmail (checks off)', undefined, 'inbound checks and reverse lookups off'));
  }
  if (only !== 'quill') {
    const missing = postfixMissing();
    if (missing) console.log(`Postfix skipped: ${missing}`);
    else {
      const postfix = await startPostfix(DOMAIN, USERS);
      try {
        const start = Date.now();
        const sourceSeconds = await smtpSource(postfix.port);
        while (postfix.delivered() < messages && Date.now() - start < 600_000) await sleep(20);
        rows.push({ name: 'postfix', sourceSeconds, deliveredSeconds: (Date.now() - start) / 1000, delivered: postfix.delivered(), note: 'smtpd_peername_lookup = no, no milter' });
      } finally {
        await postfix.stop();
      }
    }
  }
  console.log('\n| server | smtp-source s | delivered | accept-and-deliver s | msgs/s | note |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.name} | ${fmt(r.sourceSeconds, 2)} | ${r.delivered} | ${fmt(r.deliveredSeconds, 2)} | ${fmt(r.delivered / r.deliveredSeconds)} | ${r.note} |`);
  const p = rows.find((r) => r.name === 'postfix');
  for (const r of rows.filter((r) => r !== p))
    if (p) console.log(`ratio ${r.name}/postfix: accept-and-deliver ${fmt(r.delivered / r.deliveredSeconds / (p.delivered / p.deliveredSeconds), 2)}x`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
