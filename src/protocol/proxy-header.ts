// The PROXY protocol, version 1 (the text form of HAProxy's spec, which smtp-server also
// reads): a gateway starts each connection to a node with one line naming the real client,
//   PROXY TCP4 203.0.113.7 192.0.2.1 51234 25\r\n
// and a node believes it only from the gateways it trusts.
import type { Socket } from 'node:net';
import { readFirstLine, type FirstLineTrouble } from './first-line.js';

/** The longest v1 header, CRLF included (spec 2.1). */
const MAX_V1_BYTES = 107;

export interface ProxiedAddress {
  remoteAddress: string;
  remotePort: number;
}

/** The header that names no client: the node keeps the connection's own address (the gateway's). */
export const PROXY_UNKNOWN = 'PROXY UNKNOWN\r\n';

/** The line a gateway sends for a client socket. */
export function proxyLine(client: Pick<Socket, 'remoteAddress' | 'remotePort' | 'localAddress' | 'localPort'>): string {
  const src = plainAddress(client.remoteAddress);
  const dst = plainAddress(client.localAddress);
  if (!src || !dst || client.remotePort === undefined || client.localPort === undefined) return PROXY_UNKNOWN;
  const family = src.includes(':') || dst.includes(':') ? 'TCP6' : 'TCP4';
  if (family === 'TCP6' && !(src.includes(':') && dst.includes(':'))) return PROXY_UNKNOWN;
  return `PROXY ${family} ${src} ${dst} ${client.remotePort} ${client.localPort}\r\n`;
}

function plainAddress(address: string | undefined): string | undefined {
  if (!address) return undefined;
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export class ProxyHeaderError extends Error {}

/** Parses one header line (without CRLF); undefined for PROXY UNKNOWN (keep the socket's own address). */
export function parseProxyLine(line: string): ProxiedAddress | undefined {
  const parts = line.split(' ');
  if (parts[0] !== 'PROXY') throw new ProxyHeaderError('not a PROXY header');
  if (parts[1] === 'UNKNOWN') return undefined;
  if ((parts[1] !== 'TCP4' && parts[1] !== 'TCP6') || parts.length !== 6) throw new ProxyHeaderError('malformed PROXY header');
  const port = Number(parts[4]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ProxyHeaderError('bad port in PROXY header');
  const address = parts[2]!;
  const valid = parts[1] === 'TCP4' ? /^\d{1,3}(\.\d{1,3}){3}$/.test(address) : /^[0-9a-fA-F:.]+$/.test(address);
  if (!valid) throw new ProxyHeaderError('bad address in PROXY header');
  return { remoteAddress: address, remotePort: port };
}

/**
 * Reads the header from the start of a socket; bytes after it are put back for the protocol.
 * Rejects on a malformed header, on more than 107 bytes without CRLF, or after timeoutMs.
 * The socket is left paused: the protocol attaches its reader and calls resume().
 */
export async function readProxyHeader(socket: Socket, timeoutMs = 5_000): Promise<ProxiedAddress | undefined> {
  const line = await readFirstLine(socket, { maxBytes: MAX_V1_BYTES, timeoutMs, error: (trouble) => new ProxyHeaderError(PROXY_TROUBLE[trouble]) });
  return parseProxyLine(line.toString('latin1'));
}

const PROXY_TROUBLE: Record<FirstLineTrouble, string> = {
  'too-long': 'PROXY header too long',
  closed: 'connection closed before the PROXY header',
  timeout: 'no PROXY header in time',
};

/** Whether connections from this address must start with a PROXY header. */
export function fromTrustedGateway(remoteAddress: string | undefined, trusted: readonly string[]): boolean {
  const address = plainAddress(remoteAddress);
  return address !== undefined && trusted.some((t) => plainAddress(t) === address);
}
