// imap.processes (src/imap/processes.ts): `quill start` hands IMAP connections to child processes
// sharing the SQLite file. Through real sockets: sessions in different children see each other's
// changes (IDLE wakes for an SMTP delivery made in the server process and for a flag change made
// in the other child), the login throttle counts failures across children, and a killed child is
// started again while the other's sessions and new connections carry on.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestServer, type TestServer } from './helpers.js';
import { LineClient, THROTTLED, tryLogin } from './security/auth-kit.js';

async function loggedIn(port: number, from: string, user: string, password: string): Promise<LineClient> {
  const client = await LineClient.connect(port, from);
  assert.match(await client.line(), /^\* OK/);
  assert.match(await client.command(`a LOGIN "${user}" "${password}"`, /^a /), /^a OK/);
  return client;
}

async function waitFor(what: string, done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await sleep(50);
  assert.ok(done(), what);
}

describe('IMAP sessions in child processes (imap.processes: 2)', () => {
  let server: TestServer;
  let imap: number;
  const connections = () => server.services.get('imap')!.connections!();
  const pids = () => server.services.get('imap')!.processIds!();

  before(async () => {
    server = await startTestServer({ overrides: { imap: { processes: 2 }, outbound: { enabled: false } } });
    imap = server.port('imap');
    await server.addUser('erin@example.com', 'erin-pw');
    await server.addUser('bob@example.com', 'bob-pw');
  });
  after(() => server.stop());

  it('runs the sessions in two child processes', () => {
    const running = pids();
    assert.equal(running.length, 2);
    assert.ok(!running.includes(process.pid));
  });

  it('wakes IDLE in one child for an SMTP delivery and for a flag change made in the other child', async () => {
    await waitFor('no connections left', () => connections() === 0);
    // The child with the fewest connections gets the next one: these two land in different children.
    const idler = await loggedIn(imap, '127.0.0.2', 'erin@example.com', 'erin-pw');
    const other = await loggedIn(imap, '127.0.0.3', 'erin@example.com', 'erin-pw');
    try {
      await idler.command('s SELECT INBOX', /^s OK/);
      await other.command('s SELECT INBOX', /^s OK/);
      idler.send('i IDLE');
      assert.equal(await idler.line(), '+ idling');

      const smtp = await LineClient.connect(server.port('smtp'), '127.0.0.4');
      await smtp.line();
      await smtp.command('EHLO sender.test', /^250 /);
      await smtp.command('MAIL FROM:<sender@sender.test>', /^250 /);
      await smtp.command('RCPT TO:<erin@example.com>', /^250 /);
      await smtp.command('DATA', /^354 /);
      assert.match(await smtp.command('Subject: across processes\r\n\r\nhello\r\n.', /^\d{3} /), /^250 /);
      smtp.close();
      assert.equal(await idler.until(/EXISTS$/), '* 1 EXISTS');

      assert.match(await other.command('n NOOP', /^n /), /^n OK/);
      assert.match(await other.command('f STORE 1 +FLAGS (\\Flagged)', /^f /), /^f OK/);
      assert.match(await idler.until(/^\* 1 FETCH/), /\\Flagged/);
      idler.send('DONE');
      assert.match(await idler.until(/^i /), /^i OK/);
    } finally {
      idler.close();
      other.close();
    }
  });

  it("answers a command with what the other child's session was told OK for, without waiting for word of it", async () => {
    await waitFor('no connections left', () => connections() === 0);
    const reader = await loggedIn(imap, '127.0.0.2', 'erin@example.com', 'erin-pw');
    const writer = await loggedIn(imap, '127.0.0.3', 'erin@example.com', 'erin-pw');
    try {
      await reader.command('s SELECT INBOX', /^s OK/);
      await writer.command('s SELECT INBOX', /^s OK/);
      // Message 1 came by SMTP in the test above. As imaptest's scripted groups do: the writer's OK, then at once a command on the reader.
      for (let round = 0; round < 10; round++) {
        const flag = round % 2 === 0 ? '\\Answered' : '\\Draft';
        assert.match(await writer.command(`w STORE 1 FLAGS (${flag})`, /^w /), /^w OK/);
        reader.send('n NOOP');
        const lines: string[] = [];
        for (let line = await reader.line(); !line.startsWith('n '); line = await reader.line()) lines.push(line);
        assert.ok(lines.some((line) => line.startsWith('* 1 FETCH') && line.includes(flag)), `round ${round}: ${lines.join(' | ')}`);
      }
    } finally {
      reader.close();
      writer.close();
    }
  });

  it('throttles a guesser whose connections go to different children', async () => {
    const replies: string[] = [];
    for (let i = 0; i < 14; i++) replies.push(await tryLogin('imap', imap, '127.0.0.5', 'bob@example.com', `guess-${i}`));
    // Counted in one place: guesses past the limit are refused as throttled, whichever child took them.
    assert.ok(replies.slice(-3).every((reply) => THROTTLED.imap.test(reply)), replies.join(' | '));
    assert.match(await tryLogin('imap', imap, '127.0.0.5', 'bob@example.com', 'bob-pw'), THROTTLED.imap);
    assert.match(await tryLogin('imap', imap, '127.0.0.6', 'bob@example.com', 'bob-pw'), /^a OK/);
  });

  it('starts a killed child again; the other child keeps its sessions and new connections work', async () => {
    await waitFor('no connections left', () => connections() === 0);
    const first = await loggedIn(imap, '127.0.0.2', 'erin@example.com', 'erin-pw');
    const second = await loggedIn(imap, '127.0.0.3', 'erin@example.com', 'erin-pw');
    const before = pids();
    process.kill(before[0]!, 'SIGKILL');
    try {
      // One of the two sessions was in the killed child: it ends; the other answers.
      await waitFor('a session ended with its child', () => first.closed || second.closed);
      const survivor = first.closed ? second : first;
      assert.ok(!(first.closed && second.closed));
      assert.match(await survivor.command('n NOOP', /^n /), /^n OK/);
      await waitFor('the child was started again', () => pids().length === 2 && !pids().includes(before[0]!));
      for (const from of ['127.0.0.7', '127.0.0.8']) {
        const fresh = await loggedIn(imap, from, 'erin@example.com', 'erin-pw');
        assert.match(await fresh.command('s SELECT INBOX', /^s /), /^s OK/);
        fresh.close();
      }
    } finally {
      first.close();
      second.close();
    }
  });
});
