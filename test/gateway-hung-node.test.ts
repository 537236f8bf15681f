// A node that hangs instead of dying (issue 5): SIGSTOP keeps its connections open, so the gateway
// never sees them close. Once its heartbeats stop and it fails its probe, the gateway cuts its
// connections, and the sessions on it move as if it had died: an IMAP session idling on it sees
// new mail from the other node, a fetch answers, an SMTP delivery started while it hangs is
// stored once, and an APPEND it was sent is not carried out behind the client's back when it
// runs again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { TestCluster } from './cluster-kit.js';

/** Far longer than detection takes, far shorter than any client's own timeout. */
const ANSWER_WITHIN_MS = 20_000;
/**
 * The longest a client may wait on the hung node: hang detection on the session links
 * (gateway.hangDetectMs, 300 ms to notice, 300 ms for the probe) then the move. The bound
 * is 1 s; the suite allows some more for a loaded machine (bench/chaos-cluster.ts measures it).
 */
const STALL_LIMIT_MS = 2_000;

function imapClient(port: number): ImapFlow {
  return new ImapFlow({ host: '127.0.0.1', port, secure: false, tls: { rejectUnauthorized: false }, auth: { user: 'bob@example.com', pass: 'pw' }, logger: false });
}

function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ANSWER_WITHIN_MS} ms`)), ANSWER_WITHIN_MS)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe('a hung node behind the gateway', () => {
  // One node first, so that the IMAP sessions are on it; the second joins before it hangs.
  const cluster = new TestCluster(['h-1'], ['smtp', 'imap']);
  let stopped = false;

  before(() => cluster.start());
  after(async () => {
    if (stopped) cluster.nodes.get('h-1')?.kill('SIGCONT');
    await cluster.close();
  });

  it('moves the sessions on a SIGSTOPped node and delivers what was sent to it once', async () => {
    const port = cluster.gateway.port('imap');
    const idler = imapClient(port);
    const reader = imapClient(port);
    const appender = imapClient(port);
    const idlerErrors: string[] = [];
    idler.on('error', (error: Error) => idlerErrors.push(error.message));
    appender.on('error', () => undefined);
    await idler.connect();
    await reader.connect();
    await appender.connect();
    await idler.mailboxOpen('INBOX');
    await reader.mailboxOpen('INBOX');
    assert.equal(idler.mailbox && idler.mailbox.exists, 0);
    // imapflow idles on its own between commands (RFC 2177): the new message arrives as EXISTS.
    const sawNewMail = new Promise<number>((resolve) => idler.on('exists', (update: { count: number }) => resolve(update.count)));
    await sleep(300);

    cluster.startNode('h-2');
    await cluster.waitForNode('h-2', true);
    // One delivery straight to the new node first: what is measured below is the stall the hung
    // node causes, not the new node's first SMTP transaction (its modules loaded on first use).
    const h2 = await cluster.nodeAddress('h-2', 'smtp');
    const warmStarted = Date.now();
    await within(
      nodemailer.createTransport({ host: h2.host, port: h2.port, secure: false, ignoreTLS: true, localAddress: '127.0.0.2' } as Parameters<typeof nodemailer.createTransport>[0]).sendMail({ from: 'alice@example.com', to: 'pop0@example.com', subject: 'warm-up', text: 'first delivery on h-2' }),
      'the first delivery on h-2',
    );
    console.log(`# first SMTP delivery on the new node: ${Date.now() - warmStarted} ms`);
    const hung = cluster.nodes.get('h-1')!;
    hung.kill('SIGSTOP');
    stopped = true;
    const stoppedAt = Date.now();
    // An APPEND sent now sits unread in the hung node's socket buffer. Its outcome is unknown to
    // the gateway, which does not repeat it: the client hears so (BYE [UNAVAILABLE]) and may
    // check and send it again. When the hung node runs again it must not carry it out late,
    // behind the client's back (src/cluster/freeze.ts).
    const appendOutcome = appender.append('INBOX', 'From: carol@example.com\r\nTo: bob@example.com\r\nSubject: hung-2\r\n\r\nappended while a node hangs\r\n').then(
      () => 'stored',
      (error: Error) => error.message,
    );

    // A delivery now: through the gateway, whichever node it lands on first.
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: cluster.gateway.port('smtp'), secure: false, ignoreTLS: true });
    const smtpStarted = Date.now();
    const sent = await within(
      transport.sendMail({ from: 'alice@example.com', to: 'bob@example.com', subject: 'hung-1', text: 'sent while a node hangs' }),
      'SMTP delivery',
    );
    assert.match(sent.response, /^250/);
    const smtpStall = Date.now() - smtpStarted;

    // A session on the hung node answers commands again: a NOOP (which brings the news), then a
    // fetch of the new message.
    const noopStarted = Date.now();
    await within(reader.noop(), 'NOOP');
    const noopStall = Date.now() - noopStarted;
    const newest = await within(reader.fetchOne('*', { envelope: true }), 'FETCH');
    assert.equal(newest && newest.envelope?.subject, 'hung-1');
    console.log(`# hung node: a session on it answered again ${Date.now() - stoppedAt} ms after SIGSTOP; SMTP delivery took ${smtpStall} ms, the NOOP on the hung node ${noopStall} ms`);
    assert.ok(smtpStall < STALL_LIMIT_MS, `SMTP delivery stalled ${smtpStall} ms`);
    assert.ok(noopStall < STALL_LIMIT_MS, `NOOP stalled ${noopStall} ms`);
    // The one idling there learns of the message too (once imapflow idles again on the new node).
    assert.equal(await within(sawNewMail, 'EXISTS on the idling session'), 1);
    assert.deepEqual(idlerErrors, [], 'the idling session saw no error');
    assert.notEqual(await within(appendOutcome, 'the APPEND'), 'stored', 'an APPEND whose outcome is unknown is not reported done');

    // The node wakes up: it must not store the message a second time, and the sessions stay where they are.
    hung.kill('SIGCONT');
    stopped = false;
    await sleep(1500);
    await cluster.checkStoredOnce(['hung-1'], /\r\nSubject: (hung-\d+)\r\n/);
    const stored = await cluster.storedSubjects('bob@example.com', /\r\nSubject: (hung-\d+)\r\n/);
    assert.equal(stored.get('hung-2'), undefined, 'the thawed node did not carry out the APPEND it had been sent');
    await reader.noop();
    assert.equal(reader.mailbox && reader.mailbox.exists, 1);
    await idler.logout();
    await reader.logout();
  });
});
