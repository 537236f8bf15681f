// The line framing's edge cases, once for every protocol: on bytes handed to it (both rules:
// CRLF only, and POP3's bare LF), then through a real socket pair: CRLF split between reads, a
// bare LF inside a line, an overlong line dropped and reported once, raw bytes and unread, the
// end of input (a close or a half-close), and a reset after which nothing read before counts.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LineFramer, SocketReader, TOO_LONG } from './socket-reader.js';

class Ended extends Error {}

/** Pushes each piece and takes the lines it completes; '<too-long>' for an overlong one. */
function frame(framer: LineFramer, ...pieces: string[]): string[] {
  const out: string[] = [];
  for (const piece of pieces) {
    framer.push(Buffer.from(piece, 'latin1'));
    for (let line = framer.next(); line !== undefined; line = framer.next()) out.push(line === TOO_LONG ? '<too-long>' : line.toString('latin1'));
  }
  return out;
}

describe('line framing', () => {
  it('ends lines at CRLF only, unless bare LFs end them too (POP3, RFC 1939 3)', () => {
    assert.deepEqual(frame(new LineFramer({ maxLine: 16 }), 'a\nb\r', '\nc\rd\r\n'), ['a\nb', 'c\rd']);
    assert.deepEqual(frame(new LineFramer({ maxLine: 16, bareLf: true }), 'STAT\nLI', 'ST 1\r', '\nc\rd\r\n\n'), ['STAT', 'LIST 1', 'c\rd', '']);
  });

  for (const bareLf of [false, true]) {
    it(`reports an overlong line once, as soon as it is over the limit, and holds no more than the limit (bareLf ${bareLf})`, () => {
      const framer = new LineFramer({ maxLine: 10, bareLf });
      assert.deepEqual(frame(framer, '0123456789\r'), [], 'the limit and a CR may wait for their LF');
      assert.deepEqual(frame(framer, '\n012345678901'), ['0123456789', '<too-long>'], 'reported before its end has come');
      for (let i = 0; i < 50; i++) {
        assert.deepEqual(frame(framer, 'x'.repeat(1000)), []);
        assert.ok(framer.held <= 11, `holds ${framer.held} bytes`);
      }
      assert.deepEqual(frame(framer, 'yyy\r', '\nNOOP\r\n01234567890\r\n'), ['NOOP', '<too-long>']);
    });
  }

  it('shows the complete lines held, up to an overlong one', () => {
    const framer = new LineFramer({ maxLine: 4, bareLf: true });
    framer.push(Buffer.from('ab\r\ncd\nlonger\nef\n'));
    assert.deepEqual(framer.peekLines(10), ['ab', 'cd']);
    assert.deepEqual(framer.peekLines(1), ['ab']);
  });
});

describe('socket line reader', () => {
  let server: net.Server;
  const accepted: net.Socket[] = [];
  const all: net.Socket[] = [];
  before(async () => {
    // allowHalfOpen, as the POP3 server: a peer's half-close ends the input, not the socket.
    server = net.createServer({ allowHalfOpen: true }, (socket) => {
      accepted.push(socket);
      all.push(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(() => {
    for (const socket of all) socket.destroy();
    server.close();
  });

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

  it('ends its input at a half-close, after the lines sent before it', async () => {
    const { peer, reader } = await pair();
    peer.end('QUIT\r\n');
    assert.equal(await reader.text(), 'QUIT');
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
