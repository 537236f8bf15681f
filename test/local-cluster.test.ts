// `quill start --nodes 2`: a gateway and two node processes. Killing a node with SIGKILL
// costs no request, and the node comes back by itself.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from './helpers.js';

function health(port: number): Promise<{ status: number; node?: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, node: res.statusCode === 200 ? (JSON.parse(body) as { node: string }).node : undefined }));
      })
      .on('error', reject);
  });
}

describe('quill start --nodes', () => {
  let child: ChildProcess;
  const data = tempDir('quill-local-cluster-');
  let output = '';
  let httpPort = 0;
  const pids = () => {
    const found: Record<string, number> = {};
    for (const match of output.matchAll(/"node":"(node-\d)","pid":(\d+).*local cluster: node started/g)) found[match[1]!] = Number(match[2]);
    return found;
  };

  before(async () => {
    const ports = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
    child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start', '--nodes', '2', '--data', data, ...ports], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const end = Date.now() + 30_000;
    while (!httpPort) {
      if (Date.now() > end) throw new Error(`gateway did not come up:\n${output}`);
      const match = /"protocol":"http","port":(\d+),"msg":"gateway: http listening"/.exec(output);
      if (match) httpPort = Number(match[1]);
      await sleep(50);
    }
  });

  after(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  });

  async function nodesAnswering(want: number): Promise<Set<string>> {
    const seen = new Set<string>();
    const end = Date.now() + 30_000;
    while (seen.size < want) {
      if (Date.now() > end) throw new Error(`only ${[...seen].join(', ')} answered:\n${output}`);
      const res = await health(httpPort);
      if (res.node) seen.add(res.node);
      await sleep(100);
    }
    return seen;
  }

  it('serves through the gateway from both nodes', async () => {
    assert.deepEqual([...(await nodesAnswering(2))].sort(), ['node-1', 'node-2']);
  });

  it('carries mail through the gateway: SMTP in, POP3 and IMAP out', async () => {
    const port = (protocol: string) => Number(new RegExp(`"protocol":"${protocol}","port":(\\d+),"msg":"gateway: ${protocol} listening"`).exec(output)![1]);
    const cli = (...args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args, '--data', data]);
    await cli('domain', 'add', 'example.com');
    await cli('user', 'add', 'carol@example.com', '--password', 'carol-pw');
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: port('smtp'), secure: false, ignoreTLS: true });
    await transport.sendMail({ envelope: { from: 'dave@elsewhere.test', to: ['carol@example.com'] }, raw: 'From: dave@elsewhere.test\r\nSubject: across the cluster\r\n\r\nHello.\r\n' });
    transport.close();
    const script = [
      'import imaplib, poplib, sys',
      `p = poplib.POP3('127.0.0.1', ${port('pop3')}); p.user('carol@example.com'); p.pass_('carol-pw')`,
      'print(b"\\r\\n".join(p.retr(1)[1]).decode())',
      'p.quit()',
      `m = imaplib.IMAP4('127.0.0.1', ${port('imap')}); m.login('carol@example.com', 'carol-pw'); m.select('INBOX')`,
      "print(m.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')[1][0][1].decode())",
      'm.logout()',
    ].join('\n');
    const { stdout } = await promisify(execFile)('python3', ['-c', script]);
    assert.match(stdout, /^Received: from .*\[127\.0\.0\.1\]\)/m, 'stored by a node, with the client named');
    assert.equal((stdout.match(/Subject: across the cluster/g) ?? []).length, 2, 'read over POP3 and IMAP');
  });

  it('loses no request when a node is killed, and restarts it', async () => {
    const pid = pids()['node-1'];
    assert.ok(pid, 'node-1 pid logged');
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 20; i++) {
      const res = await health(httpPort);
      assert.equal(res.status, 200, `request ${i} after the kill`);
      await sleep(25);
    }
    const end = Date.now() + 30_000;
    while (pids()['node-1'] === pid) {
      if (Date.now() > end) throw new Error(`node-1 was not restarted:\n${output}`);
      await sleep(100);
    }
    assert.ok((await nodesAnswering(2)).has('node-1'), 'the restarted node-1 serves again');
  });

  it('stops the gateway and every node on SIGTERM', async () => {
    const nodePids = Object.values(pids());
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    for (const pid of nodePids) assert.throws(() => process.kill(pid, 0), 'node process gone');
  });
});
