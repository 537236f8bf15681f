// imaptest's default stress mix (github.com/dovecot/imaptest) against Quillmail from this tree and a private
// Dovecot (bench/dovecot.ts) in the same run: N clients on N users, the same generated mbox to append from,
// one mix with a LOGIN/LOGOUT per session (imaptest's default) and one with persistent sessions (logout=0).
// Several clients share each mailbox, changing flags, expunging and appending, so telling every session what
// the others did (untagged FETCH/EXPUNGE/EXISTS) is on the hot path, unlike bench/imap.ts.
//   IMAPTEST=/path/to/imaptest node --import tsx bench/imaptest.ts [--clients 20] [--users 20] [--messages 200]
//        [--seconds 15] [--rounds 1] [--only quill|dovecot] [--mix login|persistent] [--imap-processes 1,2]
// --imap-processes: Quillmail once per imap.processes value in the list (default: as shipped), each beside Dovecot.
// imaptest is built by hand for the machine and never committed (see issue 18 for the build); without
// IMAPTEST the binary is looked up on PATH. Runs as root (Dovecot's master needs it).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dovecotMissing, startDovecot } from './dovecot.js';
import { arg, fmt, has, startQuill, tempDir } from './lib.js';

const DOMAIN = 'bench.test';
const PASSWORD = 'bench-password';
const clients = arg('clients', 20);
const userCount = arg('users', 20);
const messages = arg('messages', 200);
const seconds = arg('seconds', 15);
const rounds = arg('rounds', 1);
const option = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const only = option('only');
const mixes = (option('mix') ? [option('mix')!] : ['login', 'persistent']) as ('login' | 'persistent')[];
const imaptest = process.env.IMAPTEST ?? 'imaptest';

/** An mbox of `count` plain and multipart messages of varied sizes, the same for both servers. */
function writeMbox(path: string, count: number): void {
  const words = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau'.split(' ');
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const line = (n: number): string => Array.from({ length: n }, () => words[random(words.length)]).join(' ');
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const date = new Date(Date.UTC(2024, 0, 1) + i * 3_600_000);
    const body = Array.from({ length: 3 + random(60) }, () => line(12)).join('\n');
    const headers = [
      `From sender${i % 7}@example.org ${date.toUTCString()}`,
      `From: Sender ${i % 7} <sender${i % 7}@example.org>`,
      `To: User <user${i % 3}@example.com>`,
      `Subject: ${i % 5 === 0 ? 'Re: ' : ''}${line(4)}`,
      `Date: ${date.toUTCString()}`,
      `Message-ID: <m${i}@example.org>`,
    ];
    if (i % 4 === 0) {
      out.push(
        [...headers, 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: text/plain', '', body, '--b', 'Content-Type: application/octet-stream', 'Content-Transfer-Encoding: base64', '', Buffer.from(line(40)).toString('base64'), '--b--', ''].join('\n'),
      );
    } else out.push([...headers, '', body, ''].join('\n'));
  }
  writeFileSync(path, out.join('\n'));
}

/**
 * CPU seconds used by a process and its descendants so far (/proc: utime+stime, and cutime+cstime of
 * children already reaped, e.g. Dovecot's per-connection processes). Less moved by a busy machine than
 * commands/s: its ratio between runs tells the work per command, whether or not cores were free.
 */
function treeCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  let ticks = 0;
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    try {
      const stat = readFileSync(`/proc/${pids[i]}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
      for (const task of readdirSync(`/proc/${pids[i]}/task`)) {
        for (const child of readFileSync(`/proc/${pids[i]}/task/${task}/children`, 'utf8').split(' ')) if (child.trim()) pids.push(Number(child));
      }
    } catch {
      // The process ended meanwhile.
    }
  }
  return ticks / 100; // USER_HZ
}

interface Result {
  server: string;
  mix: string;
  commands: number;
  perSecond: number;
  errors: number;
  /** CPU ms of the server's process tree per command. */
  cpuMsPerCommand: number;
  totals: string[];
  errorSamples: string[];
}

/** Runs imaptest for `seconds`; the Totals block gives the commands, "Error:" lines the protocol errors. */
async function runImaptest(server: string, port: number, userTemplate: string, mbox: string, mix: string, pid?: number): Promise<Result> {
  const cpuBefore = treeCpuSeconds(pid);
  const args = [`host=127.0.0.1`, `port=${port}`, `user=${userTemplate}`, `users=${userCount}`, `pass=${PASSWORD}`, `mbox=${mbox}`, `clients=${clients}`, `msgs=${messages}`, `secs=${seconds}`];
  if (mix === 'persistent') args.push('logout=0');
  const child = spawn(imaptest, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  await new Promise((done) => child.once('exit', done));
  const lines = output.split('\n');
  const at = lines.findIndex((l) => l.startsWith('Totals:'));
  const totals = at >= 0 ? lines.slice(at + 1, at + 5) : [];
  const counts = (totals[3] ?? '').trim().split(/\s+/).map(Number).filter((n) => Number.isFinite(n));
  const commands = counts.reduce((a, b) => a + b, 0);
  const errorLines = lines.filter((l) => l.startsWith('Error:'));
  const cpuMsPerCommand = ((treeCpuSeconds(pid) - cpuBefore) * 1000) / Math.max(1, commands);
  return { server, mix, commands, perSecond: commands / seconds, errors: errorLines.length, cpuMsPerCommand, totals, errorSamples: errorLines.slice(0, 5) };
}

async function main(): Promise<void> {
  if (!has(imaptest) && !imaptest.includes('/')) throw new Error('imaptest not found: build it (issue 18) and set IMAPTEST=/path/to/imaptest');
  const dir = tempDir('imaptest-bench-');
  const mbox = join(dir, 'bench.mbox');
  writeMbox(mbox, messages);
  const users = Array.from({ length: userCount }, (_, i) => i + 1);
  const missing = dovecotMissing();
  if (missing) console.log(`skipping Dovecot: ${missing}`);
  const processList = option('imap-processes')?.split(',').map(Number) ?? [undefined];
  const quills: { label: string; port: number; pid: number; stop: () => Promise<void> }[] = [];
  const dovecot = only === 'quill' || missing ? undefined : await startDovecot(users.map((i) => `u${i}`), PASSWORD);
  const results: Result[] = [];
  try {
    if (only !== 'dovecot') {
      for (const imapProcesses of processList) {
        const quill = await startQuill({ domain: DOMAIN, users: users.map((i) => `u${i}@${DOMAIN}`), password: PASSWORD, imapProcesses });
        quills.push({ label: imapProcesses === undefined ? 'Quillmail' : `Quillmail (imap.processes ${imapProcesses})`, port: quill.ports.imap, pid: quill.pid, stop: () => quill.stop() });
      }
    }
    const servers = [
      ...quills.map((q) => ({ label: q.label, port: q.port, user: `u%d@${DOMAIN}`, pid: () => q.pid })),
      ...(dovecot ? [{ label: 'Dovecot', port: dovecot.port, user: 'u%d', pid: () => dovecot.masterPid() }] : []),
    ];
    for (let round = 1; round <= rounds; round++) {
      for (const mix of mixes) {
        // Alternating the order, so none always gets the warmer machine.
        const order = round % 2 === 1 ? servers : [...servers].reverse();
        for (const server of order) {
          const last = await runImaptest(server.label, server.port, server.user, mbox, mix, server.pid());
          results.push(last);
          console.log(`round ${round} ${mix} ${last.server}: ${fmt(last.perSecond)} commands/s, ${last.errors} errors, ${fmt(last.cpuMsPerCommand, 3)} CPU ms/command`);
          for (const l of last.totals) console.log(`  ${l}`);
          for (const e of last.errorSamples) console.log(`  ${e.slice(0, 200)}`);
        }
      }
    }
  } finally {
    for (const quill of quills) await quill.stop();
    await dovecot?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\n${clients} clients on ${userCount} users, ${messages}-message mbox, ${seconds} s per run, ${rounds} round(s)`);
  console.log('| mix | server | cmds/s | errors | ratio to Dovecot | CPU ms/command |');
  console.log('|---|---|---|---|---|---|');
  const mean = (rs: Result[]): number => rs.reduce((a, r) => a + r.perSecond, 0) / Math.max(1, rs.length);
  for (const mix of mixes) {
    const d = results.filter((r) => r.mix === mix && r.server === 'Dovecot');
    for (const label of [...quills.map((q) => q.label), ...(dovecot ? ['Dovecot'] : [])]) {
      const rs = results.filter((r) => r.mix === mix && r.server === label);
      const errors = rs.reduce((a, r) => a + r.errors, 0);
      const cpu = rs.reduce((a, r) => a + r.cpuMsPerCommand, 0) / Math.max(1, rs.length);
      console.log(`| ${mix} | ${label} | ${fmt(mean(rs), 0)} | ${errors} | ${d.length && label !== 'Dovecot' ? fmt(mean(rs) / mean(d), 2) : '-'} | ${fmt(cpu, 3)} |`);
    }
  }
}

await main();
