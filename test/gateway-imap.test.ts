// IMAP through the gateway's own front end: STARTTLS and the login at the gateway, the session
// on a node. A node killed with SIGKILL under a client in IDLE, or under a pending FETCH, costs
// the client nothing; what changed meanwhile reaches it as EXPUNGE/EXISTS/FETCH; a drained
// node's idle sessions move away without the client noticing.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImapFlow } from 'imapflow';
import { startGateway, type RunningGateway } from '../src/gateway/gateway.js';
import { gatewayStats } from '../src/gateway/imap-front.js';
import { Membership } from '../src/cluster/membership.js';
import { openStore } from '../src/server.js';
import type { Store } from '../src/store/types.js';
import { createLogger, silentLogger } from '../src/util/logger.js';
import { hashPassword } from '../src/util/password.js';
import { tempDir, testConfig } from './helpers.js';

interface NodeProcess {
  child: ChildProcess;
  output: string;
}

function startNode(data: string, id: string): NodeProcess {
  const ports = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'node', '--id', id, '--data', data, '--trusted-gateway', '127.0.0.1', '--log-level', 'warn', ...ports], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const node: NodeProcess = { child, output: '' };
  child.stdout!.on('data', (c: Buffer) => (node.output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (node.output += c.toString()));
  return node;
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function message(subject: string, body = 'Hello.\r\n'): Buffer {
  return Buffer.from(`From: someone@elsewhere.test\r\nTo: user@example.com\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}.${Date.now()}@elsewhere.test>\r\n\r\n${body}`);
}

/** An imapflow client through the gateway that records everything a user would notice. */
class Client {
  readonly imap: ImapFlow;
  readonly errors: Error[] = [];
  closed = false;
  readonly seen: { kind: string; value: unknown }[] = [];

  constructor(port: number, user: string, password: string, options: { autoIdle?: boolean } = {}) {
    this.imap = new ImapFlow({
      host: '127.0.0.1',
      port,
      secure: false,
      tls: { rejectUnauthorized: false },
      auth: { user, pass: password },
      logger: false,
      disableAutoIdle: options.autoIdle === false,
      autoIdleDelay: 100,
    } as ConstructorParameters<typeof ImapFlow>[0]);
    this.imap.on('error', (error: Error) => this.errors.push(error));
    this.imap.on('close', () => (this.closed = true));
    this.imap.on('exists', (data: unknown) => this.seen.push({ kind: 'exists', value: data }));
    this.imap.on('expunge', (data: unknown) => this.seen.push({ kind: 'expunge', value: data }));
    this.imap.on('flags', (data: unknown) => this.seen.push({ kind: 'flags', value: data }));
  }

  get idling(): boolean {
    return (this.imap as unknown as { idling: boolean }).idling === true;
  }

  /** Nothing a user would call trouble happened. */
  assertUntroubled(): void {
    assert.deepEqual(this.errors.map((e) => e.message), []);
    assert.equal(this.closed, false, 'the connection stayed open');
  }
}

describe('IMAP through the gateway', () => {
  const data = tempDir('quill-gw-imap-');
  const nodes = new Map<string, NodeProcess>();
  let store: Store;
  let gateway: RunningGateway;
  let port = 0;
  let nextNode = 4;
  const clients: Client[] = [];

  const users = new Map<string, { id: number; inbox: number }>();
  async function addUser(address: string): Promise<void> {
    const user = await store.addUser({ address, passwordHash: await hashPassword('pw') });
    await store.deliver(message('welcome'), [{ userId: user.id }]);
    users.set(address, { id: user.id, inbox: (await store.getMailbox(user.id, 'INBOX'))!.id });
  }
  async function deliver(address: string, subject: string, body?: string): Promise<number> {
    const result = await store.deliver(message(subject, body), [{ userId: users.get(address)!.id }]);
    return result.copies[0]!.uid;
  }
  async function connect(address: string, options: { autoIdle?: boolean } = {}): Promise<Client> {
    const client = new Client(port, address, 'pw', options);
    clients.push(client);
    await client.imap.connect();
    await client.imap.mailboxOpen('INBOX');
    return client;
  }
  /**
   * The node the newest gateway IMAP session is on. A session being moved is on none for a moment
   * (on a busy machine a node that froze for some 400 ms drops its gateway sessions, which then
   * move): it is waited for, not taken for another session's node.
   */
  async function sessionNode(): Promise<string> {
    let on: string | undefined;
    await until('the newest session on a node', () => (on = gateway.frontSessions('imap').at(-1)) !== undefined, 10_000);
    return on!;
  }
  /** Stops a node (SIGKILL unless told) and starts a replacement in the background. */
  async function kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const node = nodes.get(id)!;
    const died = new Promise((resolve) => node.child.once('exit', resolve));
    node.child.kill(signal);
    await died;
    nodes.delete(id);
    const next = `in-${nextNode++}`;
    nodes.set(next, startNode(data, next));
  }
  /** Waits until at least two nodes take sessions (replacements start slowly). */
  async function twoNodes(): Promise<void> {
    await until('two nodes up', async () => {
      await gateway.directory.refresh();
      return gateway.directory.candidates('imap').length >= 2;
    }, 50_000).catch((error: Error) => {
      throw new Error(`${error.message}:\n${[...nodes.values()].map((n) => n.output).join('\n')}`);
    });
  }

  before(async () => {
    const config = testConfig(data, { gateway: { probeIntervalMs: 200, connectTimeoutMs: 1000 } });
    store = await openStore(config);
    await store.addDomain('example.com');
    for (const address of ['alice@example.com', 'bob@example.com', 'carol@example.com', 'dave@example.com', 'frank@example.com', 'gina@example.com']) await addUser(address);
    // Three, so a test that kills one finds two while the replacement starts.
    for (const id of ['in-1', 'in-2', 'in-3']) nodes.set(id, startNode(data, id));
    gateway = await startGateway(config, store, process.env.GW_LOG ? createLogger('info') : silentLogger(), { id: 'gw-imap', protocols: ['imap'] });
    port = gateway.port('imap');
    await twoNodes();
  });

  after(async () => {
    for (const client of clients) client.imap.close();
    await gateway.close();
    for (const node of nodes.values()) {
      if (node.child.exitCode === null && node.child.signalCode === null) {
        const exited = new Promise((resolve) => node.child.once('exit', resolve));
        node.child.kill('SIGKILL');
        await exited;
      }
    }
    await store.close();
  });

  it('logs in at the gateway over STARTTLS, does not offer COMPRESS, and refuses a wrong password', async () => {
    const client = await connect('alice@example.com', { autoIdle: false });
    assert.ok(client.imap.secureConnection, 'STARTTLS at the gateway');
    assert.ok(client.imap.capabilities.has('IDLE'));
    assert.ok(!client.imap.capabilities.has('COMPRESS=DEFLATE'), 'COMPRESS is not offered through the gateway');
    const list = await client.imap.fetchAll('1:*', { envelope: true });
    assert.equal(list[0]?.envelope?.subject, 'welcome');
    const moves = gatewayStats.imapFailovers;
    await client.imap.logout();
    await until('the gateway session ends', () => gateway.frontSessions('imap').length === 0);
    assert.equal(gatewayStats.imapFailovers, moves, 'a LOGOUT is not a failover');

    const wrong = new ImapFlow({ host: '127.0.0.1', port, secure: false, tls: { rejectUnauthorized: false }, auth: { user: 'alice@example.com', pass: 'nope' }, logger: false });
    wrong.on('error', () => undefined);
    await assert.rejects(wrong.connect(), (error: Error & { authenticationFailed?: boolean }) => error.authenticationFailed === true);
  });

  it('carries a client in IDLE over to another node when its node is killed', async () => {
    await twoNodes();
    const client = await connect('alice@example.com');
    await until('IDLE', () => client.idling);
    const victim = await sessionNode();
    const before = gatewayStats.imapFailovers;
    await kill(victim);
    await until('the session moved', () => gatewayStats.imapFailovers > before && gateway.frontSessions('imap').every((id) => id !== victim));
    await deliver('alice@example.com', 'after the crash', 'Delivered while the first node was dead.\r\n');
    await until('EXISTS through IDLE', () => client.seen.some((e) => e.kind === 'exists' && (e.value as { count: number }).count === 2));
    const fetched = await client.imap.fetchOne('2', { source: true });
    assert.ok(fetched && fetched.source?.toString().includes('Delivered while the first node was dead.'));
    await client.imap.noop();
    client.assertUntroubled();
    await client.imap.logout();
  });

  it('carries a client in IDLE over when its node stops gracefully (SIGTERM, a rolling restart)', async () => {
    await twoNodes();
    const client = await connect('dave@example.com');
    await until('IDLE', () => client.idling);
    const victim = await sessionNode();
    await kill(victim, 'SIGTERM');
    await until('the session moved', () => gateway.frontSessions('imap').every((id) => id !== undefined && id !== victim));
    await deliver('dave@example.com', 'after the restart');
    await until('EXISTS through IDLE', () => client.seen.some((e) => e.kind === 'exists' && (e.value as { count: number }).count === 2));
    const fetched = await client.imap.fetchOne('2', { envelope: true });
    assert.equal(fetched && fetched.envelope?.subject, 'after the restart');
    client.assertUntroubled();
    await client.imap.logout();
  });

  it('finishes a FETCH of a large message whose node was killed before answering, byte for byte', async () => {
    const body = `${'0123456789abcdef'.repeat(64)}\r\n`.repeat(3_000); // ~3 MB
    const uid = await deliver('bob@example.com', 'big one', body);
    const stored = (await store.getBlob((await store.listMessages(users.get('bob@example.com')!.inbox, { fromUid: uid, toUid: uid }))[0]!.blobHash))!;
    await twoNodes();
    const client = await connect('bob@example.com', { autoIdle: false });
    const victim = await sessionNode();
    const child = nodes.get(victim)!.child;
    child.kill('SIGSTOP'); // the FETCH reaches a node that will never answer it
    const fetching = client.imap.fetchOne(String(uid), { source: true }, { uid: true });
    await sleep(300);
    await kill(victim);
    const fetched = await fetching;
    assert.ok(fetched, 'the FETCH completed');
    assert.equal(fetched.source?.length, stored.length);
    assert.ok(fetched.source?.equals(stored), 'byte-exact body');
    await client.imap.noop();
    client.assertUntroubled();
    await client.imap.logout();
  });

  it('gives a client its large message whole when the node dies in the middle of sending it', async () => {
    await twoNodes();
    const body = `${'0123456789abcdefghijklmnopqrstuvwxyz'.repeat(2)}${'-'.repeat(6)}\r\n`.repeat(320_000); // ~25 MB
    const uid = await deliver('dave@example.com', 'very big one', body);
    const stored = (await store.getBlob((await store.listMessages(users.get('dave@example.com')!.inbox, { fromUid: uid, toUid: uid }))[0]!.blobHash))!;
    const client = await RawClient.open(port);
    const chunks: Buffer[] = [];
    let received = 0;
    client.socket.on('data', (chunk: string) => {
      chunks.push(Buffer.from(chunk, 'latin1'));
      received += chunk.length;
    });
    client.send('a LOGIN dave@example.com pw');
    await client.waitFor('a OK');
    client.send('b SELECT INBOX');
    await client.waitFor('b OK');
    const victim = await sessionNode();
    const resumed = gatewayStats.imapResumed;
    chunks.length = 0;
    client.send(`c UID FETCH ${uid} BODY.PEEK[]`);
    await until('the response started', () => received > 300_000);
    // The client stops reading: the rest backs up into the node, which dies with it unsent.
    client.socket.pause();
    await sleep(300);
    await kill(victim);
    client.socket.resume();
    await until('the FETCH completed', () => /\r\nc (OK|NO|BAD)[^\r]*\r\n$/.test(client.text.slice(-200)) || client.closed, 30_000);
    assert.equal(client.closed, false, 'the session goes on');
    const all = Buffer.concat(chunks);
    const head = /\* \d+ FETCH \([^\r]*BODY\[\] \{(\d+)\}\r\n/.exec(all.toString('latin1', 0, 400));
    assert.ok(head, 'a FETCH response with the body');
    const start = head.index + head[0].length;
    assert.equal(Number(head[1]), stored.length);
    assert.ok(all.subarray(start, start + stored.length).equals(stored), 'byte-exact body');
    assert.match(all.toString('latin1', start + stored.length), /^\)\r\nc OK/, 'one response, then the completion');
    // Whether the node died with part of it unsent depends on the kernel's buffers.
    console.log(`# large FETCH: ${gatewayStats.imapResumed > resumed ? 'finished from another node' : 'all of it was on its way before the node died'}`);
    client.send('d LOGOUT');
    await until('logged out', () => client.closed);
  });

  it('tells a client in IDLE what another session expunged, flagged and delivered during the outage', async () => {
    const address = 'carol@example.com';
    const box = users.get(address)!.inbox;
    const second = await deliver(address, 'second');
    const third = await deliver(address, 'third');
    await twoNodes();
    const client = await connect(address);
    await until('IDLE', () => client.idling);
    const victim = await sessionNode();
    nodes.get(victim)!.child.kill('SIGSTOP');
    await store.setFlags(box, [second], 'add', ['\\Deleted']);
    await store.expunge(box, [second]);
    await store.setFlags(box, [third], 'add', ['\\Flagged']);
    const fourth = await deliver(address, 'fourth');
    await kill(victim);
    await until('EXPUNGE and EXISTS', () => client.seen.some((e) => e.kind === 'expunge') && client.seen.some((e) => e.kind === 'exists'));
    const expunges = client.seen.filter((e) => e.kind === 'expunge').map((e) => (e.value as { seq: number }).seq);
    assert.deepEqual(expunges, [2], 'message 2 (the second) expunged');
    const exists = client.seen.filter((e) => e.kind === 'exists').map((e) => (e.value as { count: number }).count);
    assert.equal(exists.at(-1), 3);
    // The client's view now matches the store, numbers and flags.
    const view = await client.imap.fetchAll('1:*', { uid: true, flags: true });
    assert.deepEqual(view.map((m) => m.uid), await store.listUids(box));
    assert.deepEqual(view.map((m) => m.uid), [view[0]!.uid, third, fourth]);
    assert.ok(view[1]!.flags?.has('\\Flagged'), 'the flag set meanwhile');
    client.assertUntroubled();
    await client.imap.logout();
  });

  it('moves an idle session off a drained node; the client keeps working', async () => {
    await twoNodes();
    const client = await connect('alice@example.com');
    await until('IDLE', () => client.idling);
    const drained = await sessionNode();
    const imapConnections = async (id: string) => (await store.listMembers()).find((m) => m.id === id)?.load.connections.imap ?? -1;
    await until('the node counts the session', async () => (await imapConnections(drained)) >= 1);
    const migrations = gatewayStats.imapMigrations;
    // What `quill drain NODE` does (src/cli/cluster-commands.ts).
    assert.ok(await store.requestMemberState(drained, 'draining'));
    await until('the session moved', () => gatewayStats.imapMigrations > migrations && gateway.frontSessions('imap').every((id) => id !== drained));
    // The node's own heartbeat (what `quill status --json` shows) counts no IMAP connection.
    await until('the drained node has no IMAP connection', async () => (await imapConnections(drained)) === 0);
    await until('IDLE again', () => client.idling);
    const count = client.imap.mailbox && typeof client.imap.mailbox === 'object' ? client.imap.mailbox.exists : 0;
    await deliver('alice@example.com', 'after the drain');
    await until('EXISTS on the new node', () => client.seen.some((e) => e.kind === 'exists' && (e.value as { count: number }).count === count + 1));
    const fetched = await client.imap.fetchOne('*', { envelope: true });
    assert.equal(fetched && fetched.envelope?.subject, 'after the drain');
    client.assertUntroubled();
    await client.imap.logout();
    await store.requestMemberState(drained, 'active');
  });

  /** Drains the node under the newest session until the session moved, then undrains it. */
  async function moveByDrain(): Promise<void> {
    const drained = await sessionNode();
    const migrations = gatewayStats.imapMigrations;
    assert.ok(await store.requestMemberState(drained, 'draining'));
    await until('the session moved', () => gatewayStats.imapMigrations > migrations && gateway.frontSessions('imap').every((id) => id !== drained));
    await store.requestMemberState(drained, 'active');
  }

  it('tells a client moved between commands what was expunged, at its next command', async () => {
    await twoNodes();
    const address = 'frank@example.com';
    const box = users.get(address)!.inbox;
    const second = await deliver(address, 'second');
    const third = await deliver(address, 'third');
    const client = await connect(address, { autoIdle: false });
    await store.setFlags(box, [second], 'add', ['\\Deleted']);
    await store.expunge(box, [second]); // the client is not told: it sends no command
    await moveByDrain();
    assert.equal(client.seen.length, 0, 'no EXPUNGE while no command is in progress (RFC 3501 7.4.1)');
    await client.imap.noop();
    assert.deepEqual(client.seen.map((e) => [e.kind, (e.value as { seq?: number }).seq]), [['expunge', 2]]);
    const view = await client.imap.fetchAll('1:*', { uid: true });
    assert.deepEqual(view.map((m) => m.uid), [view[0]!.uid, third]);
    client.assertUntroubled();
    await client.imap.logout();
  });

  it('says BYE to a client moved between commands whose next command names expunged-over sequence numbers', async () => {
    await twoNodes();
    const address = 'gina@example.com';
    const box = users.get(address)!.inbox;
    const [first] = await store.listUids(box);
    await deliver(address, 'second');
    const client = await RawClient.open(port);
    client.send('a LOGIN gina@example.com pw');
    await client.waitFor('a OK');
    client.send('b SELECT INBOX');
    await client.waitFor('b OK');
    await store.setFlags(box, [first!], 'add', ['\\Deleted']);
    await store.expunge(box, [first!]);
    await moveByDrain();
    client.send('c FETCH 2 (FLAGS)'); // "2" meant the second message; it is the first now
    await until('the session ends', () => client.closed);
    assert.match(client.text, /\* BYE \[UNAVAILABLE\]/);
    assert.doesNotMatch(client.text, /c OK/);
  });
});

