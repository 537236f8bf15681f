// Two Quillmail instances for two domains exchange mail: a.test signs what its users submit,
// b.test verifies it against a fake DNS zone, and mail forged in a.test's name is refused.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import type { Resolver } from '../src/dns/resolver.js';
import { startTestServer, type TestServer } from './helpers.js';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

// a.test's published records: its mail comes from an address the test cannot use (so SPF
// fails from 127.0.0.1 and only DKIM can make DMARC pass), and DMARC says reject.
const zone: Record<string, string[]> = {
  'a.test': ['v=spf1 ip4:192.0.2.1 -all'],
  '_dmarc.a.test': ['v=DMARC1; p=reject'],
  'q1._domainkey.a.test': [`v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`],
};
const notFound = (name: string): never => {
  throw Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
};
const fakeDns: Resolver = {
  resolveTxt: async (name) => zone[name.toLowerCase()]?.map((r) => [r]) ?? notFound(name),
  resolveMx: async (name) => notFound(name),
  resolve4: async (name) => notFound(name),
  resolve6: async (name) => notFound(name),
};

async function inbox(server: TestServer, address: string): Promise<string[]> {
  const user = (await server.store.getUser(address))!;
  const box = (await server.store.getMailbox(user.id, 'INBOX'))!;
  const out: string[] = [];
  for (const meta of await server.store.listMessages(box.id)) out.push((await server.store.getBlob(meta.blobHash))!.toString());
  return out;
}

describe('mail between two Quillmail instances', () => {
  let a: TestServer;
  let b: TestServer;

  before(async () => {
    b = await startTestServer({ domains: ['b.test'], resolver: fakeDns, overrides: { hostname: 'mx.b.test' } });
    await b.addUser('bob@b.test', 'bob-pw');
    await b.addUser('carol@b.test', 'carol-pw');
    a = await startTestServer({
      domains: ['a.test'],
      resolver: fakeDns,
      overrides: { hostname: 'mx.a.test', outbound: { routes: { 'b.test': `127.0.0.1:${b.port('smtp')}` }, pollIntervalMs: 50 } },
    });
    await a.addUser('alice@a.test', 'alice-pw');
    await a.store.setDkimKey('a.test', 'q1', privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  });

  after(async () => {
    await Promise.allSettled([a.stop(), b.stop()]);
  });

  it('delivers submitted mail signed, verified, with Date and Message-ID added and Bcc gone', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: a.port('submission'), secure: false, ignoreTLS: true, auth: { user: 'alice@a.test', pass: 'alice-pw' } });
    const raw = Buffer.from('From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nBcc: carol@b.test\r\nSubject: across\r\n\r\nHello Bob.\r\n');
    await transport.sendMail({ envelope: { from: 'alice@a.test', to: ['bob@b.test', 'carol@b.test'] }, raw });
    transport.close();

    const end = Date.now() + 20_000;
    while ((await inbox(b, 'bob@b.test')).length === 0 || (await inbox(b, 'carol@b.test')).length === 0) {
      if (Date.now() > end) throw new Error(`not delivered; queue on a: ${JSON.stringify(await a.store.listOutbound())}`);
      await sleep(50);
    }
    for (const address of ['bob@b.test', 'carol@b.test']) {
      const [got] = await inbox(b, address);
      assert.ok(got);
      const header = got.slice(0, got.indexOf('\r\n\r\n'));
      assert.match(header, /^Received: from .*by mx\.b\.test with ESMTP/s, `${address}: b's Received on top`);
      assert.match(header, /Authentication-Results: mx\.b\.test;/);
      assert.match(header, /dkim=pass header\.i=@a\.test/);
      assert.match(header, /spf=fail/);
      assert.match(header, /dmarc=pass/);
      assert.match(header, /DKIM-Signature: .*d=a\.test/s);
      assert.match(header, /\r\nDate: /);
      assert.match(header, /\r\nMessage-ID: <[0-9a-f]+@mx\.a\.test>/);
      assert.doesNotMatch(got, /carol@b\.test/i, 'the Bcc recipient is not revealed');
      assert.ok(got.endsWith('\r\n\r\nHello Bob.\r\n'));
    }
  });

  it("refuses mail forged in a.test's name (DMARC p=reject)", async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: b.port('smtp'), secure: false, ignoreTLS: true });
    const raw = Buffer.from('From: alice@a.test\r\nTo: bob@b.test\r\nSubject: forged\r\nDate: Wed, 25 Nov 2026 06:00:00 +0000\r\nMessage-ID: <forged@x>\r\n\r\nPay this.\r\n');
    await assert.rejects(transport.sendMail({ envelope: { from: 'alice@a.test', to: ['bob@b.test'] }, raw }), (error: { responseCode?: number; response?: string }) => {
      assert.equal(error.responseCode, 550);
      assert.match(error.response ?? '', /5\.7\.1/);
      return true;
    });
    transport.close();
    assert.ok(!(await inbox(b, 'bob@b.test')).some((m) => m.includes('Subject: forged')));
  });
});
