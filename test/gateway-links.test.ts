// Gateway→node links and framing (issue 20), through the real node processes, with clients on
// 127.0.0.2 and 127.0.0.3:
// - with cluster.secret set, a connection to a node port from the gateway's own address (the
//   trusted one) that does not prove the secret gets no further than a refusal: XQUILL-LOGIN and
//   XCLIENT LOGIN= are never reached; with the proof they work, and a proof is good only once;
// - one framing rule at the gateway's SMTP front: a line holding a bare LF is refused with one
//   500 and the session stays in step; only known verbs pass; a client's own transaction id is
//   refused; a stalled STARTTLS handshake is closed after gateway.tlsHandshakeTimeoutMs.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { gatewayHello } from '../src/net/gateway-link.js';
import { TestCluster } from './cluster-kit.js';
import { WireClient } from './clients/smtp.js';

const SECRET = 'test-cluster-secret-0123456789';

/** Sends `lines` on a fresh connection and collects what comes back until `until` matches or the peer closes. */
function talk(address: { host: string; port: number }, send: string, until: RegExp, localAddress?: string): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect({ ...address, localAddress });
    let text = '';
    const timer = setTimeout(() => finish(false), 5_000);
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    socket.on('connect', () => socket.write(send));
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (until.test(text)) finish(false);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
  });
}

describe('gateway links and framing', () => {
  const cluster = new TestCluster(['l-1'], ['smtp', 'imap', 'pop3'], { secret: SECRET, gateway: { tlsHandshakeTimeoutMs: 500 } });
  before(() => cluster.start());
  after(() => cluster.close());

  it('refuses a connection from the gateway address without the secret, on every protocol', async () => {
    const imap = await cluster.nodeAddress('l-1', 'imap');
    const pop3 = await cluster.nodeAddress('l-1', 'pop3');
    const smtp = await cluster.nodeAddress('l-1', 'submission');
    const proxy = 'PROXY TCP4 127.0.0.9 127.0.0.1 4000 143\r\n';

    // From 127.0.0.1, the trusted address, but without the proof (or with a wrong one).
    const wrong = gatewayHello('not-the-cluster-secret-at-all');
    for (const first of ['', wrong]) {
      const i = await talk(imap, `${first}${proxy}a XQUILL-LOGIN bob@example.com\r\n`, /^a /m);
      assert.doesNotMatch(i.text, /^a OK/m, `IMAP: ${i.text}`);
      assert.match(i.text, /^\* BYE .*not authenticated/m);
      const p = await talk(pop3, `${first}${proxy}XCLIENT LOGIN=bob@example.com\r\nSTAT\r\n`, /\+OK \d/);
      assert.doesNotMatch(p.text, /^\+OK/m, `POP3: ${p.text}`);
      const s = await talk(smtp, `${first}PROXY UNKNOWN\r\nXCLIENT ADDR=127.0.0.9 LOGIN=bob@example.com\r\n`, /^220 .*\r\n220 /m);
      assert.match(s.text, /^421 /, `SMTP: ${s.text}`);
      assert.doesNotMatch(s.text, /^220 /m);
    }

    // With the proof, the same lines work.
    const i = await talk(imap, `${gatewayHello(SECRET)}${proxy}a XQUILL-LOGIN bob@example.com\r\n`, /^a /m);
    assert.match(i.text, /^a OK/m, i.text);
    const p = await talk(pop3, `${gatewayHello(SECRET)}${proxy}XCLIENT LOGIN=bob@example.com\r\nSTAT\r\n`, /\+OK \d+ \d+\r\n/);
    assert.match(p.text, /\+OK \d+ \d+\r\n/, p.text);
    const link = new WireClient(net.connect(smtp));
    try {
      link.socket.write(`${gatewayHello(SECRET)}PROXY UNKNOWN\r\n`);
      assert.match(await link.reply(), /^220 /);
      assert.match(await link.exchange('XCLIENT ADDR=127.0.0.9 LOGIN=bob@example.com'), /^220 /);
    } finally {
      link.socket.destroy();
    }

    // A proof is good once: the same line again is refused.
    const hello = gatewayHello(SECRET);
    assert.match((await talk(imap, `${hello}${proxy}a XQUILL-LOGIN bob@example.com\r\n`, /^a /m)).text, /^a OK/m);
    assert.doesNotMatch((await talk(imap, `${hello}${proxy}a XQUILL-LOGIN bob@example.com\r\n`, /^a /m)).text, /^a OK/m);
  });

  it('refuses a line with a bare LF once and keeps the SMTP session in step', async () => {
    const wire = await WireClient.connect(cluster.gateway.port('smtp'), { localAddress: '127.0.0.2' });
    try {
      assert.match(await wire.reply(), /^220 /);
      assert.match(await wire.exchange('EHLO client.test'), /^250/);
      assert.match(await wire.exchange('MAIL FROM:<load@elsewhere.test>'), /^250 /);
      assert.match(await wire.exchange('RCPT TO:<bob@example.com>\nRCPT TO:<bob@example.com>'), /^500 5\.5\.2 /);
      assert.match(await wire.exchange('RCPT TO:<bob@example.com>'), /^250 /);
      assert.match(await wire.exchange('DATA'), /^354 /);
      assert.match(await wire.exchange('Subject: framing\r\n\r\nbody\r\n.'), /^250 /);
      assert.match(await wire.exchange('QUIT'), /^221 /);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(wire.pending, false, 'no reply left over');
    } finally {
      wire.socket.destroy();
    }
    await cluster.checkStoredOnce(['framing'], /\r\nSubject: (framing)\r\n/);
  });

  it('passes only known verbs and refuses a transaction id of the client\'s own', async () => {
    const wire = await WireClient.connect(cluster.gateway.port('smtp'), { localAddress: '127.0.0.3' });
    try {
      await wire.reply();
      await wire.exchange('EHLO client.test');
      assert.match(await wire.exchange('XCLIENT ADDR=10.0.0.1 LOGIN=bob@example.com'), /^500 5\.5\.1 /);
      assert.match(await wire.exchange('XQUILL-LOGIN bob@example.com'), /^500 5\.5\.1 /);
      assert.match(await wire.exchange('MAIL FROM:<load@elsewhere.test> XQUILL-TXN=forged-transaction-1'), /^555 5\.5\.4 /);
      assert.match(await wire.exchange('MAIL FROM:<load@elsewhere.test>'), /^250 /);
      assert.match(await wire.exchange('QUIT'), /^221 /);
    } finally {
      wire.socket.destroy();
    }
  });

  it('closes a STARTTLS handshake that stalls', async () => {
    const wire = await WireClient.connect(cluster.gateway.port('smtp'), { localAddress: '127.0.0.2' });
    await wire.reply();
    assert.match(await wire.exchange('EHLO client.test'), /STARTTLS/);
    assert.match(await wire.exchange('STARTTLS'), /^220 /);
    // Not a byte of the handshake: the gateway gives up after 500 ms (gateway.tlsHandshakeTimeoutMs).
    const started = Date.now();
    await new Promise<void>((resolve) => (wire.closed ? resolve() : wire.socket.once('close', () => resolve())));
    assert.ok(Date.now() - started < 4_000, 'closed in time');
  });
});
