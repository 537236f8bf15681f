// CLI start-up time of commands that do not serve (issue 19: ≤ 300 ms): `quill domain list` and
// `quill user add` through bin/quill.js (the built dist/, as users run it), each --runs times on a
// fresh embedded store. Reports the median and minimum wall time and the median CPU time (user +
// system) per run; on a shared machine the CPU time is the steadier figure. Run `npx tsc -p
// tsconfig.build.json` first.
//   node --import tsx bench/cli-startup.ts [--runs 15]
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { arg, fmt, ROOT, tempDir } from './lib.js';

const runs = arg('runs', 15);

/** Wall time of one run, and its CPU time (user + system) as /usr/bin/time reads it from getrusage. */
function measure(args: string[]): { wallMs: number; cpuMs: number } {
  const start = process.hrtime.bigint();
  const result = spawnSync('/usr/bin/time', ['-f', '%U %S', process.execPath, join(ROOT, 'bin/quill.js'), ...args], { encoding: 'utf8' });
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`quill ${args.join(' ')}: ${result.stderr}`);
  const [user, system] = result.stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
  return { wallMs, cpuMs: (user! + system!) * 1000 };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const dir = tempDir('quill-cli-bench-');
try {
  const data = join(dir, 'data');
  spawnSync(process.execPath, [join(ROOT, 'bin/quill.js'), 'domain', 'add', 'cli.test', '-d', data]);
  console.log(`quill CLI start-up, ${runs} runs each, bin/quill.js (dist/), embedded store\n`);
  console.log('| command | median wall ms | min wall ms | median CPU ms |');
  console.log('|---|---|---|---|');
  for (const [name, args] of [
    ['domain list', (_: number) => ['domain', 'list', '-d', data]],
    ['user add', (i: number) => ['user', 'add', `u${i}@cli.test`, '--password', 'startup-pw', '-d', data]],
    ['--help', () => ['--help']],
  ] as const) {
    const samples = Array.from({ length: runs }, (_, i) => measure(args(i)));
    const walls = samples.map((s) => s.wallMs);
    console.log(`| quill ${name} | ${fmt(median(walls), 0)} | ${fmt(Math.min(...walls), 0)} | ${fmt(median(samples.map((s) => s.cpuMs)), 0)} |`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
