// The one DNS resolver of a process: inbound authentication (SPF, DKIM, DMARC), reverse lookups,
// outbound MX/A/AAAA and DKIM keys all ask through it. Queries go over UDP to the configured
// servers (RFC 1035 4.2.1), over TCP when an answer comes back truncated (RFC 7766 5), and
// answers are kept by their TTL (RFC 1035 3.2.1); "no such name" and "no such record" are kept
// too, for the SOA's negative TTL (RFC 2308 5), so a sender domain without DMARC costs one
// query, not one per message. Identical questions in flight share one query. The cache is
// bounded (least recently used out first).
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIP, connect as tcpConnect } from 'node:net';
import { randomInt } from 'node:crypto';
import * as packet from 'dns-packet';

/** What every DNS consumer needs; the shapes are node:dns's, so tests may hand in a fake zone. */
export interface Resolver {
  resolveMx(domain: string): Promise<{ exchange: string; priority: number }[]>;
  resolve4(host: string): Promise<string[]>;
  resolve6(host: string): Promise<string[]>;
  resolveTxt(name: string): Promise<string[][]>;
  /** PTR names of an address (optional: a fake zone without PTR records leaves it out). */
  reverse?(ip: string): Promise<string[]>;
  /** PTR records at a name already in in-addr.arpa/ip6.arpa form (SPF's ptr mechanism). */
  resolvePtr?(name: string): Promise<string[]>;
  /**
   * How much longer (ms) the answer a lookup just gave stays cached here, positive or negative;
   * 0 when it is not. Lets a copy of the answer elsewhere (the judge threads) live no longer.
   */
  cachedMs?(method: CachedMethod, name: string): number;
  /** Counts answers given from such copies as cache hits (metrics). */
  countCopiedHits?(hits: number, negativeHits: number): void;
}

/** The lookups whose answers the cache keeps by name. */
export type CachedMethod = 'resolveMx' | 'resolve4' | 'resolve6' | 'resolveTxt' | 'resolvePtr';
const METHOD_TYPES: Record<CachedMethod, Rtype> = { resolveMx: 'MX', resolve4: 'A', resolve6: 'AAAA', resolveTxt: 'TXT', resolvePtr: 'PTR' };

export interface DnsOptions {
  /** "host" or "host:port" ("[v6]:port"); default: the nameservers in /etc/resolv.conf. */
  servers?: string[];
  /** How long one attempt waits for its answer. */
  timeoutMs: number;
  /** Attempts after the first, each to the next server in turn. */
  retries: number;
  /** Cached answers (positive and negative) kept at most. */
  cacheSize: number;
  /** Negative TTL when a negative answer carries no SOA (RFC 2308 5 leaves that open). */
  negativeTtlSeconds: number;
  /** Cap on any cached TTL (RFC 2308 5 suggests 3 hours for negative answers). */
  maxTtlSeconds: number;
  /** Hosts file consulted before PTR queries, as getnameinfo does. */
  hostsFile?: string;
}

export const DNS_DEFAULTS: DnsOptions = { timeoutMs: 1000, retries: 2, cacheSize: 10000, negativeTtlSeconds: 300, maxTtlSeconds: 86400 };

export interface DnsCounters {
  /** Counts one event: hit, negative_hit, miss, shared, timeout, error, truncated. */
  inc(result: string): void;
}

type Rtype = 'A' | 'AAAA' | 'MX' | 'TXT' | 'PTR' | 'SOA' | 'CNAME' | 'NS' | 'SRV' | 'TLSA';

/** A node:dns-style error: mailauth and the router read `code`. */
export class DnsError extends Error {
  constructor(
    readonly code: 'ENOTFOUND' | 'ENODATA' | 'ETIMEOUT' | 'ESERVFAIL' | 'EREFUSED' | 'EBADRESP' | 'ECANCELLED',
    readonly hostname: string,
    rrtype: string,
  ) {
    super(`query${rrtype} ${code} ${hostname}`);
  }
}

/** One resource record as dns-packet decodes it (OPT records never reach the answer section). */
interface Rec {
  type: string;
  ttl?: number;
  data: unknown;
}

interface Entry {
  expires: number;
  answers?: Rec[];
  error?: 'ENOTFOUND' | 'ENODATA';
}

interface Server {
  address: string;
  port: number;
  family: 4 | 6;
}

interface Pending {
  name: string;
  type: Rtype;
  server: Server;
  done(response: packet.DecodedPacket & { rcode?: string }): void;
}