/**
 * A node that speaks just enough IMAP to be scripted: the gateway takes it for a real one (it
 * beats in the membership and answers /healthz), and a test decides when a connection dies.
 */
class ScriptedNode {
  readonly imap = net.createServer((socket) => this.serve(socket));
  readonly health = http.createServer((_req, res) => res.end('{"ok":true}'));
  membership: Membership | undefined;

  constructor(
    readonly id: string,
    private readonly script: (tag: string, line: string, socket: net.Socket) => boolean,
  ) {}

  async start(store: Store): Promise<void> {
    const listen = (server: net.Server | http.Server) =>
      new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
    const addresses = { imap: `127.0.0.1:${await listen(this.imap)}`, http: `127.0.0.1:${await listen(this.health)}` };
    this.membership = new Membership(store, { id: this.id, kind: 'node', version: 'test', addresses }, () => ({ imap: 0 }), silentLogger());
    await this.membership.start();
  }

  async stop(): Promise<void> {
    await this.membership?.stop();
    this.imap.close();
    this.health.close();
  }

  private serve(socket: net.Socket): void {
    socket.on('error', () => undefined);
    let buffer = '';
    let proxied = false;
    let skip = 0;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (;;) {
        if (skip > 0) {
          const take = Math.min(skip, buffer.length);
          buffer = buffer.slice(take);
          skip -= take;
          if (skip > 0) return;
        }
        const end = buffer.indexOf('\r\n');
        if (end < 0) return;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!proxied) {
          proxied = true;
          socket.write('* OK scripted node ready\r\n');
          continue;
        }
        const literal = /\{(\d+)\+\}$/.exec(line);
        if (literal) skip = Number(literal[1]);
        const tag = line.slice(0, line.indexOf(' '));
        if (!this.script(tag, line, socket)) this.answer(tag, line, socket);
      }
    });
  }

  /** What a healthy node says. */
  private answer(tag: string, line: string, socket: net.Socket): void {
    const verb = line.split(' ')[1]?.toUpperCase();
    if (verb === 'XQUILL-LOGIN') socket.write(`${tag} OK [CAPABILITY IMAP4rev1 IDLE ENABLE COMPRESS=DEFLATE] logged in\r\n`);
    else if (verb === 'SELECT' || verb === 'EXAMINE') {
      socket.write(`* 1 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\n* OK [UIDNEXT 2] ok\r\n* OK [HIGHESTMODSEQ 5] ok\r\n${tag} OK [READ-WRITE] done\r\n`);
    } else if (verb === 'UID' && /FETCH 1:\* \(UID\)/i.test(line)) socket.write(`* 1 FETCH (UID 1)\r\n${tag} OK done\r\n`);
    else if (verb === 'LOGOUT') socket.end(`* BYE bye\r\n${tag} OK done\r\n`);
    else socket.write(`${tag} OK ${verb} done\r\n`);
  }
}

