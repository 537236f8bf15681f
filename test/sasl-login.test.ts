// SASL LOGIN (draft-murchison-sasl-login) next to PLAIN in IMAP AUTHENTICATE and POP3 AUTH, as
// Outlook and many devices use it: curl with --login-options AUTH=LOGIN, Python's imaplib, and the
// raw exchange (prompts "Username:" / "Password:" in base64, "*" cancels).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startTestServer, type TestServer } from './helpers.js';

const run = promisify(execFile);
const USER = 'alice@example.com';
const PASS = 'login secret';
const b64 = (text: string): string => Buffer.from(text).toString('base64');

/** A line-at-a-time conversation: each step sends a line and returns the next line the server sends. */
async function converse(port: number, lines: string[]): Promise<string[]> {
  const socket = connect(port, '127.0.0.1');
  let buffer = '';
  const waiting: ((line: string) => void)[] = [];
  const queue: string[] = [];
  socket.on('data', (chunk) => {
    buffer += chunk.toString('utf8');
    for (let nl = buffer.indexOf('\r\n'); nl >= 0; nl = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      const next = waiting.shift();
      if (next) next(line);
      else queue.push(line);
    }
  });
  const readLine = (): Promise<string> => (queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((resolve) => waiting.push(resolve)));
  const out = [await readLine()];
  try {
    for (const line of lines) {
      socket.write(`${line}\r\n`);
      let reply = await readLine();
      // IMAP: untagged lines before the one that answers.
      while (reply.startsWith('* ')) reply = await readLine();
      out.push(reply);
    }
  } finally {
    socket.destroy();
  }
  return out;
}

describe('SASL LOGIN in IMAP and POP3', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
    const userId = await server.addUser(USER, PASS);
    await server.store.deliver(Buffer.from('Subject: hello\r\n\r\nhi\r\n'), [{ userId }]);
  });
  after(() => server.stop());

  it('IMAP advertises AUTH=LOGIN and runs the exchange, with SASL-IR and with a cancel', async () => {
    const port = server.port('imap');
    const [greeting, ...replies] = await converse(port, ['a AUTHENTICATE LOGIN', b64(USER), b64(PASS)]);
    assert.match(greeting!, /AUTH=PLAIN AUTH=LOGIN/);
    assert.deepEqual(replies.slice(0, 2), ['+ VXNlcm5hbWU6', '+ UGFzc3dvcmQ6']);
    assert.match(replies[2]!, /^a OK \[CAPABILITY .*\] logged in/);
    const withInitial = await converse(port, [`b AUTHENTICATE LOGIN ${b64(USER)}`, b64(PASS)]);
    assert.equal(withInitial[1], '+ UGFzc3dvcmQ6');
    assert.match(withInitial[2]!, /^b OK /);
    const cancelled = await converse(port, ['c AUTHENTICATE LOGIN', '*']);
    assert.match(cancelled[2]!, /^c BAD .*cancelled/);
    const wrong = await converse(port, ['d AUTHENTICATE LOGIN', b64(USER), b64('wrong')]);
    assert.match(wrong[3]!, /^d NO \[AUTHENTICATIONFAILED\]/);
  });

  it('curl logs in to IMAP with --login-options AUTH=LOGIN and lists INBOX', async () => {
    const { stdout } = await run('curl', ['-sS', '--max-time', '20', '--login-options', 'AUTH=LOGIN', '-u', `${USER}:${PASS}`, `imap://127.0.0.1:${server.port('imap')}/INBOX?ALL`], { timeout: 30_000 });
    assert.match(stdout, /^\* SEARCH 1\r?$/m);
  });

  it("Python imaplib's authenticate('LOGIN') logs in", async () => {
    const script = `
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
answers = iter([sys.argv[2].encode(), sys.argv[3].encode()])
typ, data = m.authenticate('LOGIN', lambda challenge: next(answers))
print(typ, m.select('INBOX')[1][0].decode())
m.logout()
`;
    const { stdout } = await run('python3', ['-c', script, String(server.port('imap')), USER, PASS], { timeout: 30_000 });
    assert.equal(stdout.trim(), 'OK 1');
  });

  it('POP3 lists LOGIN in CAPA and AUTH, and runs the exchange', async () => {
    const port = server.port('pop3');
    const listing = await converse(port, ['CAPA']);
    assert.match(listing[1]!, /^\+OK/);
    const [, ...replies] = await converse(port, ['AUTH LOGIN', b64(USER), b64(PASS), 'STAT']);
    assert.deepEqual(replies.slice(0, 2), ['+ VXNlcm5hbWU6', '+ UGFzc3dvcmQ6']);
    assert.match(replies[2]!, /^\+OK/);
    assert.match(replies[3]!, /^\+OK 1 /);
    const cancelled = await converse(port, ['AUTH LOGIN', '*']);
    assert.match(cancelled[2]!, /^-ERR/);
  });

  it('curl fetches a message over POP3 with --login-options AUTH=LOGIN', async () => {
    const { stdout } = await run('curl', ['-sS', '--max-time', '20', '--login-options', 'AUTH=LOGIN', '-u', `${USER}:${PASS}`, `pop3://127.0.0.1:${server.port('pop3')}/1`], { timeout: 30_000 });
    assert.match(stdout, /Subject: hello/);
  });
});
