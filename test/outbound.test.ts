// The outbound worker against real SMTP receivers on 127.0.0.1 that answer 250, 4xx then
// 250, 5xx, or drop the connection mid-DATA; routes through a fake DNS zone.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { simpleParser } from 'mailparser';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { SMTPServer, type SMTPServerAddress } from 'smtp-server';
import type { Resolver } from '../src/dns/resolver.js';
import { OutboundWorker } from '../src/queue/worker.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { silentLogger } from '../src/util/logger.js';
import { startTestServer, tempDir, type TestServer } from './helpers.js';

const run = promisify(execFile);

interface Received {
  from: string;
  to: string[];
  raw: Buffer;
}

/** A receiving MTA whose answers depend on the recipient's local part. */
class FakeReceiver {
  readonly received: Received[] = [];
  /** Connections accepted, to see connection reuse. */
  connections = 0;
  private attempts = new Map<string, number>();
  private server: SMTPServer;
  port = 0;

  constructor() {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onConnect: (_session, callback) => {
        this.connections++;
        callback();
      },
      onRcptTo: (address: SMTPServerAddress, _session, callback) => {
        const local = address.address.split('@')[0]!;
        const n = (this.attempts.get(address.address) ?? 0) + 1;
        this.attempts.set(address.address, n);
        if (local.startsWith('perm')) return callback(Object.assign(new Error('5.1.1 no such user here'), { responseCode: 550 }));
        if (local.startsWith('always')) return callback(Object.assign(new Error('4.3.2 busy, try later'), { responseCode: 451 }));
        if (local.startsWith('temp') && n === 1) return callback(Object.assign(new Error('4.2.0 greylisted, try again'), { responseCode: 451 }));
        callback();
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        const to = session.envelope.rcptTo.map((r) => r.address);
        const dropper = to.find((r) => r.startsWith('drop'));
        // The first DATA for a "drop" recipient loses its connection: never acknowledged, never counted.
        const drop = dropper !== undefined && !this.attempts.has(`data:${dropper}`);
        if (drop) {
          this.attempts.set(`data:${dropper}`, 1);
          stream.once('data', () => this.destroyAll());
        }
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          if (drop) return;
          this.received.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to, raw: Buffer.concat(chunks) });
          callback();
        });
      },
    });
  }

  private destroyAll(): void {
    for (const connection of (this.server as unknown as { connections: Set<{ _socket: { destroy(): void } }> }).connections) connection._socket.destroy();
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.port = ((this.server as unknown as { server: { address(): AddressInfo } }).server.address()).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  to(recipient: string): Received[] {
    return this.received.filter((r) => r.to.includes(recipient));
  }
}

