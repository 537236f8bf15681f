// The long fuzz run of the POP3 and SMTP command readers (the suite runs the same properties
// for a few seconds with a fixed seed: test/security/fuzz-pop3-smtp.test.ts).
//   node --import tsx scripts/fuzz-pop3-smtp.ts [--seconds 60] [--seed N]
// Prints the seed first, so a failure can be replayed with --seed.
import { parseArgs } from 'node:util';
import { startTestServer } from '../test/helpers.js';
import { fuzzLiveServer, fuzzLineFraming, fuzzSubmissionHeaders } from '../test/security/pop3-smtp-fuzz.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '60' }, seed: { type: 'string' } } });
const seconds = Number(values.seconds);
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
if (!(seconds > 0) || !Number.isInteger(seed)) throw new Error('usage: fuzz-pop3-smtp.ts [--seconds N] [--seed N]');
console.log(`seed ${seed}, ${seconds} s per target`);

const budget = { seed, numRuns: Number.MAX_SAFE_INTEGER, timeLimitMs: seconds * 1000 };
const phase = async (name: string, work: () => unknown) => {
  const start = Date.now();
  const runs = await work();
  console.log(`${name}: ok${typeof runs === 'number' ? `, ${runs} sessions` : ''} in ${((Date.now() - start) / 1000).toFixed(1)} s`);
};

await phase('line framing', () => fuzzLineFraming(budget));
await phase('submission headers', () => fuzzSubmissionHeaders(budget));
const server = await startTestServer({ overrides: { outbound: { enabled: false } } });
try {
  await server.addUser('alice@example.com', 'alice-pw');
  const startRss = process.memoryUsage().rss;
  for (const [service, protocol] of [['pop3', 'pop3'], ['submission', 'smtp'], ['smtp', 'smtp']] as const) {
    await phase(`${service} sessions`, () => fuzzLiveServer(server.port(service), protocol, budget));
  }
  console.log(`RSS grew by ${((process.memoryUsage().rss - startRss) / 2 ** 20).toFixed(0)} MB`);
} finally {
  await server.stop();
}
