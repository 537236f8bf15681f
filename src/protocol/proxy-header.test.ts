// PROXY v1 headers: what a gateway writes, what a node reads, and what it refuses.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { fromTrustedGateway, parseProxyLine, proxyLine, readProxyHeader } from './proxy-header.js';

/** A server that reads a PROXY header and then echoes the first protocol bytes it gets. */
async function withServer(handle: (socket: net.Socket) => Promise<void>, run: (port: number) => Promise<void>): Promise<void> {
  const server = net.createServer((socket) => void handle(socket).catch(() => socket.destroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  try {
    await run((server.address() as net.AddressInfo).port);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

function exchange(port: number, send: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(send));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

describe('PROXY protocol v1', () => {
  it('writes the client and local address of a socket', () => {
    assert.equal(proxyLine({ remoteAddress: '::ffff:203.0.113.7', remotePort: 51234, localAddress: '::ffff:192.0.2.1', localPort: 25 }), 'PROXY TCP4 203.0.113.7 192.0.2.1 51234 25\r\n');
    assert.equal(proxyLine({ remoteAddress: '2001:db8::7', remotePort: 1, localAddress: '2001:db8::1', localPort: 993 }), 'PROXY TCP6 2001:db8::7 2001:db8::1 1 993\r\n');
    assert.equal(proxyLine({ remoteAddress: undefined, remotePort: undefined, localAddress: undefined, localPort: undefined }), 'PROXY UNKNOWN\r\n');
  });

  it('parses good lines and refuses bad ones', () => {
    assert.deepEqual(parseProxyLine('PROXY TCP4 203.0.113.7 192.0.2.1 51234 25'), { remoteAddress: '203.0.113.7', remotePort: 51234 });
    assert.equal(parseProxyLine('PROXY UNKNOWN'), undefined);
    for (const bad of ['EHLO x', 'PROXY TCP4 1.2.3.4 5.6.7.8 99999 25', 'PROXY TCP4 evil 5.6.7.8 1 2', 'PROXY TCP4 1.2.3.4', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2']) {
      assert.throws(() => parseProxyLine(bad), /PROXY/, bad);
    }
  });

  it('reads the header off a socket and leaves the following bytes for the protocol', async () => {
    await withServer(
      async (socket) => {
        const proxied = await readProxyHeader(socket);
        socket.once('data', (chunk: Buffer) => socket.end(`${proxied?.remoteAddress}:${proxied?.remotePort} said ${chunk.toString()}`));
        socket.resume();
      },
      async (port) => assert.equal(await exchange(port, 'PROXY TCP4 198.51.100.9 192.0.2.1 4242 110\r\nUSER bob\r\n'), '198.51.100.9:4242 said USER bob\r\n'),
    );
  });

  it('refuses a connection that does not start with a header, or sends an endless one', async () => {
    await withServer(
      async (socket) => {
        try {
          await readProxyHeader(socket, 2_000);
          socket.end('accepted\r\n');
        } catch (error) {
          socket.end(`refused: ${(error as Error).message}\r\n`);
        }
      },
      async (port) => {
        assert.match(await exchange(port, 'EHLO spoofer\r\n'), /^refused: not a PROXY header/);
        assert.match(await exchange(port, 'PROXY ' + 'x'.repeat(200)), /^refused: PROXY header too long/);
      },
    );
  });

  it('trusts only the listed gateways', () => {
    assert.ok(fromTrustedGateway('::ffff:10.0.0.5', ['10.0.0.5']));
    assert.ok(!fromTrustedGateway('10.0.0.6', ['10.0.0.5']));
    assert.ok(!fromTrustedGateway(undefined, ['10.0.0.5']));
  });
});
