// A small authoritative DNS server for tests and benchmarks (dns-packet over UDP, and TCP on
// the same port number for truncated answers), on 127.0.0.1, port 0. It serves a zone given as
// records, answers NXDOMAIN/NODATA with the zone's SOA in the authority section (RFC 2308 3),
// can answer slowly (latencyMs) and drop a share of queries (dropRate, or dropNext for a test
// that wants exactly n drops), and counts the queries it saw per name and type.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server as TcpServer, type Socket } from 'node:net';
import * as packet from 'dns-packet';

export interface ZoneRecord {
  name: string;
  type: 'A' | 'AAAA' | 'MX' | 'TXT' | 'PTR' | 'CNAME';
  /** A/AAAA/PTR/CNAME: the text; MX: "preference exchange"; TXT: the string (split into 255-byte chunks). */
  data: string;
  ttl?: number;
}

export interface DnsServerOptions {
  records?: ZoneRecord[];
  /** Apex names this server is authoritative for; negative answers carry their SOA. Default: none. */
  zones?: string[];
  /** SOA MINIMUM (and the SOA's own TTL) of negative answers (RFC 2308 5). */
  negativeTtl?: number;
  latencyMs?: number;
  /** Share of UDP queries silently dropped (0..1). */
  dropRate?: number;
  /** Over UDP, answer with TC set and no records (the client must ask again over TCP). */
  truncateUdp?: boolean;
}

export interface TestDnsServer {
  port: number;
  /** "127.0.0.1:PORT", as config dns.servers takes it. */
  address: string;
  /** Queries received for (name, type), dropped ones included. */
  queries(name: string, type: string): number;
  totalQueries(): number;
  add(record: ZoneRecord): void;
  /** Drop the next n UDP queries, whatever they ask. */
  dropNext(n: number): void;
  options: DnsServerOptions;
  close(): Promise<void>;
}

function keyOf(name: string, type: string): string {
  return `${type} ${name.toLowerCase().replace(/\.$/, '')}`;
}

function txtChunks(text: string): Buffer[] {
  const bytes = Buffer.from(text, 'utf8');
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 255) chunks.push(bytes.subarray(i, i + 255));
  return chunks.length > 0 ? chunks : [Buffer.alloc(0)];
}

export async function startDnsServer(options: DnsServerOptions = {}): Promise<TestDnsServer> {
  const records = new Map<string, ZoneRecord[]>();
  const names = new Set<string>();
  const counts = new Map<string, number>();
  let total = 0;
  let dropping = 0;
  const add = (record: ZoneRecord) => {
    const key = keyOf(record.name, record.type);
    records.set(key, [...(records.get(key) ?? []), record]);
    names.add(record.name.toLowerCase().replace(/\.$/, ''));
  };
  for (const record of options.records ?? []) add(record);

  function answer(query: packet.DecodedPacket, truncate: boolean): Buffer {
    const question = query.questions?.[0];
    const base = { type: 'response' as const, id: query.id, questions: query.questions };
    if (!question) return packet.encode({ ...base, flags: packet.AUTHORITATIVE_ANSWER | 1 /* FORMERR */ });
    const name = question.name.toLowerCase().replace(/\.$/, '');
    if (truncate) return packet.encode({ ...base, flags: packet.AUTHORITATIVE_ANSWER | packet.TRUNCATED_RESPONSE });
    const found = records.get(keyOf(name, question.type)) ?? [];
    if (found.length > 0) {
      const answers = found.map((r) => {
        const ttl = r.ttl ?? 300;
        switch (r.type) {
          case 'MX': {
            const [preference, exchange] = r.data.split(/\s+/);
            return { type: 'MX' as const, name: r.name, ttl, data: { preference: Number(preference), exchange: exchange! } };
          }
          case 'TXT':
            return { type: 'TXT' as const, name: r.name, ttl, data: txtChunks(r.data) };
          default:
            return { type: r.type, name: r.name, ttl, data: r.data };
        }
      });
      return packet.encode({ ...base, flags: packet.AUTHORITATIVE_ANSWER, answers: answers as packet.Answer[] });
    }
    // RFC 2308 2.1/2.2: NXDOMAIN when nothing at all is at the name, NODATA (NOERROR, empty) otherwise.
    const rcode = names.has(name) ? 0 : 3;
    const zone = (options.zones ?? []).find((z) => name === z || name.endsWith(`.${z}`));
    const negative = options.negativeTtl ?? 60;
    const authorities: packet.Answer[] = zone
      ? [
          {
            type: 'SOA',
            name: zone,
            ttl: negative,
            data: { mname: `ns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: negative },
          },
        ]
      : [];
    return packet.encode({ ...base, flags: packet.AUTHORITATIVE_ANSWER | rcode, authorities });
  }

  function count(query: packet.DecodedPacket): void {
    const question = query.questions?.[0];
    if (!question) return;
    const key = keyOf(question.name, question.type);
    counts.set(key, (counts.get(key) ?? 0) + 1);
    total++;
  }

  let closed = false;
  const later = (fn: () => void) => {
    if (options.latencyMs) setTimeout(() => closed || fn(), options.latencyMs);
    else fn();
  };

  const udp: UdpSocket = createSocket('udp4');
  udp.on('message', (message, remote) => {
    let query: packet.DecodedPacket;
    try {
      query = packet.decode(message);
    } catch {
      return;
    }
    count(query);
    if (dropping > 0) {
      dropping--;
      return;
    }
    if (options.dropRate && Math.random() < options.dropRate) return;
    const reply = answer(query, options.truncateUdp === true);
    later(() => udp.send(reply, remote.port, remote.address));
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(0, '127.0.0.1', () => resolve());
  });
  const port = udp.address().port;

  // TCP on the same port number (RFC 7766): length-prefixed queries, one answer each.
  const sockets = new Set<Socket>();
  const tcp: TcpServer | undefined = await new Promise((resolve) => {
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
      let buffer = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        while (buffer.length >= 2 && buffer.length >= 2 + buffer.readUInt16BE(0)) {
          const length = buffer.readUInt16BE(0);
          let query: packet.DecodedPacket;
          try {
            query = packet.decode(buffer.subarray(2, 2 + length));
          } catch {
            socket.destroy();
            return;
          }
          buffer = buffer.subarray(2 + length);
          count(query);
          const reply = answer(query, false);
          const framed = Buffer.alloc(2 + reply.length);
          framed.writeUInt16BE(reply.length, 0);
          reply.copy(framed, 2);
          later(() => socket.write(framed));
        }
      });
    });
    server.once('error', () => resolve(undefined)); // the TCP port is taken: UDP only
    server.listen(port, '127.0.0.1', () => resolve(server));
  });

  return {
    port,
    address: `127.0.0.1:${port}`,
    options,
    queries: (name, type) => counts.get(keyOf(name, type)) ?? 0,
    totalQueries: () => total,
    add,
    dropNext(n) {
      dropping = n;
    },
    async close() {
      closed = true;
      udp.close();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => (tcp ? tcp.close(() => resolve()) : resolve()));
    },
  };
}
