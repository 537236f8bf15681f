// The tests' raw IMAP client, for exact bytes and input no real client would send. Responses
// are framed once (responseEnd, RFC 3501 4.3 and 7): a line ending in a literal {n} carries the
// n bytes and the rest of the line that follows them.
// One class, Wire: responses as received, parsed on demand into values (the conformance suite,
// test/imap/, which runs against Quillmail or any server named by IMAP_TARGET), or read as
// lines of text (readLine, until, commandLines: the protocol, security and metrics tests).
import net from 'node:net';
import tls from 'node:tls';
import type { Account, Target } from '../imap/target.js';

/** Where the response at the start of `buffer` ends, its CRLF included; -1 while it is incomplete. */
export function responseEnd(buffer: Buffer): number {
  let from = 0;
  for (;;) {
    const crlf = buffer.indexOf('\r\n', from);
    if (crlf < 0) return -1;
    const literal = /\{(\d+)\}$/.exec(buffer.subarray(Math.max(from, crlf - 24), crlf).toString('latin1'));
    if (!literal) return crlf + 2;
    from = crlf + 2 + Number(literal[1]);
    if (from > buffer.length) return -1;
  }
}

/** A parsed response token: atom or string, literal bytes, NIL, or a parenthesized list. */
export type Value = string | Buffer | null | Value[];

/** One complete server response (a line plus any literals inside it). */
export class Response {
  readonly text: string;
  constructor(readonly raw: Buffer) {
    this.text = raw.toString('utf8').replace(/\r\n$/, '');
  }
  get kind(): 'untagged' | 'continuation' | 'tagged' {
    return this.text.startsWith('* ') ? 'untagged' : this.text.startsWith('+') ? 'continuation' : 'tagged';
  }
  /** The response name: EXISTS for "* 3 EXISTS", LIST for "* LIST ...", OK for "a1 OK ...". */
  get name(): string {
    const match = /^\S+ (?:\d+ )?(\S+)/.exec(this.text);
    return (match?.[1] ?? '').toUpperCase();
  }
  /** The number of "* 3 EXISTS" / "* 2 FETCH ...". */
  get number(): number {
    const match = /^\* (\d+) /.exec(this.text);
    if (!match) throw new Error(`no number in ${this.text}`);
    return Number(match[1]);
  }
  /** The response code of a status response, e.g. "UIDNEXT 5" for "* OK [UIDNEXT 5] ...". */
  get code(): string | undefined {
    return /^\S+ (?:OK|NO|BAD|BYE|PREAUTH) \[([^\]]*)\]/i.exec(this.text)?.[1];
  }
  /** Tokens after "* " (or after the tag): for structured responses such as LIST, FETCH, STATUS. */
  get values(): Value[] {
    const space = this.raw.indexOf(0x20);
    return parseValues(this.raw, space + 1);
  }
  /** The response as one line of latin1 text, literals inline, without the final CRLF. */
  get line(): string {
    return this.raw.subarray(0, this.raw.length - 2).toString('latin1');
  }
}

/** A command's reply as lines of text (Response.line). */
export interface LineReply {
  untagged: string[];
  /** The tagged completion line, e.g. "a1 OK [READ-WRITE] SELECT completed". */
  tagged: string;
}

/** The tagged completion of a command with everything the server sent while it ran. */
export class Reply {
  constructor(
    readonly command: string,
    readonly tagged: Response,
    readonly untagged: Response[],
  ) {}
  get status(): string {
    return this.tagged.text.split(' ')[1]?.toUpperCase() ?? '';
  }
  get code(): string | undefined {
    return this.tagged.code;
  }
  /** Untagged responses with that name (EXISTS, FETCH, LIST, ...). */
  all(name: string): Response[] {
    return this.untagged.filter((response) => response.name === name.toUpperCase());
  }
  /** Asserts OK and returns the reply; the error names the command and the server's answer. */
  ok(): this {
    if (this.status !== 'OK') throw new Error(`expected OK for ${this.command} but got: ${this.tagged.text}`);
    return this;
  }
  toString(): string {
    return [...this.untagged.map((response) => response.text), this.tagged.text].join('\n');
  }
}

export type Piece = string | Buffer | { plus: Buffer };

export class Wire {
  greeting!: Response;
  private buffer = Buffer.alloc(0);
  private readonly queue: Response[] = [];
  private waiters: (() => void)[] = [];
  private closedWaiters: (() => void)[] = [];
  private tagCounter = 0;
  closed = false;
  /** Everything the client sent, for messages when a test fails. */
  readonly sent: string[] = [];

  private constructor(public socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => {
      this.closed = true;
      this.wake();
      for (const resolve of this.closedWaiters.splice(0)) resolve();
    });
    socket.on('error', () => {});
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    this.split();
    this.wake();
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  private static async dial(port: number, host: string): Promise<net.Socket> {
    const socket = net.connect(port, host);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return socket;
  }

