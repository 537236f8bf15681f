// `quill db` and `--store` as an operator uses them: the real CLI against a throwaway
// PostgreSQL, then `quill start --store` taking mail over SMTP into that database.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { postgresAvailable, startPostgres, type PgServer } from '../../test/pg-server.js';
import { PostgresStore } from '../store/postgres.js';
import { runQuill as quill } from '../../test/helpers.js';

const MAIN = path.resolve('src/cli/main.ts');


describe('quill db and --store', { skip: postgresAvailable() ? false : 'PostgreSQL 15 is not installed' }, () => {
  let pg: PgServer;
  let dir: string;
  before(async () => {
    pg = await startPostgres();
    dir = mkdtempSync(path.join(tmpdir(), 'quill-db-cli-'));
  });
  after(() => {
    pg?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the database and schema once, then reports it up to date', async () => {
    const url = pg.url('quill_cli_init');
    const init = await quill(['db', 'init', '--store', url]);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /^database created\napplied 001_initial\n/);
    const again = await quill(['db', 'migrate', '--store', url]);
    assert.equal(again.stdout, 'schema is up to date\n', again.stderr);
    // store.url from the config file works like --store.
    const config = path.join(dir, 'quill.yaml');
    writeFileSync(config, `store:\n  url: ${url}\n`);
    const status = await quill(['db', 'status', '-c', config]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /role +primary\n/);
    assert.match(status.stdout, /pending migrations +none\n/);
  });

  it('refuses a store URL that is not postgres:// and a server that is not there', async () => {
    const wrong = await quill(['db', 'migrate', '--store', 'mysql://db/mail']);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /store\.url: must be a postgres:\/\/ URL/);
    const down = await quill(['domain', 'list', '--store', 'postgres://postgres@127.0.0.1:1/none']);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /^quill: cannot open store .*ECONNREFUSED/);
  });

  it('runs quill start --store on PostgreSQL: mail accepted over SMTP is in the database', async () => {
    const url = await pg.createDatabase('quill_cli_start');
    assert.equal((await quill(['domain', 'add', 'example.com', '--store', url])).code, 0);
    const added = await quill(['user', 'add', 'alice@example.com', '--password-stdin', '--store', url], 'alice-pw\n');
    assert.equal(added.code, 0, added.stderr);

    const listeners = ['smtp', 'submission', 'pop3', 'imap', 'http'].flatMap((name) => [`--${name}`, '127.0.0.1:0']);
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'start', '--store', url, '--data', dir, ...listeners], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    try {
      const smtpPort = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`quill start did not come up:\n${output}`)), 20_000);
        child.on('exit', (code) => reject(new Error(`quill start exited with ${code}:\n${output}`)));
        const onData = (chunk: Buffer) => {
          output += chunk.toString();
          const match = /"protocol":"smtp".*"port":(\d+)/.exec(output);
          if (match && /http listening/.test(output)) {
            clearTimeout(timer);
            resolve(Number(match[1]));
          }
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
      });
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, secure: false, name: 'client.example', tls: { rejectUnauthorized: false } });
      await transport.sendMail({ from: 'bob@remote.test', to: 'alice@example.com', subject: 'into postgres', text: 'stored in PostgreSQL' });
      transport.close();
    } finally {
      child.removeAllListeners('exit');
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }

    const store = await PostgresStore.open(url, { listen: false });
    try {
      const user = (await store.getUser('alice@example.com'))!;
      const inbox = (await store.getMailbox(user.id, 'INBOX'))!;
      const [message] = await store.listMessages(inbox.id);
      assert.ok(message, 'the message is in PostgreSQL');
      assert.match((await store.getBlob(message.blobHash))!.toString(), /Subject: into postgres/);
    } finally {
      await store.close();
    }
  });
});