export function parseServer(spec: string): Server {
  let address = spec;
  let port = 53;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(spec);
  if (bracket) {
    address = bracket[1]!;
    if (bracket[2]) port = Number(bracket[2]);
  } else if (isIP(spec) !== 6) {
    const colon = spec.lastIndexOf(':');
    if (colon > 0) {
      address = spec.slice(0, colon);
      port = Number(spec.slice(colon + 1));
    }
  }
  const family = isIP(address);
  if (family === 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`not a DNS server address: ${spec}`);
  return { address, port, family: family as 4 | 6 };
}

/** The nameservers of /etc/resolv.conf (resolv.conf(5)); 127.0.0.1 when it names none. */
export function systemServers(file = '/etc/resolv.conf'): string[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // no file: the local resolver, as glibc assumes
  }
  const servers = [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]!.replace(/%.*$/, '')).filter((s) => isIP(s) !== 0);
  return servers.length > 0 ? servers.map((s) => (isIP(s) === 6 ? `[${s}]:53` : s)) : ['127.0.0.1'];
}

/** Address -> first name, from a hosts file (hosts(5)). */
function readHosts(file: string): Map<string, string> {
  const map = new Map<string, string>();
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return map;
  }
  for (const raw of text.split('\n')) {
    const fields = raw.replace(/#.*/, '').trim().split(/\s+/);
    if (fields.length < 2 || isIP(fields[0]!) === 0) continue;
    if (!map.has(fields[0]!)) map.set(fields[0]!, fields[1]!);
  }
  return map;
}

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.');
}

/** The PTR name of an address (RFC 1035 3.5; RFC 3596 2.5). */
export function reverseName(ip: string): string {
  const v4 = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
  if (isIP(v4) === 4) return `${v4.split('.').reverse().join('.')}.in-addr.arpa`;
  if (isIP(v4) !== 6) throw new DnsError('ENOTFOUND', ip, 'PTR');
  // Expand :: and every group to four digits, then one label per nibble.
  const [head, tail] = v4.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const nibbles = groups.map((g) => g.padStart(4, '0')).join('');
  return `${[...nibbles].reverse().join('.')}.ip6.arpa`;
}

const noCounters: DnsCounters = { inc() {} };

export class CachingResolver implements Resolver {
  private readonly servers: Server[];
  private readonly cache = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Entry>>();
  private readonly pending = new Map<number, Pending>();
  private readonly sockets: { 4?: UdpSocket; 6?: UdpSocket } = {};
  private hosts: Map<string, string> | undefined;
  private closed = false;

  constructor(
    private readonly options: DnsOptions = DNS_DEFAULTS,
    private readonly counters: DnsCounters = noCounters,
    private readonly now: () => number = Date.now,
  ) {
    this.servers = (options.servers && options.servers.length > 0 ? options.servers : systemServers()).map(parseServer);
  }

  async resolve4(host: string): Promise<string[]> {
    return (await this.answers(host, 'A')).map((a) => String(a.data));
  }

  async resolve6(host: string): Promise<string[]> {
    return (await this.answers(host, 'AAAA')).map((a) => String(a.data));
  }

  async resolveMx(domain: string): Promise<{ exchange: string; priority: number }[]> {
    return (await this.answers(domain, 'MX')).map((a) => {
      const mx = a.data as { preference?: number; exchange: string };
      return { exchange: mx.exchange, priority: mx.preference ?? 0 };
    });
  }

  async resolveTxt(name: string): Promise<string[][]> {
    return (await this.answers(name, 'TXT')).map((a) => {
      const data = a.data as Buffer | Buffer[] | string | string[];
      return (Array.isArray(data) ? data : [data]).map((chunk) => (typeof chunk === 'string' ? chunk : chunk.toString('utf8')));
    });
  }

  async resolvePtr(name: string): Promise<string[]> {
    return (await this.answers(name, 'PTR')).map((a) => String(a.data));
  }

  /** Hosts file first, loopback never asked of DNS, then PTR (as getnameinfo does). */
  async reverse(ip: string): Promise<string[]> {
    this.hosts ??= readHosts(this.options.hostsFile ?? '/etc/hosts');
    const bare = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
    const listed = this.hosts.get(bare);
    if (listed) return [listed];
    if (isLoopback(bare)) return [];
    return this.resolvePtr(reverseName(bare));
  }

