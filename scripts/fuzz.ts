// Fuzzes the IMAP command reader and parser for longer than the suite does:
//   node --import tsx scripts/fuzz.ts [--seed N] [--seconds S] [--runs R]
// The same properties as src/imap/parser-fuzz.test.ts; a failure prints the seed and the
// shrunk input to replay (fast-check's counterexample), and exits 1.
import { parseArgs } from 'node:util';
import { fuzzParser } from '../src/imap/parser-fuzz.js';

const { values } = parseArgs({ options: { seed: { type: 'string' }, seconds: { type: 'string', default: '60' }, runs: { type: 'string', default: '1000000' } } });
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;
const seconds = Number(values.seconds);
const runs = Number(values.runs);
if (![seed, seconds, runs].every(Number.isFinite)) {
  process.stderr.write('usage: fuzz.ts [--seed N] [--seconds S] [--runs R]\n');
  process.exit(2);
}
process.stdout.write(`fuzzing the IMAP parser: seed ${seed}, up to ${seconds} s per property\n`);
const started = Date.now();
try {
  fuzzParser({ seed, runs, seconds });
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  process.exit(1);
}
process.stdout.write(`no failure in ${((Date.now() - started) / 1000).toFixed(1)} s (seed ${seed})\n`);
