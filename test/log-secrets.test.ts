// Logs: every session event is one line (connect, login or its failure, close with counters)
// for SMTP, IMAP and POP3, and no password ever reaches the log, in any form a client sends it
// (AUTH PLAIN and LOGIN base64, IMAP LOGIN and AUTHENTICATE, POP3 PASS and AUTH, web login),
// right or wrong, at the most verbose level.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Wire } from './clients/imap.js';
import { Pop3Client } from './clients/pop3.js';
import { startServer, type RunningServer } from '../src/server.js';
import { WireClient } from './clients/smtp.js';
import { createLogger } from '../src/util/logger.js';
import { hashPassword } from '../src/util/password.js';
import { emptyResolver, tempDir, testConfig } from './helpers.js';

const USER = 'ann@example.com';
const GOOD = 'Corr3ct-Horse-Battery-5ecret';
const WRONG = ['Wr0ng-smtp-plain-a1b2', 'Wr0ng-smtp-login-c3d4', 'Wr0ng-imap-login-e5f6', 'Wr0ng-imap-auth-g7h8', 'Wr0ng-pop3-pass-i9j0', 'Wr0ng-pop3-auth-k1l2', 'Wr0ng-web-login-m3n4'];

const b64 = (text: string) => Buffer.from(text).toString('base64');
const plain = (password: string) => b64(`\0${USER}\0${password}`);

interface Entry {
  msg: string;
  proto?: string;
  [key: string]: unknown;
}

describe('session logs and secrets', () => {
  const data = tempDir('quill-logs-');
  const lines: string[] = [];
  let server: RunningServer;

  before(async () => {
    const config = testConfig(data, { limits: { authFailuresPerIp: 100 } });
    const logger = createLogger('trace', 'quill', { write: (line: string) => void lines.push(line) });
    server = await startServer(config, { logger, resolver: emptyResolver, nodeId: 'log-node' });
    await server.store.addDomain('example.com');
    await server.store.addUser({ address: USER, passwordHash: await hashPassword(GOOD) });
  });

  after(async () => {
    await server.close();
    rmSync(data, { recursive: true, force: true });
  });

  it('logs session events and never a password', async () => {
    // SMTP submission: AUTH PLAIN wrong then right; AUTH LOGIN wrong then right.
    for (const [password, ok] of [
      [WRONG[0]!, false],
      [GOOD, true],
    ] as const) {
      const smtp = await WireClient.connect(server.port('submission'));
      await smtp.read();
      await smtp.command('EHLO client.example.net');
      assert.equal((await smtp.command(`AUTH PLAIN ${plain(password)}`)).code, ok ? 235 : 535);
      await smtp.command('QUIT');
      smtp.close();
    }
    for (const [password, ok] of [
      [WRONG[1]!, false],
      [GOOD, true],
    ] as const) {
      const smtp = await WireClient.connect(server.port('submission'));
      await smtp.read();
      await smtp.command('EHLO client.example.net');
      assert.equal((await smtp.command('AUTH LOGIN')).code, 334);
      assert.equal((await smtp.command(b64(USER))).code, 334);
      assert.equal((await smtp.command(b64(password))).code, ok ? 235 : 535);
      await smtp.command('QUIT');
      smtp.close();
    }

    // IMAP: LOGIN wrong, AUTHENTICATE PLAIN wrong, LOGIN right; AUTHENTICATE PLAIN right.
    const { client: imap } = await Wire.connect(server.port('imap'));
    assert.match((await imap.commandLines(`LOGIN "${USER}" "${WRONG[2]}"`)).tagged, / NO /);
    assert.match((await imap.commandLines(`AUTHENTICATE PLAIN ${plain(WRONG[3]!)}`)).tagged, / NO /);
    assert.match((await imap.commandLines(`LOGIN "${USER}" "${GOOD}"`)).tagged, / OK /);
    await imap.commandLines('LOGOUT');
    imap.destroy();
    const { client: imap2 } = await Wire.connect(server.port('imap'));
    assert.match((await imap2.commandLines(`AUTHENTICATE PLAIN ${plain(GOOD)}`)).tagged, / OK /);
    await imap2.commandLines('LOGOUT');
    imap2.destroy();

    // POP3: PASS wrong, AUTH PLAIN wrong, PASS right; AUTH PLAIN right.
    const pop3 = await Pop3Client.connect(server.port('pop3'));
    assert.match(await pop3.command(`USER ${USER}`), /^\+OK/);
    assert.match(await pop3.command(`PASS ${WRONG[4]}`), /^-ERR/);
    assert.match(await pop3.command(`AUTH PLAIN ${plain(WRONG[5]!)}`), /^-ERR/);
    await pop3.login(USER, GOOD);
    await pop3.command('QUIT');
    const pop3b = await Pop3Client.connect(server.port('pop3'));
    assert.match(await pop3b.command(`AUTH PLAIN ${plain(GOOD)}`), /^\+OK/);
    await pop3b.command('QUIT');

    // Web login, wrong then right.
    const base = `http://127.0.0.1:${server.port('http')}`;
    for (const [password, status] of [
      [WRONG[6]!, 401],
      [GOOD, 200],
    ] as const) {
      const res = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ address: USER, password }) });
      assert.equal(res.status, status);
      await res.text();
    }

    // Close lines are written as the sockets go.
    const closes = () => lines.map((line) => JSON.parse(line) as Entry).filter((entry) => entry.msg === 'close');
    for (let i = 0; i < 100 && closes().length < 8; i++) await sleep(50);

    const log = lines.join('');
    for (const secret of [GOOD, ...WRONG]) {
      assert.ok(!log.includes(secret), `password ${secret} in the log`);
      assert.ok(!log.includes(b64(secret)), `base64 of password ${secret} in the log`);
      assert.ok(!log.includes(plain(secret)), `AUTH PLAIN response with ${secret} in the log`);
    }

    const entries = lines.map((line) => JSON.parse(line) as Entry);
    const events = (proto: string) => entries.filter((entry) => entry.proto === proto).map((entry) => entry.msg);
    for (const [proto, wanted] of [
      ['submission', ['connect', 'authenticated', 'authentication refused', 'close']],
      ['imap', ['connect', 'login', 'authentication failed', 'close']],
      ['pop3', ['connect', 'login', 'login failed', 'close']],
    ] as const) {
      for (const msg of wanted) assert.ok(events(proto).includes(msg), `${proto}: no "${msg}" line in ${JSON.stringify(events(proto))}`);
    }
    // The close line carries the session's counters.
    const smtpClose = entries.find((entry) => entry.proto === 'submission' && entry.msg === 'close');
    assert.equal(typeof smtpClose?.commands, 'number');
    const imapClose = entries.find((entry) => entry.proto === 'imap' && entry.msg === 'close');
    assert.ok((imapClose?.commands as number) >= 1);
    const pop3Close = entries.find((entry) => entry.proto === 'pop3' && entry.msg === 'close');
    assert.equal(typeof pop3Close?.commands, 'number');
  });
});
