// Shared by the web tests: JSON requests over a real socket with fetch(), and a logged-in client.
import assert from 'node:assert/strict';

export interface Reply<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/** A browser stand-in: keeps the session cookie and the CSRF token from login. */
export class WebClient {
  cookie = '';
  csrfToken = '';

  constructor(readonly base: string) {}

  async request<T = any>(method: string, path: string, body?: unknown, options: { csrf?: boolean; headers?: Record<string, string> } = {}): Promise<Reply<T>> {
    const headers: Record<string, string> = { ...options.headers };
    if (this.cookie) headers.cookie = this.cookie;
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (options.csrf !== false && this.csrfToken && method !== 'GET') headers['x-csrf-token'] = this.csrfToken;
    const response = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const setCookie = response.headers.get('set-cookie');
    if (setCookie?.startsWith('quill_session=')) this.cookie = setCookie.split(';')[0]!;
    const text = await response.text();
    const parsed = response.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text;
    return { status: response.status, headers: response.headers, body: parsed as T };
  }

  get<T = any>(path: string) {
    return this.request<T>('GET', path);
  }

  post<T = any>(path: string, body: unknown = {}, options?: { csrf?: boolean }) {
    return this.request<T>('POST', path, body, options);
  }

  async login(address: string, password: string): Promise<void> {
    const reply = await this.post('/api/login', { address, password });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    this.csrfToken = reply.body.csrfToken;
  }
}

/** A message as an MTA would store it, CRLF line ends. */
export function rawMessage(lines: string[]): Buffer {
  return Buffer.from(lines.join('\r\n') + '\r\n');
}
