// The first line of a connection (a PROXY header, a gateway proof), through real sockets: the
// bytes after it are left for the protocol however the writes are cut; an endless line, a close
// and silence are refused, each with its own error.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { readFirstLine, type FirstLineTrouble } from './first-line.js';

class Trouble extends Error {}

describe('first line of a connection', () => {
  let server: net.Server;
  const accepted: net.Socket[] = [];
  before(async () => {
    server = net.createServer((socket) => accepted.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(() => server.close());

  async function pair(): Promise<{ peer: net.Socket; socket: net.Socket }> {
    const peer = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, localAddress: '127.0.0.2' });
    await new Promise((resolve) => peer.once('connect', resolve));
    while (accepted.length === 0) await sleep(5);
    return { peer, socket: accepted.shift()! };
  }

  const read = (socket: net.Socket, timeoutMs = 5_000) => readFirstLine(socket, { maxBytes: 20, timeoutMs, error: (trouble: FirstLineTrouble) => new Trouble(trouble) });

  it('returns the line and leaves what follows it, cut anywhere, for the protocol', async () => {
    const { peer, socket } = await pair();
    const line = read(socket);
    peer.write('HELLO the');
    await sleep(20);
    peer.write(' node\r');
    await sleep(20);
    peer.write('\nCAPA\r\n');
    assert.equal((await line).toString(), 'HELLO the node');
    const next = new Promise<Buffer>((resolve) => socket.once('data', resolve));
    socket.resume();
    assert.equal((await next).toString(), 'CAPA\r\n');
    peer.destroy();
  });

  it('refuses a line longer than the limit, with or without its CRLF, a close before it, and silence', async () => {
    for (const [send, trouble] of [
      ['x'.repeat(21), 'too-long'],
      [`${'x'.repeat(19)}\r\n`, 'too-long'],
      ['half a line', 'closed'],
    ] as const) {
      const { peer, socket } = await pair();
      const line = read(socket);
      if (trouble === 'closed') peer.end(send);
      else peer.write(send);
      await assert.rejects(line, (error: Error) => error instanceof Trouble && error.message === trouble, send);
      peer.destroy();
    }
    const { peer, socket } = await pair();
    await assert.rejects(read(socket, 50), (error: Error) => error.message === 'timeout');
    peer.destroy();
  });

  it('takes a line of exactly the limit, CRLF included', async () => {
    const { peer, socket } = await pair();
    const line = read(socket);
    peer.write(`${'x'.repeat(18)}\r\n`);
    assert.equal((await line).toString(), 'x'.repeat(18));
    peer.destroy();
  });
});
