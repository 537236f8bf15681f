// Issue 17, row 3: one APPEND carrying 15 literals of 20 MB used to be buffered whole before it
// was refused (+300 MB per connection). Now the literals of one command are capped in all
// (APPEND: one message, limits.messageSize, plus imap.commandLiteralBytes): a synchronizing
// literal past the cap gets NO [TOOBIG] instead of "+", a non-synchronizing one is dropped
// unread or the connection closed; the node's memory stays flat and other sessions go on.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { assertNoopPrompt, bystander, note, login, MB, PASSWORD, RSS_GROWTH_LIMIT, rssSampler, startQuill, USER, within, type QuillProcess } from './kit.js';

const LITERAL = 20 * MB;
const LITERALS = 15;

describe('APPEND with 15 literals of 20 MB (issue 17, row 3)', () => {
  let quill: QuillProcess;
  const chunk = Buffer.alloc(LITERAL, 'x');
  before(async () => {
    quill = await startQuill();
  });
  after(() => quill.stop());

  it('refuses the second synchronizing literal before asking for it', async () => {
    const client = await login(quill.imapPort);
    const other = await bystander(quill.imapPort);
    const start = quill.rss();
    const sampler = rssSampler(quill);
    try {
      // Three times over, for the bystander to see enough of it.
      for (const tag of ['a1', 'a2', 'a3']) {
        client.write(`${tag} APPEND INBOX {${LITERAL}}\r\n`);
        assert.match(await client.readLine(), /^\+ /);
        client.write(chunk);
        for (let i = 1; i < LITERALS; i++) {
          client.write(` {${LITERAL}}\r\n`);
          const answer = await within(5000, 'the next literal', client.readLine());
          if (answer.startsWith('+')) {
            // What the old server did: ask for every one of them and buffer it.
            if (quill.rss() - start > RSS_GROWTH_LIMIT) break;
            client.write(chunk);
            continue;
          }
          assert.match(answer, new RegExp(`^${tag} NO \\[TOOBIG\\]`));
          assert.equal(i, 1, 'the first literal over the cap is refused');
          break;
        }
        if (quill.rss() - start > RSS_GROWTH_LIMIT) break;
      }
      const peak = sampler.stop();
      note(`RSS ${Math.round(start / MB)} MB at the start, ${Math.round(peak / MB)} MB at the peak`);
      assert.ok(peak - start < RSS_GROWTH_LIMIT, `RSS grew by ${Math.round((peak - start) / MB)} MB`);
      // The session goes on.
      assert.match((await client.commandLines('NOOP')).tagged, / OK /);
      assertNoopPrompt(await other.stop());
    } finally {
      await other.stop();
      sampler.stop();
      client.destroy();
    }
  });

  it('reads no LITERAL+ literal past the cap into memory, and closes the connection', async () => {
    const other = await bystander(quill.imapPort);
    const start = quill.rss();
    const sampler = rssSampler(quill);
    const socket = net.connect(quill.imapPort, '127.0.0.1');
    let received = '';
    socket.on('data', (data: Buffer) => (received += data.toString('latin1')));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const write = (data: string | Buffer): Promise<void> =>
      new Promise((resolve) => {
        if (socket.destroyed || socket.write(data)) return resolve();
        const done = (): void => {
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        };
        socket.on('drain', done);
        socket.on('close', done);
      });
    try {
      await write(`l1 LOGIN ${USER} ${PASSWORD}\r\n`);
      while (!/l1 OK/.test(received) && !socket.destroyed) await new Promise((resolve) => setTimeout(resolve, 10));
      await write(`a1 APPEND INBOX {${LITERAL}+}\r\n`);
      for (let i = 0; i < LITERALS && !socket.destroyed; i++) {
        await write(chunk);
        if (quill.rss() - start > RSS_GROWTH_LIMIT) break; // the old server: stop before it takes the machine
        await write(i + 1 < LITERALS ? ` {${LITERAL}+}\r\n` : '\r\n');
      }
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 3000))]);
      const peak = sampler.stop();
      note(`RSS ${Math.round(start / MB)} MB at the start, ${Math.round(peak / MB)} MB at the peak`);
      assert.ok(peak - start < RSS_GROWTH_LIMIT, `RSS grew by ${Math.round((peak - start) / MB)} MB`);
      assert.match(received, /a1 NO \[TOOBIG\]/);
      assert.match(received, /\* BYE /);
      assert.ok(socket.destroyed || socket.readableEnded, 'the connection was not closed');
      assertNoopPrompt(await other.stop());
    } finally {
      await other.stop();
      sampler.stop();
      socket.destroy();
    }
  });
});
