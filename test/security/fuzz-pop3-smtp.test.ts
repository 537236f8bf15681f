// The suite's short fuzz run (fixed seed, a few seconds each) of the POP3 and SMTP command
// readers; scripts/fuzz-pop3-smtp.ts runs the same properties for longer with any seed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers.js';
import { answeredWithin, whileTimingNoops } from './auth-kit.js';
import { fuzzLiveServer, fuzzLineFraming, fuzzSubmissionHeaders } from './pop3-smtp-fuzz.js';

const SEED = 17;

describe('fuzz: POP3 and SMTP readers in process', () => {
  it('the shared line framing (POP3 and CRLF only) frames any bytes cut anywhere as its model says, holding at most the limit', () => {
    fuzzLineFraming({ seed: SEED, numRuns: 2000, timeLimitMs: 2000 });
  });

  it('submission header fix-ups and the From/Sender check take any header without throwing', () => {
    fuzzSubmissionHeaders({ seed: SEED, numRuns: 2000, timeLimitMs: 2000 });
  });
});

describe('fuzz: live POP3, submission and MX sessions', () => {
  let server: TestServer;
  let startRss: number;

  before(async () => {
    server = await startTestServer({ overrides: { outbound: { enabled: false } } });
    await server.addUser('alice@example.com', 'alice-pw');
    await server.addUser('bob@example.com', 'bob-pw');
    startRss = process.memoryUsage().rss;
  });
  after(() => server.stop());

  for (const [service, protocol] of [
    ['pop3', 'pop3'],
    ['submission', 'smtp'],
    ['smtp', 'smtp'],
  ] as const) {
    it(`${service}: well-formed replies, every session ends, a second client is answered, memory bounded`, async () => {
      const { result: sessions, noopMs } = await whileTimingNoops(service === 'pop3' ? 'pop3' : 'submission', server.port(service === 'pop3' ? 'pop3' : 'submission'), '127.0.0.9', 'bob@example.com', 'bob-pw', () =>
        fuzzLiveServer(server.port(service), protocol, { seed: SEED, numRuns: 300, timeLimitMs: 3000 }),
      );
      assert.ok(sessions >= 20, `only ${sessions} sessions in the time allowed`);
      assert.ok(answeredWithin(noopMs, 100), `NOOPs: ${noopMs.map(Math.round).join(', ')}`);
      assert.ok(process.memoryUsage().rss - startRss < 200 * 1024 * 1024, 'RSS within 200 MB of the start');
    });
  }
});