/** A raw IMAP client: send lines, wait for text. */
class RawClient {
  text = '';
  closed = false;
  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (this.text += chunk));
    socket.on('close', () => (this.closed = true));
  }
  static async open(port: number): Promise<RawClient> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise((resolve) => socket.once('connect', resolve));
    const client = new RawClient(socket);
    await client.waitFor('* OK');
    return client;
  }
  waitFor(text: string | RegExp): Promise<void> {
    return until(`${text}`, () => (typeof text === 'string' ? this.text.includes(text) : text.test(this.text)) || this.closed, 10_000);
  }
  send(line: string): void {
    this.socket.write(`${line}\r\n`);
  }
}

describe('IMAP through the gateway, against scripted nodes', () => {
  const data = tempDir('quill-gw-imap-scripted-');
  let store: Store;
  let gateway: RunningGateway;
  let hungNoop: net.Socket | undefined;
  // A message whose every byte depends on its position, so a wrong splice shows.
  const content = Buffer.from(Array.from({ length: 1_000_000 }, (_, i) => 97 + ((i * 7 + (i >> 10)) % 26)));
  const prefix = '* 1 FETCH (UID 1 BODY[] {1000000}\r\n';
  /** How the next FETCH is answered: cut after 400 KB, whole, or whole but not the same response. */
  let fetchPlan: ('cut' | 'cut-later' | 'whole' | 'other')[] = [];
  // The first NOOP hangs (a slow node); any command arriving behind it kills that connection.
  // A FETCH gets the start of a big response and then a dead connection; so does an APPEND.
  const script = (tag: string, line: string, socket: net.Socket): boolean => {
    const verb = line.split(' ')[1]?.toUpperCase();
    if (verb === 'NOOP' && tag === 'slow' && !hungNoop) {
      hungNoop = socket;
      return true;
    }
    if (socket === hungNoop && verb !== 'NOOP') {
      socket.destroy();
      return true;
    }
    if (verb === 'UID' && /FETCH \S+ BODY\[\]/i.test(line)) {
      const plan = fetchPlan.shift() ?? 'whole';
      if (plan === 'cut' || plan === 'cut-later') {
        // 'cut-later': further in, and late enough for the gateway to trust the other node again.
        socket.write(Buffer.concat([Buffer.from(prefix), content.subarray(0, plan === 'cut' ? 400_000 : 700_000)]));
        setTimeout(() => socket.destroy(), plan === 'cut' ? 100 : 800);
      } else {
        const head = plan === 'whole' ? prefix : prefix.replace('(UID 1 ', '(UID 1 FLAGS (\\Seen) ');
        socket.write(Buffer.concat([Buffer.from(head), content, Buffer.from(`)\r\n${tag} OK FETCH done\r\n`)]));
      }
      return true;
    }
    if (verb === 'APPEND') {
      socket.destroy();
      return true;
    }
    return false;
  };
  const fakes = [new ScriptedNode('fake-a', script), new ScriptedNode('fake-b', script)];

  before(async () => {
    const config = testConfig(data, { gateway: { probeIntervalMs: 200, connectTimeoutMs: 1000 } });
    store = await openStore(config);
    await store.addDomain('example.com');
    await store.addUser({ address: 'erin@example.com', passwordHash: await hashPassword('pw') });
    for (const fake of fakes) await fake.start(store);
    gateway = await startGateway(config, store, silentLogger(), { id: 'gw-imap-scripted', protocols: ['imap'] });
    await until('the scripted nodes', async () => {
      await gateway.directory.refresh();
      return gateway.directory.candidates('imap').length === 2;
    });
  });

  after(async () => {
    await gateway.close();
    for (const fake of fakes) await fake.stop();
    await store.close();
  });

  async function loggedIn(): Promise<RawClient> {
    await until('both scripted nodes healthy', async () => {
      await gateway.directory.refresh();
      return gateway.directory.candidates('imap').length === 2;
    });
    const client = await RawClient.open(gateway.port('imap'));
    client.send('a LOGIN erin@example.com pw');
    await client.waitFor(/a OK[^\r]*\r\n/);
    return client;
  }

  it('hides COMPRESS in the capabilities the node sends', async () => {
    const client = await loggedIn();
    assert.match(client.text, /a OK \[CAPABILITY IMAP4rev1 IDLE ENABLE\] logged in/);
    client.send('b CAPABILITY');
    await client.waitFor('b OK');
    assert.doesNotMatch(client.text, /COMPRESS/);
    client.send('c COMPRESS DEFLATE');
    await client.waitFor('c NO');
    client.socket.destroy();
  });

  it('speaks the not-authenticated state itself: AUTHENTICATE PLAIN with a continuation, refusals', async () => {
    const client = await RawClient.open(gateway.port('imap'));
    assert.match(client.text, /^\* OK \[CAPABILITY IMAP4rev1 [^\]]*AUTH=PLAIN[^\]]*\]/);
    client.send('a SELECT INBOX');
    await client.waitFor('a BAD');
    client.send('b AUTHENTICATE PLAIN');
    await client.waitFor('+ ');
    client.send('*');
    await client.waitFor('b BAD');
    client.send('c AUTHENTICATE PLAIN');
    await until('the second continuation', () => client.text.split('+ ').length === 3);
    client.send(Buffer.from('\0erin@example.com\0wrong').toString('base64'));
    await client.waitFor('c NO [AUTHENTICATIONFAILED]');
    client.send('d AUTHENTICATE PLAIN');
    await until('the third continuation', () => client.text.split('+ ').length === 4);
    client.send(Buffer.from('\0erin@example.com\0pw').toString('base64'));
    await client.waitFor(/d OK \[CAPABILITY [^\]]*\] logged in/);
    client.send('e NOOP');
    await client.waitFor('e OK');
    client.send('f LOGOUT');
    await until('logged out', () => client.closed);
    assert.match(client.text, /\* BYE [^\r]*\r\nf OK/);
  });

  it('finishes a response its node died in the middle of from another node, byte-exact', async () => {
    const client = await loggedIn();
    client.send('b SELECT INBOX');
    await client.waitFor('b OK');
    fetchPlan = ['cut', 'whole'];
    const resumed = gatewayStats.imapResumed;
    client.send('c UID FETCH 1 BODY[]');
    await client.waitFor(/c (OK|NO|BAD)[^\r]*\r\n/);
    const at = client.text.indexOf(prefix);
    assert.ok(at > 0, 'the response came');
    const response = client.text.slice(at);
    const expected = `${prefix}${content.toString('latin1')})\r\nc OK FETCH done\r\n`;
    if (response !== expected) {
      let i = 0;
      while (response[i] === expected[i]) i++;
      assert.fail(`differs at ${i} of ${expected.length} (got ${response.length}): ${JSON.stringify(response.slice(i - 20, i + 40))} vs ${JSON.stringify(expected.slice(i - 20, i + 40))}`);
    }
    assert.equal(gatewayStats.imapResumed, resumed + 1);
    client.send('d LOGOUT');
    await until('logged out', () => client.closed);
  });

  it('finishes a cut response even when the node finishing it dies too', async () => {
    const client = await loggedIn();
    client.send('b SELECT INBOX');
    await client.waitFor('b OK');
    fetchPlan = ['cut', 'cut-later', 'whole'];
    const resumed = gatewayStats.imapResumed;
    client.send('c UID FETCH 1 BODY[]');
    await client.waitFor(/c (OK|NO|BAD)[^\r]*\r\n/);
    const at = client.text.indexOf(prefix);
    assert.ok(at > 0 && !client.closed, 'the response came and the session goes on');
    assert.ok(client.text.slice(at) === `${prefix}${content.toString('latin1')})\r\nc OK FETCH done\r\n`, 'once, whole and byte-exact');
    assert.equal(gatewayStats.imapResumed, resumed + 1);
    client.socket.destroy();
  });

  it('ends the session without a word when the rest of a cut response cannot be had again', async () => {
    const client = await loggedIn();
    client.send('b SELECT INBOX');
    await client.waitFor('b OK');
    fetchPlan = ['cut', 'other'];
    client.send('c UID FETCH 1 BODY[]');
    await until('the session ends', () => client.closed);
    assert.ok(client.text.length > 400_000, 'the start of the response arrived');
    assert.doesNotMatch(client.text.slice(-2000), /BYE|c OK/, 'nothing inside the cut literal, no completion');
    assert.ok(client.text.length < prefix.length + 1_000_000, 'nothing of the other response');
  });

  it('says BYE when the node dies during an APPEND, whose outcome is unknown', async () => {
    const client = await loggedIn();
    client.send('b APPEND INBOX {5}');
    await client.waitFor('+ ');
    client.send('hello');
    await until('the session ends', () => client.closed);
    assert.match(client.text, /\* BYE \[UNAVAILABLE\] [^\r]*outcome is unknown/);
    assert.doesNotMatch(client.text, /b OK/);
  });

  it('replays a safe pending command on another node and refuses the unsafe one behind it as not done', async () => {
    const client = await loggedIn();
    client.send('slow NOOP');
    await until('the NOOP hangs on a node', () => hungNoop !== undefined);
    client.send('f CREATE Archive');
    await client.waitFor(/f (OK|NO|BAD)[^\r]*\r\n/);
    assert.match(client.text, /slow OK NOOP done\r\n/, 'the NOOP was replayed on the other node');
    assert.match(client.text, /f NO \[UNAVAILABLE\] CREATE was not carried out/);
    assert.ok(client.text.indexOf('slow OK') < client.text.indexOf('f NO'), 'in order');
    client.send('g LOGOUT');
    await until('logged out', () => client.closed);
    assert.match(client.text, /g OK/);
  });
});