const message = (subject: string) => Buffer.from(`From: alice@example.com\r\nTo: someone@remote.test\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.com>\r\n\r\nBody of ${subject}\r\n`);

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('outbound delivery', () => {
  let receiver: FakeReceiver;
  let server: TestServer;
  let alice: number;

  before(async () => {
    receiver = new FakeReceiver();
    await receiver.listen();
    const zone: Resolver = {
      resolveMx: async (domain) => {
        if (domain === 'mx.test') return [{ exchange: 'mail.mx.test', priority: 10 }, { exchange: 'backup.mx.test', priority: 20 }];
        if (domain === 'nullmx.test') return [{ exchange: '', priority: 0 }];
        throw Object.assign(new Error('no such domain'), { code: 'ENOTFOUND' });
      },
      resolve4: async (host) => {
        if (host === 'mail.mx.test') return ['127.0.0.1'];
        throw Object.assign(new Error('no such host'), { code: 'ENOTFOUND' });
      },
      resolve6: async () => {
        throw Object.assign(new Error('no AAAA'), { code: 'ENODATA' });
      },
      resolveTxt: async () => [],
    };
    server = await startTestServer({
      resolver: zone,
      overrides: {
        outbound: { routes: { 'remote.test': `127.0.0.1:${receiver.port}` }, port: receiver.port, pollIntervalMs: 50, retryIntervalsSeconds: [0.2], connectTimeoutSeconds: 5 },
      },
    });
    alice = await server.addUser('alice@example.com', 'pw');
  });
  after(async () => {
    await server.stop();
    await receiver.close();
  });

  it('delivers over a static route, one transaction for several recipients of a domain', async () => {
    await server.store.deliver(message('route'), [], { outbound: { sender: 'alice@example.com', recipients: ['ok1@remote.test', 'ok2@remote.test'] } });
    await until('delivery', () => receiver.to('ok1@remote.test').length > 0);
    const [got] = receiver.to('ok1@remote.test');
    assert.deepEqual(got!.to.sort(), ['ok1@remote.test', 'ok2@remote.test']);
    assert.equal(got!.from, 'alice@example.com');
    assert.match(got!.raw.toString(), /Subject: route\r\n/);
    await until('queue to empty', async () => (await server.store.listOutbound()).length === 0);
  });

  it('follows MX records in preference order, skipping hosts without an address', async () => {
    await server.store.deliver(message('mx'), [], { outbound: { sender: 'alice@example.com', recipients: ['ok@mx.test'] } });
    await until('delivery via MX', () => receiver.to('ok@mx.test').length === 1);
  });

  it('retries a 4xx answer and then delivers exactly once', async () => {
    await server.store.deliver(message('greylist'), [], { outbound: { sender: 'alice@example.com', recipients: ['temp@remote.test'] } });
    await until('retry to succeed', () => receiver.to('temp@remote.test').length === 1);
    await sleep(400);
    assert.equal(receiver.to('temp@remote.test').length, 1);
  });

  it('retries after a connection dropped mid-DATA without a duplicate', async () => {
    await server.store.deliver(message('dropped'), [], { outbound: { sender: 'alice@example.com', recipients: ['drop@remote.test'] } });
    await until('redelivery', () => receiver.to('drop@remote.test').length === 1);
    await until('queue to empty', async () => (await server.store.listOutbound()).length === 0);
    assert.equal(receiver.to('drop@remote.test').length, 1);
  });

  it('bounces a 5xx with an RFC 3464 report to the local sender', async () => {
    const inbox = (await server.store.getMailbox(alice, 'INBOX'))!;
    const before = (await server.store.mailboxStatus(inbox.id)).messages;
    await server.store.deliver(message('bounce me'), [], { outbound: { sender: 'alice@example.com', recipients: ['perm@remote.test', 'ok3@remote.test'] } });
    await until('the DSN', async () => (await server.store.mailboxStatus(inbox.id)).messages > before);
    const [dsnMeta] = await server.store.listMessages(inbox.id, { fromUid: (await server.store.listMessages(inbox.id)).at(-1)!.uid });
    const raw = (await server.store.getBlob(dsnMeta!.blobHash))!;
    const parsed = await simpleParser(raw);
    assert.match(String(parsed.headers.get('content-type') && (parsed.headers.get('content-type') as { value: string }).value), /multipart\/report/);
    assert.equal((parsed.headers.get('content-type') as { params: Record<string, string> }).params['report-type'], 'delivery-status');
    const text = raw.toString();
    assert.match(text, /Final-Recipient: rfc822; perm@remote\.test\r\nAction: failed\r\nStatus: 5\.1\.1/);
    assert.match(text, /Diagnostic-Code: smtp; 550 5\.1\.1 no such user here/);
    assert.match(text, /Content-Type: text\/rfc822-headers\r\n\r\nFrom: alice@example\.com\r\nTo: someone@remote\.test\r\nSubject: bounce me/);
    assert.doesNotMatch(text, /ok3@remote\.test/, 'the delivered recipient is not reported');
    assert.equal(receiver.to('ok3@remote.test').length, 1);
  });

  it('bounces a domain with a null MX, and never bounces a bounce', async () => {
    const outbound = await server.store.deliver(message('null sender'), [], { outbound: { sender: '', recipients: ['x@nullmx.test'] } });
    await until('the entry to be dropped', async () => (await server.store.getOutbound(outbound.outboundIds[0]!)) === undefined);
    assert.equal((await server.store.listOutbound()).filter((e) => e.sender === '' && e.recipient === '').length, 0);
  });

  it('hands each entry to one of two competing workers only', async () => {
    await server.store.deliver(message('contended'), [], { outbound: { sender: 'alice@example.com', recipients: Array.from({ length: 10 }, (_, i) => `race${i}@remote.test`) } });
    const workers = [1, 2].map((n) => new OutboundWorker({ store: server.store, config: server.config, logger: silentLogger(), resolver: { resolveMx: async () => [], resolve4: async () => [], resolve6: async () => [], resolveTxt: async () => [] }, owner: `extra-${n}` }));
    await Promise.all(workers.map((w) => w.runOnce()));
    await until('all race recipients', () => Array.from({ length: 10 }, (_, i) => receiver.to(`race${i}@remote.test`).length).every((n) => n >= 1));
    await sleep(300);
    for (let i = 0; i < 10; i++) assert.equal(receiver.to(`race${i}@remote.test`).length, 1, `race${i} delivered once`);
  });
});

