// Shared by the login and sign-up security tests: a line client (on the shared socket reader)
// that binds a chosen loopback address (so the server sees 127.0.0.2, 127.0.0.3...), one login
// attempt per protocol on a fresh connection, and a second client whose NOOPs are timed while an
// attack runs.
import http from 'node:http';
import net from 'node:net';
import { SocketReader } from '../../src/protocol/socket-reader.js';

export class LineClient {
  private readonly reader: SocketReader;
  /** True once the connection is gone. */
  closed = false;

  private constructor(private readonly socket: net.Socket) {
    this.reader = new SocketReader(socket, { maxLine: 1024 * 1024, highWater: Number.POSITIVE_INFINITY, onEnd: () => new Error('connection closed by server') });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
    });
  }

  static connect(port: number, localAddress: string): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, localAddress }, () => resolve(new LineClient(socket)));
      socket.once('error', reject);
    });
  }

  send(line: string): void {
    this.socket.write(`${line}\r\n`);
  }

  /** The next line without CRLF; throws when the server closed first. */
  async line(): Promise<string> {
    return (await this.reader.line())?.toString('latin1') ?? '';
  }

  /** Lines up to and including the first that matches. */
  async until(last: RegExp): Promise<string> {
    for (;;) {
      const line = await this.line();
      if (last.test(line)) return line;
    }
  }

  async command(line: string, last: RegExp): Promise<string> {
    this.send(line);
    return this.until(last);
  }

  close(): void {
    this.socket.destroy();
  }
}

const plain = (user: string, password: string) => Buffer.from(`\0${user}\0${password}`).toString('base64');

export type Protocol = 'imap' | 'pop3' | 'submission' | 'http';

/** Logs in on a new connection from `from`; the server's answer to the login, the connection closed after. */
export async function tryLogin(protocol: Protocol, port: number, from: string, user: string, password: string): Promise<string> {
  if (protocol === 'http') {
    const reply = await httpPost(port, from, '/api/login', { address: user, password });
    return `${reply.status} ${reply.body.error ?? ''}`;
  }
  const client = await LineClient.connect(port, from);
  try {
    await client.line(); // greeting
    if (protocol === 'imap') return await client.command(`a LOGIN "${user}" "${password}"`, /^a /);
    if (protocol === 'pop3') {
      await client.command(`USER ${user}`, /^[+-]/);
      return await client.command(`PASS ${password}`, /^[+-]/);
    }
    await client.command('EHLO client.test', /^\d{3} /);
    return await client.command(`AUTH PLAIN ${plain(user, password)}`, /^\d{3} /);
  } finally {
    client.close();
  }
}

const SUCCESS: Record<Protocol, RegExp> = { imap: /^a OK/, pop3: /^\+OK/, submission: /^235 /, http: /^200 / };
export const succeeded = (protocol: Protocol, reply: string): boolean => SUCCESS[protocol].test(reply);

/** What each protocol answers a throttled login with. */
export const THROTTLED: Record<Protocol, RegExp> = {
  imap: /^a NO \[UNAVAILABLE\] too many failed logins/,
  pop3: /^-ERR \[AUTH\] too many failed logins/,
  submission: /^454 4\.7\.0 /,
  http: /^429 too many failed logins/,
};

/**
 * A logged-in second client that sends NOOP every few milliseconds while `work` runs; resolves
 * to work's result and every NOOP's round trip in ms.
 */
export async function whileTimingNoops<T>(protocol: Exclude<Protocol, 'http'>, port: number, from: string, user: string, password: string, work: () => Promise<T>): Promise<{ result: T; noopMs: number[] }> {
  const client = await LineClient.connect(port, from);
  await client.line();
  if (protocol === 'imap') await client.command(`n LOGIN "${user}" "${password}"`, /^n OK/);
  else if (protocol === 'pop3') {
    await client.command(`USER ${user}`, /^\+OK/);
    await client.command(`PASS ${password}`, /^\+OK/);
  } else {
    await client.command('EHLO second.test', /^250 /);
    await client.command(`AUTH PLAIN ${plain(user, password)}`, /^235 /);
  }
  const noopMs: number[] = [];
  let done = false;
  const timing = (async () => {
    while (!done) {
      const start = performance.now();
      if (protocol === 'imap') await client.command('n NOOP', /^n OK/);
      else if (protocol === 'pop3') await client.command('NOOP', /^\+OK/);
      else await client.command('NOOP', /^250 /);
      noopMs.push(performance.now() - start);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  try {
    const result = await work();
    return { result, noopMs };
  } finally {
    done = true;
    await timing;
    client.close();
  }
}

/**
 * Whether the round trips were answered within `ms`, allowing one in ten (at least one) to be
 * late: a shared test machine stalls a process now and then.
 */
export function answeredWithin(samples: number[], ms: number): boolean {
  return samples.length > 0 && samples.filter((sample) => sample >= ms).length <= Math.max(1, Math.floor(samples.length / 10));
}

/** POSTs JSON from a chosen loopback address; the status and the parsed body. */
export function httpPost(port: number, from: string, path: string, body: unknown): Promise<{ status: number; body: { error?: string; user?: { address: string } } }> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port, localAddress: from, method: 'POST', path, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') }));
      },
    );
    request.on('error', reject);
    request.end(data);
  });
}
