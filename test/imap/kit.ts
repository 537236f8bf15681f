// Shared by the IMAP conformance tests: capability checks (the only reason a test skips),
// scratch mailboxes that clean up after themselves, imapflow and imaplib clients.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';
import { ImapFlow } from 'imapflow';
import { beforeStop, target, uniqueName, type Account, type Target } from './target.js';
import { quote, Wire } from '../clients/imap.js';

export { target, uniqueName, quote, Wire };

/**
 * Test options marking a known bug of our server as todo (so CI stays green while the lead
 * fixes it); against another server (IMAP_TARGET) the test counts in full.
 */
export function knownBug(what: string): { todo?: string } {
  return process.env.IMAP_TARGET ? {} : { todo: `server: ${what}` };
}

let capabilityCache: Promise<Set<string>> | undefined;
let preLoginCache: Promise<Set<string>> | undefined;

function capabilityWords(line: string): Set<string> {
  return new Set(line.split(' ').slice(2).map((cap) => cap.toUpperCase()));
}

/** The capabilities advertised before login, upper case. */
export function preLoginCapabilities(): Promise<Set<string>> {
  preLoginCache ??= (async () => {
    const wire = await Wire.open(await target());
    const reply = (await wire.command('CAPABILITY')).ok();
    await wire.close();
    return capabilityWords(reply.all('CAPABILITY')[0]?.text ?? '');
  })();
  return preLoginCache;
}

/** The capabilities advertised after login, upper case. */
export function capabilities(): Promise<Set<string>> {
  capabilityCache ??= (async () => {
    const wire = await Wire.login(await target());
    const reply = (await wire.command('CAPABILITY')).ok();
    await wire.close();
    return capabilityWords(reply.all('CAPABILITY')[0]?.text ?? '');
  })();
  return capabilityCache;
}

/** True when the server advertises every capability; otherwise skips the test with a message. */
export async function requires(t: TestContext, ...caps: string[]): Promise<boolean> {
  const have = await capabilities();
  const missing = caps.filter((cap) => !have.has(cap.toUpperCase()));
  if (missing.length === 0) return true;
  t.skip(`server does not advertise ${missing.join(', ')}`);
  return false;
}

/** A logged-in raw connection, closed after the test. */
export async function wire(t: TestContext, account?: Account): Promise<Wire> {
  const connection = await Wire.login(await target(), account);
  t.after(() => connection.close());
  return connection;
}

let adminConnection: Promise<Wire> | undefined;
let adminQueue: Promise<unknown> = Promise.resolve();

beforeStop(async () => {
  if (adminConnection) await (await adminConnection).close();
});

/** Runs fn on one logged-in connection shared by the file's setup and cleanup, one caller at a time (logins are not free). */
function asAdmin<T>(fn: (admin: Wire) => Promise<T>): Promise<T> {
  const run = adminQueue.then(async () => {
    adminConnection ??= target().then((where) => Wire.login(where));
    let admin = await adminConnection;
    if (admin.closed) {
      adminConnection = target().then((where) => Wire.login(where));
      admin = await adminConnection;
    }
    return fn(admin);
  });
  adminQueue = run.catch(() => undefined);
  return run;
}

/** A fresh mailbox holding the messages (appended through IMAP), deleted after the test. */
export async function scratch(t: TestContext, messages: (Buffer | { body: Buffer; flags?: string[]; date?: string })[] = [], prefix = 'qt'): Promise<string> {
  const name = uniqueName(prefix);
  await asAdmin(async (setup) => {
    (await setup.command(`CREATE ${quote(name)}`)).ok();
    for (const message of messages) {
      const { body, flags, date } = Buffer.isBuffer(message) ? { body: message, flags: undefined, date: undefined } : message;
      const pieces = [`APPEND ${quote(name)} `, flags ? `(${flags.join(' ')}) ` : '', date ? `${quote(date)} ` : ''];
      (await setup.command([pieces.join(''), body])).ok();
    }
  });
  t.after(() => removeMailbox(name));
  return name;
}

/** Deletes a mailbox and everything below it, and drops subscriptions to those names. */
export async function removeMailbox(name: string, account?: Account): Promise<void> {
  const where = await target();
  if (account && account.user !== where.accounts[0]!.user) {
    const other = await Wire.login(where, account);
    await removeWith(other, name);
    await other.close();
  } else {
    await asAdmin((admin) => removeWith(admin, name));
  }
}

async function removeWith(cleanup: Wire, name: string): Promise<void> {
  const list = await cleanup.command(`LIST "" ${quote(`${name}*`)}`);
  const names = list.all('LIST').map((response) => String(response.values[3]));
  names.sort((a, b) => b.length - a.length);
  for (const each of names) await cleanup.command(`DELETE ${quote(each)}`);
  const subscribed = await cleanup.command(`LSUB "" ${quote(`${name}*`)}`);
  for (const response of subscribed.all('LSUB')) await cleanup.command(`UNSUBSCRIBE ${quote(String(response.values[3]))}`);
}

/** A connected imapflow client, logged out after the test. */
export async function flow(t: TestContext, account?: Account): Promise<ImapFlow> {
  const where = await target();
  const { user, pass } = account ?? where.accounts[0]!;
  const client = new ImapFlow({ host: where.host, port: where.port, secure: false, doSTARTTLS: false, auth: { user, pass }, logger: false, disableAutoIdle: true });
  client.on('error', () => {});
  await client.connect();
  t.after(async () => {
    if (client.usable) await client.logout().catch(() => client.close());
    else client.close();
  });
  return client;
}

const run = promisify(execFile);

export type Plain = null | boolean | number | string | Buffer | Plain[] | { [key: string]: Plain };
export type PyResult = { ok: Plain } | { error: string };

function revive(value: unknown): Plain {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === 'object') {
    if ('b64' in value && typeof value.b64 === 'string') return Buffer.from(value.b64, 'base64');
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)]));
  }
  return value as Plain;
}

/** Runs a Python script under test/imap/py against the target; it prints one JSON document. */
export async function python(script: string, args: unknown): Promise<Plain> {
  const where: Target = await target();
  const file = fileURLToPath(new URL(`./py/${script}`, import.meta.url));
  const { stdout } = await run('python3', [file, where.host, String(where.port), JSON.stringify(args)], { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });
  return revive(JSON.parse(stdout));
}

/** Runs imaplib calls in one session (see py/imaplib_driver.py); one result per step. */
export async function imaplib(account: Account, steps: unknown[][], options: { login?: boolean } = {}): Promise<PyResult[]> {
  const args = { user: account.user, pass: account.pass, login: options.login ?? true, steps: steps.map((step) => step.map(toPython)) };
  return (await python('imaplib_driver.py', args)) as PyResult[];
}

function toPython(value: unknown): unknown {
  return Buffer.isBuffer(value) ? { b64: value.toString('base64') } : value;
}

/** The value of an imaplib step that must have succeeded: [typ, data]. */
export function pyOk(result: PyResult | undefined): [string, Plain[]] {
  if (!result || !('ok' in result)) throw new Error(`imaplib step failed: ${JSON.stringify(result)}`);
  return result.ok as [string, Plain[]];
}
