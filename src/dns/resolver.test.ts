// The caching resolver against a real DNS server on 127.0.0.1 (test/dns-server.ts): answers are
// cached by TTL, negative answers by the SOA (RFC 2308), identical questions share one query,
// dropped queries are retried, truncated answers are asked again over TCP, the cache is bounded,
// and reverse lookups read the hosts file first and never ask DNS about loopback.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../../test/dns-server.js';
import { tempDir } from '../../test/helpers.js';
import { CachingResolver, DNS_DEFAULTS, DnsError, reverseName, withDeadline, type DnsOptions } from './resolver.js';

class Counts {
  readonly seen = new Map<string, number>();
  inc(result: string): void {
    this.seen.set(result, (this.seen.get(result) ?? 0) + 1);
  }
  of(result: string): number {
    return this.seen.get(result) ?? 0;
  }
}

describe('caching resolver', () => {
  let dns: TestDnsServer;
  const resolvers: CachingResolver[] = [];
  const make = (options: Partial<DnsOptions> = {}, now?: () => number) => {
    const counts = new Counts();
    const resolver = new CachingResolver({ ...DNS_DEFAULTS, timeoutMs: 300, servers: [dns.address], ...options }, counts, now);
    resolvers.push(resolver);
    return { resolver, counts };
  };

  before(async () => {
    dns = await startDnsServer({
      zones: ['example.test'],
      negativeTtl: 60,
      records: [
        { name: 'example.test', type: 'TXT', data: 'v=spf1 ip4:192.0.2.0/24 -all', ttl: 120 },
        { name: 'example.test', type: 'MX', data: '10 mx.example.test' },
        { name: 'mx.example.test', type: 'A', data: '192.0.2.25' },
        { name: 'mx.example.test', type: 'AAAA', data: '2001:db8::25' },
        { name: 'long.example.test', type: 'TXT', data: 'p='.padEnd(600, 'A') },
        { name: '9.2.0.192.in-addr.arpa', type: 'PTR', data: 'ptr.example.test' },
      ],
    });
  });
  after(async () => {
    for (const resolver of resolvers) resolver.close();
    await dns.close();
  });

  it('answers from the cache within the TTL and asks again after it', async () => {
    let clock = 1_000_000;
    const { resolver, counts } = make({}, () => clock);
    const before = dns.queries('example.test', 'TXT');
    assert.deepEqual(await resolver.resolveTxt('example.test'), [['v=spf1 ip4:192.0.2.0/24 -all']]);
    assert.deepEqual(await resolver.resolveTxt('Example.Test.'), [['v=spf1 ip4:192.0.2.0/24 -all']]);
    assert.equal(dns.queries('example.test', 'TXT') - before, 1);
    assert.equal(counts.of('hit'), 1);
    assert.equal(counts.of('miss'), 1);
    // How long it stays, for the judge threads' copies (pool.ts).
    clock += 20_000;
    assert.equal(resolver.cachedMs('resolveTxt', 'EXAMPLE.test'), 100_000);
    assert.equal(resolver.cachedMs('resolveMx', 'example.test'), 0);
    clock += 101_000;
    assert.equal(resolver.cachedMs('resolveTxt', 'example.test'), 0);
    await resolver.resolveTxt('example.test');
    assert.equal(dns.queries('example.test', 'TXT') - before, 2);
  });

  it('decodes MX, A, AAAA and multi-string TXT as node:dns does', async () => {
    const { resolver } = make();
    assert.deepEqual(await resolver.resolveMx('example.test'), [{ exchange: 'mx.example.test', priority: 10 }]);
    assert.deepEqual(await resolver.resolve4('mx.example.test'), ['192.0.2.25']);
    assert.deepEqual(await resolver.resolve6('mx.example.test'), ['2001:db8::25']);
    const long = await resolver.resolveTxt('long.example.test');
    assert.equal(long[0]!.length, 3);
    assert.equal(long[0]!.join(''), 'p='.padEnd(600, 'A'));
  });

  it('shares one query among identical questions in flight', async () => {
    const slow = await startDnsServer({ latencyMs: 150, records: [{ name: 'shared.test', type: 'TXT', data: 'v=spf1 -all' }] });
    try {
      const { resolver, counts } = make({ servers: [slow.address] });
      const all = await Promise.all(Array.from({ length: 20 }, () => resolver.resolveTxt('shared.test')));
      for (const answer of all) assert.deepEqual(answer, [['v=spf1 -all']]);
      assert.equal(slow.queries('shared.test', 'TXT'), 1);
      assert.equal(counts.of('shared'), 19);
    } finally {
      await slow.close();
    }
  });

  it('caches NXDOMAIN and NODATA for the SOA minimum (RFC 2308 5)', async () => {
    let clock = 5_000_000;
    const { resolver, counts } = make({}, () => clock);
    for (let i = 0; i < 3; i++) await assert.rejects(resolver.resolveTxt('_dmarc.example.test'), (e: DnsError) => e.code === 'ENOTFOUND');
    assert.equal(dns.queries('_dmarc.example.test', 'TXT'), 1);
    // A name with records of another type: NODATA.
    for (let i = 0; i < 3; i++) await assert.rejects(resolver.resolveMx('mx.example.test'), (e: DnsError) => e.code === 'ENODATA');
    assert.equal(dns.queries('mx.example.test', 'MX'), 1);
    assert.equal(counts.of('negative_hit'), 4);
    clock += 59_000;
    await assert.rejects(resolver.resolveTxt('_dmarc.example.test'));
    assert.equal(dns.queries('_dmarc.example.test', 'TXT'), 1);
    clock += 2_000;
    await assert.rejects(resolver.resolveTxt('_dmarc.example.test'));
    assert.equal(dns.queries('_dmarc.example.test', 'TXT'), 2);
  });

  it('keeps a negative answer without an SOA for the configured floor', async () => {
    let clock = 9_000_000;
    const { resolver } = make({ negativeTtlSeconds: 30 }, () => clock);
    await assert.rejects(resolver.resolveTxt('nowhere.invalid'), (e: DnsError) => e.code === 'ENOTFOUND');
    clock += 29_000;
    await assert.rejects(resolver.resolveTxt('nowhere.invalid'));
    assert.equal(dns.queries('nowhere.invalid', 'TXT'), 1);
    clock += 2_000;
    await assert.rejects(resolver.resolveTxt('nowhere.invalid'));
    assert.equal(dns.queries('nowhere.invalid', 'TXT'), 2);
  });

  it('retries a dropped query, and gives up with ETIMEOUT after the retries', async () => {
    const { resolver, counts } = make({ timeoutMs: 100, retries: 2 });
    const a = dns.queries('mx.example.test', 'A');
    const mx = dns.queries('example.test', 'MX');
    dns.dropNext(1);
    assert.deepEqual(await resolver.resolve4('mx.example.test'), ['192.0.2.25']);
    assert.equal(dns.queries('mx.example.test', 'A') - a, 2);
    dns.dropNext(3);
    await assert.rejects(resolver.resolveMx('example.test'), (e: DnsError) => e.code === 'ETIMEOUT');
    assert.equal(dns.queries('example.test', 'MX') - mx, 3);
    assert.equal(counts.of('timeout'), 1);
    // A timeout is not cached: the next question is asked again and answered.
    assert.deepEqual(await resolver.resolveMx('example.test'), [{ exchange: 'mx.example.test', priority: 10 }]);
  });

  it('asks again over TCP when the UDP answer is truncated', async () => {
    const truncating = await startDnsServer({ truncateUdp: true, records: [{ name: 'big.test', type: 'TXT', data: 'x'.repeat(700) }] });
    try {
      const { resolver, counts } = make({ servers: [truncating.address] });
      assert.equal((await resolver.resolveTxt('big.test'))[0]!.join(''), 'x'.repeat(700));
      assert.equal(truncating.queries('big.test', 'TXT'), 2);
      assert.equal(counts.of('truncated'), 1);
    } finally {
      await truncating.close();
    }
  });

  it('keeps at most cacheSize answers, dropping the least recently used', async () => {
    const { resolver } = make({ cacheSize: 2 });
    await resolver.resolveTxt('example.test');
    await resolver.resolveMx('example.test');
    await resolver.resolveTxt('example.test'); // used: MX is now the oldest
    await resolver.resolve4('mx.example.test');
    assert.equal(resolver.size, 2);
    const mxBefore = dns.queries('example.test', 'MX');
    const txtBefore = dns.queries('example.test', 'TXT');
    await resolver.resolveMx('example.test');
    await resolver.resolve4('mx.example.test');
    assert.equal(dns.queries('example.test', 'MX') - mxBefore, 1);
    assert.equal(dns.queries('example.test', 'TXT') - txtBefore, 0);
  });

  it('reverse: the hosts file first, loopback never asked, then PTR', async () => {
    const hostsFile = path.join(tempDir(), 'hosts');
    writeFileSync(hostsFile, '# test\n127.0.0.1 localhost\n192.0.2.7 seven.example.test seven\n');
    const { resolver } = make({ hostsFile });
    const total = dns.totalQueries();
    assert.deepEqual(await resolver.reverse('192.0.2.7'), ['seven.example.test']);
    assert.deepEqual(await resolver.reverse('::ffff:192.0.2.7'), ['seven.example.test']);
    assert.deepEqual(await resolver.reverse('127.0.0.1'), ['localhost']);
    assert.deepEqual(await resolver.reverse('127.0.0.2'), []);
    assert.deepEqual(await resolver.reverse('::1'), []);
    assert.equal(dns.totalQueries(), total);
    assert.deepEqual(await resolver.reverse('192.0.2.9'), ['ptr.example.test']);
    assert.equal(dns.queries('9.2.0.192.in-addr.arpa', 'PTR'), 1);
    assert.equal(reverseName('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
  });

  it('withDeadline fails lookups with ETIMEOUT once the budget is spent', async () => {
    const slow = await startDnsServer({ latencyMs: 400, records: [{ name: 'slow.test', type: 'TXT', data: 'v=spf1 -all' }] });
    try {
      const { resolver } = make({ servers: [slow.address], timeoutMs: 2000 });
      const bounded = withDeadline(resolver, Date.now() + 100);
      const started = Date.now();
      await assert.rejects(bounded.resolveTxt('slow.test'), (e: DnsError) => e.code === 'ETIMEOUT');
      await assert.rejects(bounded.resolve4('slow.test'), (e: DnsError) => e.code === 'ETIMEOUT');
      assert.ok(Date.now() - started < 1000);
    } finally {
      await slow.close();
    }
  });
});