describe('outbound delays and expiry', () => {
  let receiver: FakeReceiver;
  let server: TestServer;

  before(async () => {
    receiver = new FakeReceiver();
    await receiver.listen();
    server = await startTestServer({
      overrides: {
        // A warning after about 0.4 s of trying, the end after about 3 s.
        outbound: { routes: { 'remote.test': `127.0.0.1:${receiver.port}` }, pollIntervalMs: 50, retryIntervalsSeconds: [0.2], warnAfterHours: 0.4 / 3600, lifetimeHours: 3 / 3600 },
      },
    });
    await server.addUser('alice@example.com', 'pw');
  });
  after(async () => {
    await server.stop();
    await receiver.close();
  });

  async function dsnsFor(address: string): Promise<string[]> {
    const user = (await server.store.getUser(address))!;
    const inbox = (await server.store.getMailbox(user.id, 'INBOX'))!;
    const out: string[] = [];
    for (const meta of await server.store.listMessages(inbox.id)) out.push((await server.store.getBlob(meta.blobHash))!.toString());
    return out;
  }

  it('warns the sender once while retrying, then bounces at the end of the lifetime', async () => {
    await server.store.deliver(message('stuck'), [], { outbound: { sender: 'alice@example.com', recipients: ['always-busy@remote.test'] } });
    await until('a delay warning', async () => (await dsnsFor('alice@example.com')).some((m) => /Action: delayed/i.test(m)));
    await until('the final failure', async () => (await dsnsFor('alice@example.com')).some((m) => /Action: failed/i.test(m)), 20_000);
    const dsns = await dsnsFor('alice@example.com');
    assert.equal(dsns.filter((m) => /Action: delayed/i.test(m)).length, 1, 'one warning only');
    const failed = dsns.find((m) => /Action: failed/i.test(m))!;
    const parsed = await simpleParser(Buffer.from(failed));
    assert.match(String(parsed.headers.get('content-type') && (parsed.headers.get('content-type') as { value: string }).value), /multipart\/report/);
    assert.match(failed, /Final-Recipient: rfc822; ?always-busy@remote\.test/i);
    assert.match(failed, /Subject: stuck/, 'the original headers come back');
    assert.equal((await server.store.listOutbound()).length, 0, 'nothing left in the queue');
  });

  it("takes over an entry whose worker died holding the lease", async () => {
    // Before any worker runs: the entry is queued and a worker elsewhere leases it, then dies.
    const data = tempDir('quill-orphan-');
    const store = await SqliteStore.open(data);
    await store.addDomain('example.com');
    const { outboundIds } = await store.deliver(message('orphan'), [], { outbound: { sender: 'alice@example.com', recipients: ['orphan@remote.test'] } });
    const taken = await store.leaseOutbound('dead-node', 1_000, 100);
    assert.deepEqual(taken.map((e) => e.id), outboundIds);
    await store.close();
    const node = await startTestServer({ dataDir: data, overrides: { outbound: { routes: { 'remote.test': `127.0.0.1:${receiver.port}` }, pollIntervalMs: 50 } } });
    try {
      await until('delivery after the lease ran out', () => receiver.to('orphan@remote.test').length === 1);
      // The receiver has the message once its DATA ends; the worker drops the entry only after reading the 250.
      await until('the entry leaves the queue', async () => (await node.store.listOutbound()).length === 0);
      assert.equal(receiver.to('orphan@remote.test').length, 1, 'delivered once');
    } finally {
      await node.stop();
    }
  });
});

describe('outbound connection reuse', () => {
  it('sends messages to one host one after another over the same connection', async () => {
    const receiver = new FakeReceiver();
    await receiver.listen();
    // One message at a time, so each finds the connection the one before left idle.
    const server = await startTestServer({ overrides: { outbound: { routes: { 'remote.test': `127.0.0.1:${receiver.port}` }, pollIntervalMs: 50, concurrency: 1 } } });
    try {
      for (let i = 0; i < 4; i++) await server.store.deliver(message(`reuse ${i}`), [], { outbound: { sender: 'alice@example.com', recipients: [`reuse${i}@remote.test`] } });
      await until('four deliveries', () => receiver.received.length === 4);
      assert.equal(receiver.connections, 1, 'one connection for four messages');
    } finally {
      await server.stop();
      await receiver.close();
    }
  });
});

