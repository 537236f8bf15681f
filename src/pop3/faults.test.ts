// POP3 when the store fails or the server shuts down: [SYS/TEMP] replies, the maildrop lock
// let go, and a shutdown that lets a session in the UPDATE state finish its deletions.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { tempDir, testConfig } from '../../test/helpers.js';
import { startServer, type RunningServer } from '../server.js';
import { SqliteStore } from '../store/sqlite.js';
import { StoreError, type Store } from '../store/types.js';
import { silentLogger } from '../util/logger.js';
import { hashPassword } from '../util/password.js';
import { Pop3Client } from '../../test/clients/pop3.js';
import { waitFor } from './test-kit.js';

type Faultable = 'listMessages' | 'expunge';
type Fault = () => Promise<void>;

/** The store with a hook run before listMessages and expunge: to throw, or to hold a call back. */
function withFaults(store: Store, faults: Partial<Record<Faultable, Fault>>): Store {
  return new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      const method = (value as (...args: unknown[]) => unknown).bind(target);
      if (property !== 'listMessages' && property !== 'expunge') return method;
      return async (...args: unknown[]) => {
        const fault = faults[property];
        if (fault) await fault();
        return method(...args);
      };
    },
  });
}

describe('POP3 faults', () => {
  let dataDir: string;
  let store: SqliteStore;
  let server: RunningServer;
  const faults: Partial<Record<Faultable, Fault>> = {};
  let userId: number;

  before(async () => {
    dataDir = tempDir('quill-pop3-faults-');
    store = await SqliteStore.open(dataDir);
    server = await startServer(testConfig(dataDir), { logger: silentLogger(), store: withFaults(store, faults) });
    await store.addDomain('example.com');
    userId = (await store.addUser({ address: 'hank@example.com', passwordHash: await hashPassword('pw') })).id;
    await store.addUser({ address: 'ivy@example.com', passwordHash: await hashPassword('pw') });
  });
  after(async () => {
    await server.close();
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const inboxUids = async () => store.listUids((await store.getMailbox(userId, 'INBOX'))!.id);
  const unavailable: Fault = async () => {
    throw new StoreError('unavailable', 'database is down');
  };

  it('answers [SYS/TEMP] when the store is unavailable at login, and lets go of the lock', async () => {
    await store.deliver(Buffer.from('Subject: one\r\n\r\n1\r\n'), [{ userId }]);
    const client = await Pop3Client.connect(server.port('pop3'));
    faults.listMessages = unavailable;
    await client.command('USER hank@example.com');
    assert.equal(await client.command('PASS pw'), '-ERR [SYS/TEMP] mail store temporarily unavailable, try again later');
    delete faults.listMessages;
    await client.login('hank@example.com', 'pw');
    assert.equal(await client.command('QUIT'), '+OK bye, 1 messages left');
  });

  it('answers QUIT with [SYS/TEMP] when the deletions cannot be committed, and keeps the messages', async () => {
    const client = await Pop3Client.connect(server.port('pop3'));
    await client.login('hank@example.com', 'pw');
    assert.equal(await client.command('DELE 1'), '+OK message 1 deleted');
    faults.expunge = unavailable;
    assert.equal(await client.command('QUIT'), '-ERR [SYS/TEMP] some deleted messages not removed');
    delete faults.expunge;
    assert.ok(await client.serverClosed());
    assert.equal((await inboxUids()).length, 1);
  });

  it('shutdown lets a session in UPDATE finish and cuts the others off without deleting', async () => {
    const port = server.port('pop3');
    const other = await Pop3Client.connect(port);
    await other.login('ivy@example.com', 'pw');
    const client = await Pop3Client.connect(port);
    await client.login('hank@example.com', 'pw');
    assert.equal(await client.command('DELE 1'), '+OK message 1 deleted');

    let release!: () => void;
    let expungeStarted = false;
    faults.expunge = () => {
      expungeStarted = true;
      return new Promise<void>((resolve) => (release = resolve));
    };
    client.write('QUIT\r\n');
    await waitFor(() => expungeStarted);
    const closing = server.services.get('pop3')!.close(new Date(Date.now() + 10_000));
    assert.ok(await other.serverClosed(), 'a session in TRANSACTION is closed at once');
    release();
    await closing;
    delete faults.expunge;
    assert.equal(await client.readLine(), '+OK bye, 0 messages left');
    assert.deepEqual(await inboxUids(), []);
  });
});