describe('IMAP through the gateway, against a lone scripted node', () => {
  const data = tempDir('quill-gw-imap-lone-');
  let store: Store;
  let gateway: RunningGateway;
  /**
   * 'fence': the first DONE finds the node just thawed from a freeze: it drops the link unread
   * (src/cluster/freeze.ts). 'drop': the link is dropped 100 ms after the IDLE's "+", and the
   * next connection's SELECT (the gateway's rebuild) is answered 400 ms late, so the client's DONE
   * comes while its session is being moved.
   */
  let plan: 'fence' | 'drop' = 'fence';
  let dropped: net.Socket | undefined;
  const idling = new Map<net.Socket, string>();
  const script = (tag: string, line: string, socket: net.Socket): boolean => {
    if (socket === dropped) return true;
    if (/^\S+ IDLE$/i.test(line)) {
      idling.set(socket, tag);
      socket.write('+ idling\r\n');
      if (plan === 'drop' && !dropped) {
        dropped = socket;
        setTimeout(() => socket.destroy(), 100);
      }
      return true;
    }
    if (line.toUpperCase() === 'DONE') {
      if (plan === 'fence' && !dropped) {
        dropped = socket;
        socket.destroy();
      } else socket.write(`${idling.get(socket)} OK IDLE terminated\r\n`);
      return true;
    }
    if (plan === 'drop' && dropped && /^\S+ (SELECT |UID FETCH 1:\* \(UID\))/i.test(line)) {
      // The listing the gateway sends along with the SELECT is answered after it, as a node does.
      const answer = /SELECT/i.test(line) ? '* 1 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\n* OK [UIDNEXT 2] ok\r\n* OK [HIGHESTMODSEQ 5] ok\r\n' : '* 1 FETCH (UID 1)\r\n';
      setTimeout(() => socket.write(`${answer}${tag} OK done\r\n`), 400);
      return true;
    }
    return false;
  };
  const node = new ScriptedNode('lone-a', script);

  before(async () => {
    const config = testConfig(data, { gateway: { probeIntervalMs: 200, connectTimeoutMs: 1000 } });
    store = await openStore(config);
    await store.addDomain('example.com');
    await store.addUser({ address: 'erin@example.com', passwordHash: await hashPassword('pw') });
    await node.start(store);
    gateway = await startGateway(config, store, silentLogger(), { id: 'gw-imap-lone', protocols: ['imap'] });
  });

  after(async () => {
    await gateway.close();
    await node.stop();
    await store.close();
  });

  /** A client in IDLE on the node, its mailbox selected. */
  async function idleClient(): Promise<RawClient> {
    await until('the scripted node listed', async () => {
      await gateway.directory.refresh();
      return gateway.directory.candidates('imap').length === 1;
    });
    const client = await RawClient.open(gateway.port('imap'));
    client.send('a LOGIN erin@example.com pw');
    await client.waitFor(/a OK[^\r]*\r\n/);
    client.send('b SELECT INBOX');
    await client.waitFor(/b OK[^\r]*\r\n/);
    client.send('i IDLE');
    await client.waitFor('+ idling\r\n');
    return client;
  }

  /** The IDLE's OK, then the FETCH's, and the session goes on. */
  async function assertCarriedOn(client: RawClient): Promise<void> {
    await client.waitFor(/x (OK|NO|BAD)[^\r]*\r\n/);
    assert.ok(dropped, 'the node dropped the link');
    assert.doesNotMatch(client.text, /\* BYE/);
    assert.match(client.text, /i OK IDLE terminated\r\n/);
    assert.match(client.text, /x OK FETCH done\r\n/);
    assert.ok(client.text.indexOf('i OK') < client.text.indexOf('x OK'), 'in order');
    assert.equal(client.text.split('+ idling').length, 2, 'one "+" for one IDLE');
    client.send('z LOGOUT');
    await until('logged out', () => client.closed);
    assert.match(client.text, /z OK/);
  }

  it('carries a session whose only node dropped its link (alive, fenced after a freeze) back to that node', async () => {
    plan = 'fence';
    dropped = undefined;
    const client = await idleClient();
    // As imapflow does: DONE and the next command at once, without waiting for the IDLE's OK.
    client.socket.write('DONE\r\nx FETCH 1 (UID)\r\n');
    await assertCarriedOn(client);
  });

  it("ends a client's IDLE whose DONE and next command came while the session moved", async () => {
    plan = 'drop';
    dropped = undefined;
    const client = await idleClient();
    await until('the link dropped', () => dropped?.destroyed === true);
    client.socket.write('DONE\r\nx FETCH 1 (UID)\r\n');
    await assertCarriedOn(client);
  });
});
