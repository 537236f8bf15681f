// The IMAP server under test. By default a fresh Quillmail server per test file (users made
// with addUser, everything else done through IMAP, so the suite stays server-neutral). With
// IMAP_TARGET=host:port and IMAP_USERS="user1:pass1,user2:pass2" the suite talks to that
// server instead and creates nothing: tests use unique mailbox names and clean up after
// themselves, and only inbox.test.ts touches INBOX.
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';

export interface Account {
  user: string;
  pass: string;
}

export interface Target {
  host: string;
  port: number;
  /** At least two accounts; tests use accounts[0] unless they need a second user. */
  accounts: Account[];
  /** True when the suite runs against an external server (IMAP_TARGET). */
  external: boolean;
}

let current: Promise<Target> | undefined;
let stopServer: (() => Promise<void>) | undefined;
const closers: (() => Promise<void>)[] = [];

/** Runs fn after the file's tests, before the server stops (to close shared connections). */
export function beforeStop(fn: () => Promise<void>): void {
  closers.push(fn);
}

// Registered while the test file loads, so it runs once after all of the file's tests.
after(async () => {
  for (const close of closers) await close();
  await stopServer?.();
});

/** The target for this test file (started once per file, stopped after the file's tests). */
export function target(): Promise<Target> {
  current ??= open();
  return current;
}

async function open(): Promise<Target> {
  const external = process.env.IMAP_TARGET;
  if (external) {
    const [host, port] = splitHostPort(external);
    const accounts = (process.env.IMAP_USERS ?? '')
      .split(',')
      .filter(Boolean)
      .map((entry) => {
        const colon = entry.indexOf(':');
        return { user: entry.slice(0, colon), pass: entry.slice(colon + 1) };
      });
    if (accounts.length < 2) throw new Error('IMAP_USERS must name two accounts: "user1:pass1,user2:pass2"');
    return { host, port, accounts, external: true };
  }
  const { startTestServer } = await import('../helpers.js');
  const server = await startTestServer();
  stopServer = () => server.stop();
  const accounts = [
    { user: 'alice@example.com', pass: 'alice-secret' },
    { user: 'bob@example.com', pass: 'bob-secret' },
  ];
  // A quota like the one dovecot.sh configures, so QUOTA has a root to report.
  for (const account of accounts) await server.addUser(account.user, account.pass, { quotaBytes: 100 * 1024 * 1024 });
  return { host: '127.0.0.1', port: server.port('imap'), accounts, external: false };
}

function splitHostPort(value: string): [string, number] {
  const colon = value.lastIndexOf(':');
  const port = Number(value.slice(colon + 1));
  if (colon < 1 || !/^\d+$/.test(value.slice(colon + 1)) || port < 1 || port > 65535) throw new Error(`IMAP_TARGET must be host:port, got ${value}`);
  return [value.slice(0, colon).replace(/^\[|\]$/g, ''), port];
}

/** A mailbox name no other test (or earlier run against the same server) uses. */
export function uniqueName(prefix = 'qt'): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}