  cachedMs(method: CachedMethod, name: string): number {
    const type = METHOD_TYPES[method];
    const entry = type && this.cache.get(`${type} ${name.toLowerCase().replace(/\.$/, '')}`);
    return entry ? Math.max(0, entry.expires - this.now()) : 0;
  }

  countCopiedHits(hits: number, negativeHits: number): void {
    for (let i = 0; i < hits; i++) this.counters.inc('hit');
    for (let i = 0; i < negativeHits; i++) this.counters.inc('negative_hit');
  }

  /** The records of one type at a name: from the cache, a query in flight, or a new query. */
  async answers(name: string, type: Rtype): Promise<Rec[]> {
    const lower = name.toLowerCase().replace(/\.$/, '');
    const key = `${type} ${lower}`;
    const cached = this.cache.get(key);
    let entry: Entry;
    if (cached && cached.expires > this.now()) {
      // Least recently used goes first: a hit moves the entry to the end.
      this.cache.delete(key);
      this.cache.set(key, cached);
      this.counters.inc(cached.error ? 'negative_hit' : 'hit');
      entry = cached;
    } else {
      if (cached) this.cache.delete(key);
      let shared = this.inflight.get(key);
      if (shared) this.counters.inc('shared');
      else {
        this.counters.inc('miss');
        shared = this.lookup(lower, type).finally(() => this.inflight.delete(key));
        this.inflight.set(key, shared);
      }
      entry = await shared;
    }
    if (entry.error) throw new DnsError(entry.error, name, type);
    return entry.answers ?? [];
  }

  private remember(key: string, entry: Entry): void {
    if (entry.expires <= this.now()) return;
    this.cache.delete(key);
    this.cache.set(key, entry);
    while (this.cache.size > this.options.cacheSize) this.cache.delete(this.cache.keys().next().value!);
  }

