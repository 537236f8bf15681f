// Issue 17, row 2: after COMPRESS DEFLATE, 3 MB of deflate that inflates to 2 GiB of
// "a NOOP" lines used to be inflated as fast as it came, whatever the session could run, and
// kept inflating after the client left (RSS 159 MB -> 3.3 GB). Now the inflater runs only as
// fast as commands are taken, pauses the socket while full, and goes with the connection.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import { assertNoopPrompt, bystander, note, MB, PASSWORD, RSS_GROWTH_LIMIT, rssSampler, startQuill, USER, type QuillProcess } from './kit.js';

/** Raw deflate of `blocks` MiB of "a NOOP\r\n": one block, then the same compressed block again and again. */
async function noopBomb(blocks: number): Promise<Buffer[]> {
  const text = Buffer.from('a NOOP\r\n'.repeat(128 * 1024));
  const deflate = zlib.createDeflateRaw({ level: 9, memLevel: 9 });
  let out: Buffer[] = [];
  deflate.on('data', (chunk: Buffer) => out.push(chunk));
  const block = async (): Promise<Buffer> => {
    deflate.write(text);
    await new Promise<void>((resolve) => deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve()));
    const bytes = Buffer.concat(out);
    out = [];
    return bytes;
  };
  const first = await block();
  const again = await block();
  // With the window full of the same text, every later block compresses to the same bytes.
  assert.ok((await block()).equals(again));
  deflate.close();
  return [first, ...Array.from({ length: blocks - 1 }, () => again)];
}

describe('COMPRESS DEFLATE with a decompression bomb (issue 17, row 2)', () => {
  let quill: QuillProcess;
  before(async () => {
    quill = await startQuill();
  });
  after(() => quill.stop());

  it('inflates only as fast as commands run, frees it all on disconnect, and other sessions go on', async () => {
    const bomb = await noopBomb(2048); // 2 GiB inflated
    const compressed = bomb.reduce((sum, b) => sum + b.length, 0);
    assert.ok(compressed < 4 * MB, `${compressed} bytes`);
    const other = await bystander(quill.imapPort);
    const start = quill.rss();
    const sampler = rssSampler(quill);
    const socket = net.connect(quill.imapPort, '127.0.0.1');
    socket.on('error', () => undefined);
    let received = '';
    let answered = 0;
    const onText = (data: Buffer): void => void (received += data.toString('latin1'));
    socket.on('data', onText);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const waitFor = async (pattern: RegExp): Promise<void> => {
      for (let i = 0; i < 500 && !pattern.test(received); i++) await sleep(10);
      assert.match(received, pattern);
    };
    try {
      socket.write(`l1 LOGIN ${USER} ${PASSWORD}\r\n`);
      await waitFor(/l1 OK/);
      socket.write('z1 COMPRESS DEFLATE\r\n');
      await waitFor(/z1 OK/);
      // From here the server's responses are deflate too: counted, to see the commands run.
      socket.off('data', onText);
      const inflate = zlib.createInflateRaw();
      inflate.on('data', (chunk: Buffer) => (answered += chunk.toString('latin1').split('a OK').length - 1));
      inflate.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => inflate.write(chunk));
      const until = performance.now() + 4000;
      let sent = 0;
      for (const [i, block] of bomb.entries()) {
        if (performance.now() > until || socket.destroyed) break;
        if (i % 64 === 0) {
          if (quill.rss() - start > RSS_GROWTH_LIMIT) break; // the old server: stop feeding it
          await sleep(1); // the bystander's answers are read meanwhile
        }
        if (!socket.write(block)) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), sleep(until - performance.now())]);
        sent += block.length;
      }
      // Sent, or what the server took: it runs the NOOPs meanwhile, and so gets to the rest.
      await sleep(Math.max(1500, until - performance.now() - 2000));
      const peak = sampler.stop();
      note(`RSS ${Math.round(start / MB)} MB at the start, ${Math.round(peak / MB)} MB at the peak`);
      assert.ok(peak - start < RSS_GROWTH_LIMIT, `RSS grew by ${Math.round((peak - start) / MB)} MB with ${sent} bytes sent`);
      assertNoopPrompt(await other.stop());
      assert.ok(answered > 10, `${answered} of the inflated NOOPs answered`);
    } finally {
      await other.stop();
      sampler.stop();
      socket.destroy();
    }
    // Gone with the connection: nothing goes on inflating (the old server grew by GBs here).
    await sleep(1000);
    const afterClose = quill.rss();
    await sleep(1000);
    const later = quill.rss();
    note(`RSS 1 s after the disconnect ${Math.round(afterClose / MB)} MB, 2 s after ${Math.round(later / MB)} MB`);
    assert.ok(later - start < RSS_GROWTH_LIMIT, `RSS after the disconnect: +${Math.round((later - start) / MB)} MB`);
    assert.ok(later - afterClose < 20 * MB, `RSS still growing after the disconnect: ${Math.round(afterClose / MB)} -> ${Math.round(later / MB)} MB`);
  });
});