  /** Connects to a local port and reads the greeting, as a line. */
  static async connect(port: number, host = '127.0.0.1'): Promise<{ client: Wire; greeting: string }> {
    const client = new Wire(await Wire.dial(port, host));
    client.greeting = await client.next(Infinity);
    return { client, greeting: client.greeting.line };
  }

  static async open(target: Target): Promise<Wire> {
    const wire = new Wire(await Wire.dial(target.port, target.host));
    wire.greeting = await wire.next();
    return wire;
  }

  /** A logged-in connection. */
  static async login(target: Target, account: Account = target.accounts[0]!): Promise<Wire> {
    const wire = await Wire.open(target);
    await wire.login(account.user, account.pass);
    return wire;
  }

  /** LOGIN; throws unless OK. */
  async login(user: string, password: string): Promise<void> {
    (await this.command(`LOGIN ${quote(user)} ${quote(password)}`)).ok();
  }

  private split(): void {
    for (let end = responseEnd(this.buffer); end >= 0; end = responseEnd(this.buffer)) {
      this.queue.push(new Response(Buffer.from(this.buffer.subarray(0, end))));
      this.buffer = this.buffer.subarray(end);
    }
  }

  /** The next complete response, within a bound (Infinity: none); rejects when the server hangs up. */
  async next(timeoutMs = 10_000): Promise<Response> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const response = this.queue.shift();
      if (response) return response;
      if (this.closed) throw new Error(`connection closed by the server (after: ${this.sent.at(-1) ?? 'connect'})`);
      const left = until - Date.now();
      if (left <= 0) throw new Error(`no response within ${timeoutMs} ms (after: ${this.sent.at(-1) ?? 'connect'})`);
      await new Promise<void>((resolve) => {
        const timer = left === Infinity ? undefined : setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The next response as a line of text (Response.line), waiting as long as it takes. */
  async readLine(timeoutMs = Infinity): Promise<string> {
    return (await this.next(timeoutMs)).line;
  }

  /** Reads lines up to the tagged completion of `tag`. */
  async until(tag: string): Promise<LineReply> {
    const untagged: string[] = [];
    for (;;) {
      const line = await this.readLine();
      if (line.startsWith(`${tag} `)) return { untagged, tagged: line };
      untagged.push(line);
    }
  }

  /** Sends a command line with a fresh tag and reads its reply as lines. */
  async commandLines(text: string): Promise<LineReply> {
    const tag = this.nextTag();
    this.write(`${tag} ${text}\r\n`);
    return this.until(tag);
  }

  /** STARTTLS, then TLS on the same socket. */
  async startTls(): Promise<LineReply> {
    const reply = await this.commandLines('STARTTLS');
    const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false });
    this.socket.removeAllListeners('data');
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    secure.on('data', (chunk: Buffer) => this.onData(chunk));
    return reply;
  }

  untilClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.closedWaiters.push(resolve));
  }

  /** Responses already received and not yet taken. */
  pending(): Response[] {
    return this.queue.splice(0);
  }

  /** Waits for an untagged response matching the test; returns it and everything before it. */
  async waitFor(test: (response: Response) => boolean, timeoutMs = 10_000): Promise<Response[]> {
    const seen: Response[] = [];
    const until = Date.now() + timeoutMs;
    for (;;) {
      const response = await this.next(Math.max(1, until - Date.now()));
      seen.push(response);
      if (test(response)) return seen;
    }
  }

  write(data: string | Buffer): void {
    this.sent.push(typeof data === 'string' ? data : `<${data.length} bytes>`);
    this.socket.write(data);
  }

  nextTag(): string {
    this.tagCounter += 1;
    return `T${String(this.tagCounter).padStart(3, '0')}`;
  }

  /**
   * Sends one command and waits for its tagged completion. A string is sent as the command
   * line; a list mixes text with literals: a Buffer as a synchronizing literal (waits for
   * "+"), {plus} as a LITERAL+ one. If the server refuses a literal, the reply is that refusal.
   */
  async command(pieces: Piece | Piece[], options: { tag?: string; timeoutMs?: number } = {}): Promise<Reply> {
    const tag = options.tag ?? this.nextTag();
    const list = Array.isArray(pieces) ? pieces : [pieces];
    const shown = list.map((piece) => (typeof piece === 'string' ? piece : `{${Buffer.isBuffer(piece) ? piece.length : `${piece.plus.length}+`}}`)).join('');
    const untagged: Response[] = [];
    let line = `${tag} `;
    for (const piece of list) {
      if (typeof piece === 'string') {
        line += piece;
      } else if (Buffer.isBuffer(piece)) {
        this.write(`${line}{${piece.length}}\r\n`);
        line = '';
        for (;;) {
          const response = await this.next(options.timeoutMs);
          if (response.kind === 'continuation') break;
          if (response.kind === 'tagged' && response.text.startsWith(`${tag} `)) return new Reply(`${tag} ${shown}`, response, untagged);
          untagged.push(response);
        }
        this.write(piece);
      } else {
        this.write(Buffer.concat([Buffer.from(`${line}{${piece.plus.length}+}\r\n`), piece.plus]));
        line = '';
      }
    }
    this.write(`${line}\r\n`);
    return this.finish(tag, `${tag} ${shown}`, untagged, options.timeoutMs);
  }

  /** Collects responses until the tagged one for tag. */
  async finish(tag: string, command: string, untagged: Response[] = [], timeoutMs?: number): Promise<Reply> {
    for (;;) {
      const response = await this.next(timeoutMs);
      if (response.kind === 'tagged' && response.text.startsWith(`${tag} `)) return new Reply(command, response, untagged);
      untagged.push(response);
    }
  }

  /** LOGOUT if still connected, then close the socket. */
  async close(): Promise<void> {
    if (!this.closed) {
      try {
        await this.command('LOGOUT', { timeoutMs: 3000 });
      } catch {
        // already gone
      }
    }
    this.socket.destroy();
  }

  /** Closes the socket at once, without LOGOUT. */
  destroy(): void {
    this.socket.destroy();
  }
}