describe('outbound rate per domain', () => {
  it('sends at most perDomainPerMinute messages to a domain and puts the rest back untried', async () => {
    const receiver = new FakeReceiver();
    await receiver.listen();
    const server = await startTestServer({ overrides: { outbound: { routes: { 'remote.test': `127.0.0.1:${receiver.port}` }, pollIntervalMs: 50, perDomainPerMinute: 3 } } });
    try {
      for (let i = 0; i < 5; i++) await server.store.deliver(message(`rated ${i}`), [], { outbound: { sender: 'alice@example.com', recipients: [`rated${i}@remote.test`] } });
      await until('three deliveries', () => receiver.received.length >= 3);
      await sleep(500);
      assert.equal(receiver.received.length, 3, 'no fourth message within the minute');
      const left = await server.store.listOutbound();
      assert.equal(left.length, 2);
      for (const entry of left) {
        assert.equal(entry.attempts, 0, 'a postponed message has not used an attempt');
        const wait = entry.nextAttemptAt.getTime() - Date.now();
        assert.ok(wait > 0 && wait <= 60_000, `due again within the minute (${wait} ms)`);
      }
    } finally {
      await server.stop();
      await receiver.close();
    }
  });
});

describe('queue and DKIM from the command line', () => {
  const cli = async (data: string, ...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args, '--data', data]);

  it('lists, shows, holds, releases and deletes queue entries', async () => {
    const data = tempDir('quill-queue-');
    const store = await SqliteStore.open(data);
    const { outboundIds } = await store.deliver(message('queued'), [], { outbound: { sender: 'alice@example.com', recipients: ['a@far.test', 'b@far.test'] } });
    await store.close();
    const [a, b] = outboundIds as [number, number];
    assert.match((await cli(data, 'queue', 'list')).stdout, new RegExp(`${a}\\s+queued\\s+0\\s.*alice@example\\.com\\s+a@far\\.test`));
    const shown = (await cli(data, 'queue', 'show', String(a))).stdout;
    assert.match(shown, /to: +a@far\.test/);
    assert.match(shown, /Subject: queued/);
    assert.match((await cli(data, 'queue', 'hold', String(a))).stdout, /held/);
    assert.match((await cli(data, 'queue', 'list')).stdout, new RegExp(`${a}\\s+held`));
    assert.match((await cli(data, 'queue', 'release', String(a))).stdout, /released/);
    assert.match((await cli(data, 'queue', 'retry', String(b))).stdout, /retried now/);
    assert.match((await cli(data, 'queue', 'delete', String(b))).stdout, /deleted/);
    const list = JSON.parse((await cli(data, 'queue', 'list', '--json')).stdout) as { id: number; status: string }[];
    assert.deepEqual(list.map((e) => [e.id, e.status]), [[a, 'queued']]);
    await assert.rejects(cli(data, 'queue', 'delete', '999'), (e: { code: number; stderr: string }) => e.code === 2 && /no queue entry 999/.test(e.stderr));
    await assert.rejects(cli(data, 'queue', 'show', 'abc'), (e: { code: number }) => e.code === 2);
  });

  it('signs outbound mail with the key from `quill domain dkim`, verifiable with the printed record', async () => {
    const receiver = new FakeReceiver();
    await receiver.listen();
    const data = tempDir('quill-dkim-');
    await cli(data, 'domain', 'add', 'example.com');
    const record = (await cli(data, 'domain', 'dkim', 'example.com', '--selector', 'q1')).stdout.trim();
    assert.match(record, /^q1\._domainkey\.example\.com\. IN TXT "v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+"$/);
    const dns = (await cli(data, 'domain', 'dns', 'example.com')).stdout;
    assert.match(dns, /example\.com\. IN MX 10 /);
    assert.match(dns, /v=spf1 mx -all/);
    assert.match(dns, /_dmarc\.example\.com\. IN TXT "v=DMARC1/);
    assert.ok(dns.includes(record), 'dns repeats the DKIM record');

    const server = await startTestServer({ dataDir: data, overrides: { outbound: { routes: { 'remote.test': `127.0.0.1:${receiver.port}` }, pollIntervalMs: 50 } } });
    try {
      await server.store.deliver(message('signed'), [], { outbound: { sender: 'alice@example.com', recipients: ['ok@remote.test'] } });
      await until('signed delivery', () => receiver.to('ok@remote.test').length === 1);
    } finally {
      await server.stop();
      await receiver.close();
    }
    const raw = receiver.to('ok@remote.test')[0]!.raw;
    assert.match(raw.toString(), /^DKIM-Signature: .*d=example\.com/s);
    const txt = /"(v=DKIM1[^"]+)"/.exec(record)![1]!;
    const verified = await dkimVerify(raw, {
      resolver: async (name: string, type: string) => {
        if (name === 'q1._domainkey.example.com' && type === 'TXT') return [[txt]];
        throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      },
    });
    assert.equal(verified.results[0]?.status.result, 'pass');
  });
});