  private async lookup(name: string, type: Rtype): Promise<Entry> {
    const response = await this.ask(name, type);
    const rcode = (response as { rcode?: string }).rcode ?? 'NOERROR';
    const answers = ((response.answers ?? []) as Rec[]).filter((a) => a.type === type);
    const key = `${type} ${name}`;
    if (rcode === 'NOERROR' && answers.length > 0) {
      const ttl = Math.min(this.options.maxTtlSeconds, ...answers.map((a) => a.ttl ?? 0));
      const entry: Entry = { expires: this.now() + ttl * 1000, answers };
      this.remember(key, entry);
      return entry;
    }
    if (rcode === 'NOERROR' || rcode === 'NXDOMAIN') {
      // RFC 2308 5: the negative TTL is the SOA record's own TTL capped by its MINIMUM field.
      const soa = (response.authorities ?? []).find((a) => a.type === 'SOA') as { ttl?: number; data: { minimum?: number } } | undefined;
      const ttl = Math.min(this.options.maxTtlSeconds, soa ? Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0) : this.options.negativeTtlSeconds);
      const entry: Entry = { expires: this.now() + ttl * 1000, error: rcode === 'NXDOMAIN' ? 'ENOTFOUND' : 'ENODATA' };
      this.remember(key, entry);
      return entry;
    }
    this.counters.inc('error');
    // SERVFAIL and the like are not cached (RFC 2308 7.1 allows 5 minutes; a retry is cheaper than a stale failure).
    throw new DnsError(rcode === 'REFUSED' ? 'EREFUSED' : 'ESERVFAIL', name, type);
  }

  /** One question over UDP with timeout and retries, then TCP if the answer was truncated. */
  private async ask(name: string, type: Rtype): Promise<packet.DecodedPacket> {
    const attempts = this.options.retries + 1;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (this.closed) throw new DnsError('ECANCELLED', name, type);
      const server = this.servers[attempt % this.servers.length]!;
      const response = await this.udp(name, type, server);
      if (!response) continue;
      if (response.flag_tc) {
        this.counters.inc('truncated');
        return this.tcp(name, type, server);
      }
      return response;
    }
    this.counters.inc('timeout');
    throw new DnsError('ETIMEOUT', name, type);
  }

  private socket(family: 4 | 6): UdpSocket {
    if (this.closed) throw new DnsError('ECANCELLED', '', '');
    let socket = this.sockets[family];
    if (socket) return socket;
    socket = createSocket(family === 4 ? 'udp4' : 'udp6');
    socket.on('message', (message, remote) => this.received(message, remote.address, remote.port));
    socket.on('error', () => undefined);
    socket.unref();
    this.sockets[family] = socket;
    return socket;
  }

  private received(message: Buffer, address: string, port: number): void {
    let response: packet.DecodedPacket;
    try {
      response = packet.decode(message);
    } catch {
      return; // garbage: the attempt times out
    }
    const pending = response.id === undefined ? undefined : this.pending.get(response.id);
    // Only the server asked, answering the question asked (RFC 5452 4.3), is believed.
    const question = response.questions?.[0];
    if (!pending || pending.server.address !== address || pending.server.port !== port) return;
    if (!question || question.type !== pending.type || question.name.toLowerCase() !== pending.name) return;
    pending.done(response);
  }

  private newId(): number {
    for (;;) {
      const id = randomInt(65536);
      if (!this.pending.has(id)) return id;
    }
  }

  private query(name: string, type: Rtype, id: number): packet.Packet {
    return { type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] };
  }

  private udp(name: string, type: Rtype, server: Server): Promise<packet.DecodedPacket | undefined> {
    return new Promise((resolve) => {
      const id = this.newId();
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(undefined);
      }, this.options.timeoutMs);
      this.pending.set(id, {
        name,
        type,
        server,
        done: (response) => {
          clearTimeout(timer);
          this.pending.delete(id);
          resolve(response);
        },
      });
      const failed = () => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(undefined);
      };
      try {
        this.socket(server.family).send(packet.encode(this.query(name, type, id)), server.port, server.address, (error) => error && failed());
      } catch {
        failed(); // closed meanwhile: the next attempt sees it
      }
    });
  }

  private tcp(name: string, type: Rtype, server: Server): Promise<packet.DecodedPacket> {
    return new Promise((resolve, reject) => {
      const id = this.newId();
      const socket = tcpConnect(server.port, server.address);
      let buffer = Buffer.alloc(0);
      const fail = () => {
        socket.destroy();
        reject(new DnsError('ETIMEOUT', name, type));
      };
      socket.setTimeout(this.options.timeoutMs * 2, fail);
      socket.once('error', fail);
      socket.once('connect', () => socket.write(packet.streamEncode(this.query(name, type, id))));
      socket.on('data', (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        if (buffer.length > 65537) return fail();
        if (buffer.length < 2 || buffer.length < 2 + buffer.readUInt16BE(0)) return;
        socket.destroy();
        try {
          const response = packet.decode(buffer.subarray(2, 2 + buffer.readUInt16BE(0)));
          if (response.id !== id) throw new Error('wrong id');
          resolve(response);
        } catch {
          reject(new DnsError('EBADRESP', name, type));
        }
      });
    });
  }

  /** Entries in the cache (for tests and metrics). */
  get size(): number {
    return this.cache.size;
  }

  close(): void {
    this.closed = true;
    for (const family of [4, 6] as const) {
      this.sockets[family]?.close();
      delete this.sockets[family];
    }
  }
}

/**
 * A view of `resolver` whose lookups end at `deadline` (ms since the epoch): past it, or when an
 * answer would arrive later, a lookup fails with ETIMEOUT, which SPF, DKIM and DMARC report as
 * temperror (RFC 7208 2.6.6, RFC 6376 6.1.2, RFC 7489 6.6.3).
 */
export function withDeadline(resolver: Resolver, deadline: number, now: () => number = Date.now): Resolver {
  const bounded =
    <A extends unknown[], T>(fn: (...args: A) => Promise<T>, type: string) =>
    (...args: A): Promise<T> => {
      const left = deadline - now();
      if (left <= 0) return Promise.reject(new DnsError('ETIMEOUT', String(args[0]), type));
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new DnsError('ETIMEOUT', String(args[0]), type)), left);
        fn(...args).then(
          (value) => {
            clearTimeout(timer);
            resolve(value);
          },
          (error: unknown) => {
            clearTimeout(timer);
            reject(error);
          },
        );
      });
    };
  return {
    resolveMx: bounded((d: string) => resolver.resolveMx(d), 'Mx'),
    resolve4: bounded((h: string) => resolver.resolve4(h), 'A'),
    resolve6: bounded((h: string) => resolver.resolve6(h), 'Aaaa'),
    resolveTxt: bounded((n: string) => resolver.resolveTxt(n), 'Txt'),
    reverse: resolver.reverse ? bounded((ip: string) => resolver.reverse!(ip), 'Ptr') : undefined,
    resolvePtr: resolver.resolvePtr ? bounded((name: string) => resolver.resolvePtr!(name), 'Ptr') : undefined,
  };
}