/** An IMAP quoted string. */
export function quote(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Parses IMAP response tokens from start to the end of the line (literals included). */
export function parseValues(raw: Buffer, start = 0): Value[] {
  let pos = start;
  const root: Value[] = [];
  const stack: Value[][] = [root];
  const top = (): Value[] => stack[stack.length - 1]!;
  while (pos < raw.length) {
    const c = raw[pos]!;
    if (c === 0x20) {
      pos += 1;
    } else if (c === 0x0d || c === 0x0a) {
      break;
    } else if (c === 0x28) {
      const list: Value[] = [];
      top().push(list);
      stack.push(list);
      pos += 1;
    } else if (c === 0x29) {
      if (stack.length === 1) throw new Error(`unbalanced ) at ${pos} in ${raw.toString()}`);
      stack.pop();
      pos += 1;
    } else if (c === 0x22) {
      const bytes: number[] = [];
      pos += 1;
      while (raw[pos] !== 0x22) {
        if (pos >= raw.length) throw new Error(`unterminated string in ${raw.toString()}`);
        if (raw[pos] === 0x5c) pos += 1;
        bytes.push(raw[pos]!);
        pos += 1;
      }
      pos += 1;
      top().push(Buffer.from(bytes).toString('utf8'));
    } else if (c === 0x7b) {
      const close = raw.indexOf('}', pos);
      const length = Number(raw.subarray(pos + 1, close).toString('latin1'));
      const begin = close + 3;
      top().push(Buffer.from(raw.subarray(begin, begin + length)));
      pos = begin + length;
    } else {
      let end = pos;
      let depth = 0;
      while (end < raw.length) {
        const d = raw[end]!;
        if (d === 0x5b) depth += 1;
        else if (d === 0x5d) depth -= 1;
        else if (depth === 0 && (d === 0x20 || d === 0x28 || d === 0x29 || d === 0x0d || d === 0x0a)) break;
        end += 1;
      }
      const word = raw.subarray(pos, end).toString('utf8');
      top().push(word.toUpperCase() === 'NIL' ? null : word);
      pos = end;
    }
  }
  if (stack.length !== 1) throw new Error(`unbalanced ( in ${raw.toString()}`);
  return root;
}

/** FETCH data by message sequence number, items keyed in upper case ("UID", "BODY[]<0>"). */
export function fetches(reply: Reply | Response[]): Map<number, Record<string, Value>> {
  const responses = Array.isArray(reply) ? reply : reply.untagged;
  const out = new Map<number, Record<string, Value>>();
  for (const response of responses) {
    if (response.kind !== 'untagged' || response.name !== 'FETCH') continue;
    const [, , items] = response.values as [string, string, Value[]];
    const record = out.get(response.number) ?? {};
    for (let i = 0; i + 1 < items.length; i += 2) record[String(items[i]).toUpperCase()] = items[i + 1]!;
    out.set(response.number, record);
  }
  return out;
}

/** The FETCH data of one message, failing when the server sent none. */
export function fetchOf(reply: Reply, seq: number): Record<string, Value> {
  const record = fetches(reply).get(seq);
  if (!record) throw new Error(`no FETCH for ${seq} in reply to ${reply.command}:\n${reply}`);
  return record;
}

/** A string or literal value as text. */
export function str(value: Value | undefined): string {
  if (value === null || value === undefined) throw new Error(`expected a string, got ${String(value)}`);
  if (Array.isArray(value)) throw new Error(`expected a string, got a list ${JSON.stringify(value)}`);
  return Buffer.isBuffer(value) ? value.toString('utf8') : value;
}

/** A string or literal value as bytes. */
export function bytes(value: Value | undefined): Buffer {
  if (Buffer.isBuffer(value)) return value;
  return Buffer.from(str(value), 'utf8');
}
