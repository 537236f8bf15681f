// Outbound DKIM signatures verify, even when the clock moves on while mailauth signs.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Resolver } from '../dns/resolver.js';
import { judgeInbound } from './inbound.js';
import { dkimSignature } from './sign.js';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const key = { domain: 'signer.test', selector: 'q1', privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
const zone: Record<string, string[]> = {
  'signer.test': ['v=spf1 ip4:192.0.2.20 -all'],
  'q1._domainkey.signer.test': [`v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`],
};
const missing = async (name: string): Promise<never> => {
  throw Object.assign(new Error(`no record ${name}`), { code: 'ENOTFOUND' });
};
const resolver: Resolver = {
  resolveTxt: async (name) => (zone[name.toLowerCase()] ?? (await missing(name))).map((r) => [r]),
  resolveMx: missing,
  resolve4: missing,
  resolve6: missing,
};
const raw = Buffer.from('From: <ann@signer.test>\r\nTo: <bob@example.com>\r\nSubject: signed\r\nMessage-ID: <1@signer.test>\r\nDate: Wed, 25 Nov 2026 06:00:00 +0000\r\n\r\nHello\r\n');

async function verify(header: string): Promise<string> {
  const verdict = await judgeInbound(Buffer.concat([Buffer.from(header), raw]), { ip: '192.0.2.20', helo: 'out.signer.test', sender: 'ann@signer.test' }, { hostname: 'mx.example.com', resolver, policy: { verify: true, dmarc: 'enforce', spfFail: 'accept' } });
  return /dkim=(\w+)/.exec(verdict.headers)?.[1] ?? 'none';
}

describe('outbound DKIM signatures', () => {
  it('verify, with the d=, s= and t= asked for', async () => {
    const signed = await dkimSignature(raw, key, new Date('2026-12-01T10:00:00Z'));
    assert.ok('header' in signed, JSON.stringify(signed));
    assert.match(signed.header, /^DKIM-Signature: /);
    assert.match(signed.header, /d=signer\.test;/);
    assert.match(signed.header, /s=q1;/);
    assert.match(signed.header, new RegExp(`t=${Date.parse('2026-12-01T10:00:00Z') / 1000};`));
    assert.equal(await verify(signed.header), 'pass');
  });

  it('verify when every read of the clock during signing is a second later than the last', async () => {
    // A busy machine stretched: mailauth read the clock twice while signing, and a signature
    // whose two reads fell in different seconds carried a t= other than the one it signed.
    const realNow = Date.now;
    let tick = realNow();
    Date.now = () => (tick += 1000);
    let signed: Awaited<ReturnType<typeof dkimSignature>>;
    try {
      signed = await dkimSignature(raw, key);
    } finally {
      Date.now = realNow;
    }
    assert.ok('header' in signed, JSON.stringify(signed));
    assert.equal(await verify(signed.header), 'pass');
  });

  it('reports a key it cannot use instead of signing', async () => {
    const signed = await dkimSignature(raw, { ...key, privateKeyPem: 'not a key' });
    assert.ok('error' in signed);
  });
});
