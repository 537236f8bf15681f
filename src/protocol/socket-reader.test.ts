// The socket line reader's edge cases, through a real socket pair: CRLF split between reads, a
// bare LF inside a line, an overlong line dropped and reported once, raw bytes and unread, the
// end of input, and a reset after which nothing read before counts.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SocketReader } from './socket-reader.js';

class Ended extends Error {}

describe('socket line reader', () => {
  let server: net.Server;
  const accepted: net.Socket[] = [];
  before(async () => {
    server = net.createServer((socket) => accepted.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(() => server.close());

  /** A connected pair: what the test writes on `peer`, the reader reads from `socket`. */
  async function pair(maxLine = 16): Promise<{ peer: net.Socket; reader: SocketReader; socket: net.Socket }> {
    const peer = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, localAddress: '127.0.0.2' });
    await new Promise((resolve) => peer.once('connect', resolve));
    while (accepted.length === 0) await sleep(5);
    const socket = accepted.shift()!;
    return { peer, socket, reader: new SocketReader(socket, { maxLine, onEnd: () => new Ended() }) };
  }

  it('reads lines whose CRLF is split between writes, and keeps a bare LF inside a line', async () => {
    const { peer, reader } = await pair();
    peer.write('ab\r');
    await sleep(20);
    peer.write('\ncd\nef\r\n');
    assert.equal(await reader.text(), 'ab');
    assert.equal(await reader.text(), 'cd\nef', 'a bare LF does not end a line: the caller refuses it');
    peer.destroy();
  });

  it('drops an overlong line once, however it arrives, and reads on after it', async () => {
    const { peer, reader } = await pair(8);
    peer.write('x'.repeat(30));
    await sleep(20);
    peer.write(`${'y'.repeat(30)}\r`);
    await sleep(20);
    peer.write('\nshort\r\n12345678\r\n123456789\r\nok\r\n');
    assert.equal(await reader.line(), undefined);
    assert.equal(await reader.text(), 'short');
    assert.equal(await reader.text(), '12345678', 'a line of exactly the limit passes');
    assert.equal(await reader.line(), undefined);
    assert.equal(await reader.text(), 'ok');
    peer.destroy();
  });

  it('hands out raw bytes, takes back what was read too far, and shows pipelined lines', async () => {
    const { peer, reader } = await pair();
    peer.write('DATA-BYTES\r\n.\r\nNEXT\r\nMORE\r\n');
    await sleep(20);
    const chunk = await reader.chunk();
    const end = chunk.indexOf('\r\n.\r\n') + 5;
    reader.unread(chunk.subarray(end));
    assert.deepEqual(reader.peekLines(5), ['NEXT', 'MORE']);
    assert.equal(reader.pending, true);
    assert.equal(await reader.text(), 'NEXT');
    assert.equal(await reader.text(), 'MORE');
    assert.equal(reader.pending, false);
    peer.destroy();
  });

  it('throws the given error at the end of input, after what came before it', async () => {
    const { peer, reader } = await pair();
    peer.end('last\r\npartial');
    assert.equal(await reader.text(), 'last');
    await assert.rejects(reader.line(), Ended);
  });

  it('forgets what the old socket sent after a reset (RFC 3207 4.2)', async () => {
    const { peer, reader, socket } = await pair();
    peer.write('STARTTLS\r\nINJECTED\r\n');
    assert.equal(await reader.text(), 'STARTTLS');
    await sleep(20);
    reader.detach();
    const second = await pair();
    second.reader.detach();
    reader.reset(second.socket);
    second.peer.write('EHLO again\r\n');
    assert.equal(await reader.text(), 'EHLO again');
    peer.destroy();
    socket.destroy();
    second.peer.destroy();
  });
});
