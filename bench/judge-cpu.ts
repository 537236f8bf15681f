// CPU per message of judgeInbound (SPF, DKIM, DMARC, ARC through mailauth) over a warm in-memory
// zone, for an unsigned and a DKIM-signed 10 KB message, with the parsed-key cache and without
// (cleared before every message): what the inbound judge costs whichever thread runs it.
//   node --import tsx bench/judge-cpu.ts [--messages 2000]
import { generateKeyPairSync } from 'node:crypto';
import type { Resolver } from '../src/dns/resolver.js';
import { judgeInbound } from '../src/mailauth/inbound.js';
import { clearKeyCache, keyCacheStats } from '../src/mailauth/key-cache.js';
import { dkimSignature } from '../src/mailauth/sign.js';
import { arg, fmt } from './lib.js';

const messages = arg('messages', 2000);
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const zone: Record<string, string> = {
  'example.org': 'v=spf1 ip4:127.0.0.0/8 -all',
  '_dmarc.example.org': 'v=DMARC1; p=reject',
  'q1._domainkey.example.org': `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`,
};
const notFound = () => Promise.reject(Object.assign(new Error('not found'), { code: 'ENOTFOUND' }));
const resolver: Resolver = {
  resolveTxt: async (name) => (zone[name] ? [[zone[name]!]] : notFound()),
  resolveMx: notFound,
  resolve4: notFound,
  resolve6: notFound,
};
const body = `${'x'.repeat(76)}\r\n`.repeat(Math.ceil(10240 / 78));
const unsigned = Buffer.from(`From: <sender@example.org>\r\nTo: <user0@bench.test>\r\nSubject: bench\r\nMessage-ID: <1@example.org>\r\nDate: Mon, 07 Dec 2026 12:00:00 +0000\r\n\r\n${body}`);
const sig = await dkimSignature(unsigned, { domain: 'example.org', selector: 'q1', privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });
if ('error' in sig) throw new Error(sig.error);
const signed = Buffer.concat([Buffer.from(sig.header), unsigned]);
const facts = { ip: '127.0.0.1', helo: 'client.example.org', sender: 'sender@example.org' };
const policy = { verify: true, dmarc: 'enforce' as const, spfFail: 'accept' as const };

async function measure(name: string, raw: Buffer, cache: boolean): Promise<void> {
  for (let i = 0; i < 200; i++) await judgeInbound(raw, facts, { hostname: 'mx.bench.test', resolver, policy });
  const hits = keyCacheStats.hits;
  const start = process.cpuUsage();
  for (let i = 0; i < messages; i++) {
    if (!cache) clearKeyCache();
    const verdict = await judgeInbound(raw, facts, { hostname: 'mx.bench.test', resolver, policy });
    if (!/dmarc=pass/.test(verdict.headers) || (raw === signed && !/dkim=pass/.test(verdict.headers))) throw new Error(`unexpected verdict ${verdict.headers}`);
  }
  const used = process.cpuUsage(start);
  console.log(`| ${name} | ${messages} | ${fmt((used.user + used.system) / 1000 / messages, 3)} | ${keyCacheStats.hits - hits} |`);
}

console.log('| message | judged | CPU ms per message | parsed-key cache hits |');
console.log('|---|---|---|---|');
await measure('unsigned', unsigned, true);
await measure('DKIM-signed, key parsed every message', signed, false);
await measure('DKIM-signed, parsed key cached', signed, true);
