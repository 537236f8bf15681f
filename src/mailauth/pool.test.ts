// The inbound judge pool (worker threads): the verdicts are the ones judgeInbound gives on the
// main thread (pass, DMARC fail, temperror past the budget), DNS is asked through the main
// thread's resolver, and a worker that dies mid-check leaves its message temperror and is replaced.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, describe, it } from 'node:test';
import type { Resolver } from '../dns/resolver.js';
import { judgeInbound, type InboundPolicy, type SmtpFacts } from './inbound.js';
import { keyCacheStats } from './key-cache.js';
import { JudgePool } from './pool.js';
import { dkimSignature } from './sign.js';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const zone: Record<string, string[]> = {
  'strict.test': ['v=spf1 ip4:192.0.2.10 -all'],
  '_dmarc.strict.test': ['v=DMARC1; p=reject'],
  'sel._domainkey.strict.test': [`v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`],
  '_dmarc.slow.test': ['v=DMARC1; p=reject'],
};

/** Names whose TXT lookups never answer; `waiting` is called when one is asked. */
let waiting: ((name: string) => void) | undefined;
const asked: string[] = [];
const notFound = (what: string) => Promise.reject(Object.assign(new Error(`no ${what}`), { code: 'ENOTFOUND' }));
const resolver: Resolver = {
  resolveTxt: (name) => {
    asked.push(name);
    if (name.endsWith('slow.test')) {
      waiting?.(name);
      return new Promise(() => {});
    }
    const records = zone[name.toLowerCase()];
    return records ? Promise.resolve(records.map((r) => [r])) : notFound(`TXT ${name}`);
  },
  resolveMx: (name) => notFound(`MX ${name}`),
  resolve4: (name) => notFound(`A ${name}`),
  resolve6: (name) => notFound(`AAAA ${name}`),
};

const policy: InboundPolicy = { verify: true, dmarc: 'enforce', spfFail: 'accept', budgetMs: 300 };

function message(from: string): Buffer {
  return Buffer.from(`From: <${from}>\r\nTo: <bob@example.com>\r\nSubject: hello\r\nMessage-ID: <${Math.random()}@x>\r\nDate: Wed, 25 Nov 2026 06:00:00 +0000\r\n\r\nHi Bob\r\n`);
}

async function signed(raw: Buffer): Promise<Buffer> {
  const signature = await dkimSignature(raw, { domain: 'strict.test', selector: 'sel', privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });
  if ('error' in signature) throw new Error(signature.error);
  return Buffer.concat([Buffer.from(signature.header), raw]);
}

/** The verdict without what differs per run (mailauth's timestamps are not in it, but be safe). */
const shape = (verdict: { headers: string; action: string }) => ({ action: verdict.action, results: verdict.headers.match(/\b(spf|dkim|dmarc)=\w+/g) });

