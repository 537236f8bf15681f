// Inbound verification against a fake DNS zone: signed and aligned mail passes, spoofed mail
// gets the sender domain's DMARC policy, and the local policy can override it.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Resolver } from '../dns/resolver.js';
import { judgeInbound, type InboundPolicy } from './inbound.js';
import { dkimSignature } from './sign.js';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const publicDer = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

const zone: Record<string, string[]> = {
  'strict.test': ['v=spf1 ip4:192.0.2.10 -all'],
  '_dmarc.strict.test': ['v=DMARC1; p=reject'],
  'sel._domainkey.strict.test': [`v=DKIM1; k=rsa; p=${publicDer}`],
  'soft.test': ['v=spf1 ip4:192.0.2.10 -all'],
  '_dmarc.soft.test': ['v=DMARC1; p=quarantine'],
};

const resolver: Resolver = {
  resolveTxt: async (name) => {
    const records = zone[name.toLowerCase()];
    if (!records) throw Object.assign(new Error(`no TXT ${name}`), { code: 'ENOTFOUND' });
    return records.map((r) => [r]);
  },
  resolveMx: async (name) => {
    throw Object.assign(new Error(`no MX ${name}`), { code: 'ENOTFOUND' });
  },
  resolve4: async (name) => {
    throw Object.assign(new Error(`no A ${name}`), { code: 'ENOTFOUND' });
  },
  resolve6: async (name) => {
    throw Object.assign(new Error(`no AAAA ${name}`), { code: 'ENOTFOUND' });
  },
};

const enforce: InboundPolicy = { verify: true, dmarc: 'enforce', spfFail: 'accept' };

function message(from: string): Buffer {
  return Buffer.from(`From: <${from}>\r\nTo: <bob@example.com>\r\nSubject: hello\r\nMessage-ID: <${Math.random()}@x>\r\nDate: Wed, 25 Nov 2026 06:00:00 +0000\r\n\r\nHi Bob\r\n`);
}

async function signed(raw: Buffer): Promise<Buffer> {
  const signature = await dkimSignature(raw, { domain: 'strict.test', selector: 'sel', privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });
  if ('error' in signature) throw new Error(signature.error);
  return Buffer.concat([Buffer.from(signature.header), raw]);
}

const judge = (raw: Buffer, ip: string, sender: string, policy = enforce) =>
  judgeInbound(raw, { ip, helo: 'client.test', sender }, { hostname: 'mx.example.com', resolver, policy });

describe('inbound mail authentication', () => {
  it('passes signed, aligned mail from a permitted address and says so in one header', async () => {
    const verdict = await judge(await signed(message('alice@strict.test')), '192.0.2.10', 'alice@strict.test');
    assert.equal(verdict.action, 'accept');
    assert.match(verdict.headers, /^Authentication-Results: mx\.example\.com;/m);
    assert.match(verdict.headers, /dkim=pass header\.i=@strict\.test/);
    assert.match(verdict.headers, /spf=pass/);
    assert.match(verdict.headers, /dmarc=pass/);
    assert.equal((verdict.headers.match(/^Authentication-Results:/gm) ?? []).length, 1);
    assert.ok(verdict.headers.endsWith('\r\n') && !/[^\r]\n/.test(verdict.headers), 'CRLF line ends');
  });

  it("rejects spoofed mail when the domain publishes p=reject", async () => {
    const verdict = await judge(message('ceo@strict.test'), '203.0.113.5', 'ceo@strict.test');
    assert.equal(verdict.action, 'reject');
    assert.match(verdict.reason ?? '', /DMARC/);
    assert.match(verdict.headers, /dmarc=fail/);
  });

  it('quarantines spoofed mail when the domain publishes p=quarantine', async () => {
    assert.equal((await judge(message('x@soft.test'), '203.0.113.5', 'x@soft.test')).action, 'quarantine');
  });

  it('lets the local policy override the published one', async () => {
    const lenient = await judge(message('ceo@strict.test'), '203.0.113.5', 'ceo@strict.test', { ...enforce, dmarc: 'quarantine' });
    assert.equal(lenient.action, 'quarantine');
    const strictSpf = await judge(message('a@unrelated.test'), '203.0.113.5', 'a@soft.test', { ...enforce, dmarc: 'accept', spfFail: 'reject' });
    assert.equal(strictSpf.action, 'reject');
    assert.match(strictSpf.reason ?? '', /SPF/);
  });

  it('accepts mail from domains without records, and adds nothing when verification is off', async () => {
    const none = await judge(message('someone@nowhere.test'), '203.0.113.5', 'someone@nowhere.test');
    assert.equal(none.action, 'accept');
    assert.match(none.headers, /dmarc=none/);
    const off = await judge(message('ceo@strict.test'), '203.0.113.5', 'ceo@strict.test', { ...enforce, verify: false });
    assert.deepEqual(off, { headers: '', action: 'accept' });
  });
});