describe('inbound judge pool', () => {
  const pool = new JudgePool({ hostname: 'mx.example.com', policy, resolver, size: 2, graceMs: 60_000 });
  after(() => pool.close());

  it('gives the verdicts of judgeInbound on the main thread: pass, DMARC reject, temperror', async () => {
    const cases: [Buffer, SmtpFacts][] = [
      [await signed(message('alice@strict.test')), { ip: '192.0.2.10', helo: 'client.test', sender: 'alice@strict.test' }],
      [message('ceo@strict.test'), { ip: '203.0.113.5', helo: 'client.test', sender: 'ceo@strict.test' }],
      [message('x@slow.test'), { ip: '203.0.113.5', helo: 'client.test', sender: 'x@slow.test' }],
    ];
    const seen: string[] = [];
    for (const [raw, facts] of cases) {
      const direct = await judgeInbound(raw, facts, { hostname: 'mx.example.com', resolver, policy });
      const pooled = await pool.judge(raw, facts);
      assert.deepEqual(shape(pooled), shape(direct));
      assert.equal(pooled.headers, direct.headers);
      seen.push(`${pooled.action} ${shape(pooled).results?.join(' ')}`);
    }
    assert.deepEqual(seen, ['accept dkim=pass spf=pass dmarc=pass', 'reject dkim=none spf=fail dmarc=fail', 'accept dkim=none spf=temperror dmarc=temperror']);
  });

  it('judges a message temperror when its worker dies mid-check, and replaces the worker', async () => {
    const before = pool.workers();
    const asking = new Promise<void>((resolve) => (waiting = () => resolve()));
    const verdict = pool.judge(message('x@slow.test'), { ip: '203.0.113.5', helo: 'client.test', sender: 'x@slow.test' });
    await asking;
    waiting = undefined;
    // The pool gives a job to the least busy worker: the first one when all are idle.
    await before[0]!.terminate();
    const judged = await verdict;
    assert.equal(judged.action, 'accept');
    assert.match(judged.headers, /spf=temperror/);
    assert.match(judged.headers, /dmarc=temperror/);
    // Replaced at once, or after a second when the worker had only just started.
    for (let i = 0; i < 40 && pool.workers()[0] === before[0]; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    const now = pool.workers();
    assert.equal(now.length, 2);
    assert.notEqual(now[0], before[0]);
    assert.equal(now[1], before[1]);
    // The new worker judges as before.
    const again = await pool.judge(await signed(message('alice@strict.test')), { ip: '192.0.2.10', helo: 'client.test', sender: 'alice@strict.test' });
    assert.match(again.headers, /dkim=pass/);
    assert.equal(again.action, 'accept');
  });
});

describe('DNS answers in the judge threads', () => {
  it('keeps an answer in the worker as long as the main thread caches it, and asks again for one it does not', async () => {
    // The main thread's cache holds the SPF answers for a minute (a record, and "no such name"), the DMARC ones not at all.
    const counted: string[] = [];
    const copied = { hits: 0, negativeHits: 0 };
    const caching: Resolver = {
      ...resolver,
      resolveTxt: (name) => (counted.push(name), resolver.resolveTxt(name)),
      cachedMs: (method, name) => (method === 'resolveTxt' && (name === 'strict.test' || name === 'nowhere.test') ? 60_000 : 0),
      countCopiedHits: (hits, negativeHits) => {
        copied.hits += hits;
        copied.negativeHits += negativeHits;
      },
    };
    const single = new JudgePool({ hostname: 'mx.example.com', policy, resolver: caching, size: 1 });
    try {
      const facts = { ip: '192.0.2.10', helo: 'client.test', sender: 'alice@strict.test' };
      for (let i = 0; i < 3; i++) assert.match((await single.judge(message('alice@strict.test'), facts)).headers, /spf=pass/);
      assert.equal(counted.filter((name) => name === 'strict.test').length, 1, 'SPF asked of the main thread once');
      assert.equal(counted.filter((name) => name === '_dmarc.strict.test').length, 3, 'DMARC asked every time');
      const none = { ip: '192.0.2.10', helo: 'client.test', sender: 'bob@nowhere.test' };
      for (let i = 0; i < 2; i++) assert.match((await single.judge(message('bob@nowhere.test'), none)).headers, /spf=none/);
      assert.equal(counted.filter((name) => name === 'nowhere.test').length, 1, 'a negative answer is kept as long');
      assert.deepEqual(copied, { hits: 2, negativeHits: 1 }, 'answers from the copies count as cache hits');
    } finally {
      await single.close();
    }
  });
});

describe('DKIM key cache', () => {
  it('parses a key record once and gives the same verdicts from the cached key: pass, and fail for a forged body', async () => {
    const judge = (raw: Buffer) => judgeInbound(raw, { ip: '192.0.2.10', helo: 'client.test', sender: 'alice@strict.test' }, { hostname: 'mx.example.com', resolver, policy });
    assert.ok(keyCacheStats.installed, 'installed before mailauth was loaded');
    const lookups = () => asked.filter((name) => name === 'sel._domainkey.strict.test').length;
    const before = { ...keyCacheStats, lookups: lookups() };
    const first = await judge(await signed(message('alice@strict.test')));
    const second = await judge(await signed(message('alice@strict.test')));
    assert.match(first.headers, /dkim=pass/);
    assert.match(second.headers, /dkim=pass/);
    assert.ok(keyCacheStats.hits > before.hits, 'the second message used the parsed key');
    assert.equal(lookups() - before.lookups, 2, 'the key record is still looked up for every message');
    // A good signature over another message's header: the cached key must still say no.
    const good = await signed(message('alice@strict.test'));
    const forged = Buffer.from(good.toString().replace('Subject: hello', 'Subject: hullo'));
    const hits = keyCacheStats.hits;
    const verdict = await judge(forged);
    assert.ok(keyCacheStats.hits > hits);
    assert.match(verdict.headers, /dkim=fail/);
    assert.match(verdict.headers, /dmarc=pass/, 'SPF still aligns');
  });
});
