// Fuzzing the POP3 and SMTP command readers (issue 17), shared by the suite's short run
// (fuzz-pop3-smtp.test.ts: fixed seed, a few seconds) and the long one (scripts/fuzz-pop3-smtp.ts).
// - The shared line framing (src/protocol/socket-reader.ts) against a model of it, over any bytes
//   cut anywhere: POP3's (RFC 1939 3, a bare LF ends a line too) and CRLF only (SMTP, the gateway).
// - The submission header code (fix-ups, From/Sender check) over any header bytes.
// - Live servers over real sockets: random command lines, bytes and line endings, cut at random
//   points. Every reply must be a well-formed protocol line, the session must end when asked
//   (QUIT) or on its own, and the node stays responsive with bounded memory.
import net from 'node:net';
import fc from 'fast-check';
import { LineFramer, TOO_LONG } from '../../src/protocol/socket-reader.js';
import { checkHeaderSenders } from '../../src/smtp/sender-check.js';
import { fixUpSubmission } from '../../src/smtp/submission-fixups.js';

export interface FuzzBudget {
  seed: number;
  numRuns: number;
  /** Stop starting new runs after this long (fast-check's interruptAfterTimeLimit). */
  timeLimitMs: number;
}

const settings = (budget: FuzzBudget) => ({ seed: budget.seed, numRuns: budget.numRuns, interruptAfterTimeLimit: budget.timeLimitMs });

/** Bytes cut into chunks at random points. */
const chunked = (bytes: fc.Arbitrary<Uint8Array>) =>
  fc.tuple(bytes, fc.array(fc.nat(), { maxLength: 12 })).map(([data, cuts]) => {
    const points = [...new Set(cuts.map((cut) => cut % (data.length + 1)))].sort((a, b) => a - b);
    const chunks: Buffer[] = [];
    let from = 0;
    for (const point of [...points, data.length]) {
      chunks.push(Buffer.from(data.subarray(from, point)));
      from = point;
    }
    return chunks;
  });

/** Input weighted towards line endings, so lines of every length occur. */
const lineBytes = fc
  .array(fc.oneof(fc.constantFrom(0x0a, 0x0d, 0x0d, 0x20, 0x41), fc.integer({ min: 0, max: 255 })), { maxLength: 400 })
  .map((bytes) => Uint8Array.from(bytes));

/**
 * What the framing should give for the whole input: lines at LF with a CR before it dropped
 * (bareLf, RFC 1939 3 as POP3 servers take it) or at CRLF only, too long flagged.
 */
function modelLines(input: Buffer, max: number, bareLf: boolean): string[] {
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const end = bareLf ? input.indexOf(0x0a, start) : input.indexOf('\r\n', start);
    if (end < 0) {
      // An unfinished line is flagged as soon as it cannot fit, even before its end.
      if (input.length - start > max + 1) out.push('<too-long>');
      return out;
    }
    let line = input.subarray(start, end);
    if (bareLf && line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, -1);
    out.push(line.length > max ? '<too-long>' : line.toString('latin1'));
    start = end + (bareLf ? 1 : 2);
  }
}

export function fuzzLineFraming(budget: FuzzBudget): void {
  fc.assert(
    fc.property(chunked(lineBytes), fc.integer({ min: 1, max: 64 }), fc.boolean(), (chunks, max, bareLf) => {
      const framer = new LineFramer({ maxLine: max, bareLf });
      const got: string[] = [];
      for (const chunk of chunks) {
        framer.push(chunk);
        for (let line = framer.next(); line !== undefined; line = framer.next()) got.push(line === TOO_LONG ? '<too-long>' : line.toString('latin1'));
        if (framer.held > max + 1) throw new Error(`holds ${framer.held} bytes with a limit of ${max}`);
      }
      const want = modelLines(Buffer.concat(chunks), max, bareLf);
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`lines ${JSON.stringify(got)} instead of ${JSON.stringify(want)}`);
    }),
    settings(budget),
  );
}

const headerish = fc
  .array(
    fc.oneof(
      fc.constantFrom('From: ', 'Sender: ', 'from:', 'Bcc: x\r\n', 'Date: x\r\n', 'Message-ID: <x@y>\r\n', '\r\n', '\n', ' ', '\t', '<', '>', '"', ',', ';', ':', '@', '(', ')', '\\', 'alice@example.com', 'ceo@example.com', '=?utf-8?q?x?='),
      fc.string({ maxLength: 20 }),
    ),
    { maxLength: 60 },
  )
  .map((parts) => Buffer.from(parts.join(''), 'utf8'));

export function fuzzSubmissionHeaders(budget: FuzzBudget): void {
  fc.assert(
    fc.property(headerish, fc.uint8Array({ maxLength: 64 }), (header, body) => {
      const raw = Buffer.concat([header, Buffer.from('\r\n\r\n'), body]);
      const fixed = fixUpSubmission(raw, 'mx.test');
      // The body after the header block is never changed.
      if (!fixed.subarray(fixed.length - body.length - 4).equals(raw.subarray(raw.length - body.length - 4))) throw new Error('body changed');
      const refusal = checkHeaderSenders(raw, 'alice@example.com', []);
      if (refusal && !/^5\.7\.1 /.test(refusal.message)) throw new Error(`unexpected refusal ${refusal.message}`);
    }),
    settings(budget),
  );
}

// ---- live servers --------------------------------------------------------------------------------

const POP3_WORDS = ['USER alice@example.com', 'PASS alice-pw', 'PASS', 'USER', 'STAT', 'LIST', 'LIST 1', 'RETR 1', 'TOP 1 0', 'DELE 1', 'UIDL', 'NOOP', 'RSET', 'CAPA', 'AUTH', 'AUTH PLAIN', 'AUTH LOGIN', 'APOP x y', 'UTF8', 'XCLIENT LOGIN=x', 'LIST 99999999999999999999', 'TOP 1 -1'];
const SMTP_WORDS = ['EHLO fuzz.test', 'HELO x', 'MAIL FROM:<alice@example.com>', 'MAIL FROM:<>', 'RCPT TO:<bob@example.com>', 'RCPT TO:<x@remote.test>', 'DATA', 'BDAT 5', 'BDAT 0 LAST', 'RSET', 'NOOP', 'VRFY x', 'HELP', 'AUTH PLAIN', `AUTH PLAIN ${Buffer.from('\0alice@example.com\0alice-pw').toString('base64')}`, 'AUTH LOGIN', 'XCLIENT ADDR=1.2.3.4', '.', 'From: "CEO" <ceo@example.com>', ''];

/** A session's input: dictionary commands with random arguments, random bytes, mixed line endings. */
const sessionInput = (words: string[]) =>
  chunked(
    fc
      .array(
        fc.tuple(
          fc.oneof(
            { weight: 4, arbitrary: fc.constantFrom(...words) },
            { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...words), fc.string({ maxLength: 40 })).map(([word, arg]) => `${word} ${arg}`) },
            { weight: 1, arbitrary: fc.uint8Array({ maxLength: 60 }).map((bytes) => Buffer.from(bytes).toString('latin1')) },
            { weight: 1, arbitrary: fc.integer({ min: 100, max: 12_000 }).map((length) => `NOOP ${'x'.repeat(length)}`) },
          ),
          fc.constantFrom('\r\n', '\r\n', '\r\n', '\n', '\r', ''),
        ),
        { maxLength: 16 },
      )
      .map((lines) => Uint8Array.from(Buffer.from(lines.map(([line, end]) => line + end).join(''), 'latin1'))),
  );

const REPLY_LINE = {
  pop3: /^(\+OK|-ERR|\+ ?)|^\.$|^[\x20-\x7e\t]*$/,
  smtp: /^[2345]\d\d[ -]/,
};

/** Sends one fuzzed session; resolves to the problems seen (empty when all is well). */
async function fuzzSession(port: number, protocol: 'pop3' | 'smtp', chunks: Buffer[], from: string): Promise<string[]> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: from });
  socket.on('error', () => undefined);
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (data: string) => {
    received += data;
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  for (const chunk of chunks) {
    if (socket.destroyed) break;
    socket.write(chunk);
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Whatever state the input left behind (a SASL exchange, DATA), these lines end the session.
  const goodbye = protocol === 'smtp' ? '\r\n.\r\nQUIT\r\nQUIT\r\nQUIT\r\nQUIT\r\n' : '\r\nQUIT\r\n*\r\nQUIT\r\nQUIT\r\n';
  if (!socket.destroyed) socket.write(goodbye);
  const timer = setTimeout(() => socket.destroy(new Error('hang')), 5000);
  let hung = false;
  socket.once('error', (error) => {
    if (error.message === 'hang') hung = true;
  });
  await closed;
  clearTimeout(timer);
  const problems: string[] = [];
  if (hung) problems.push(`the session did not end within 5 s of QUIT; it said ${JSON.stringify(received.slice(-300))}`);
  const lines = received.split('\r\n');
  lines.pop(); // after the last CRLF: a partial line if the server was cut off
  // POP3 multi-line answers (CAPA, LIST, UIDL, RETR) carry free text between status lines.
  const bad = lines.filter((line) => !REPLY_LINE[protocol].test(line) || /at .*\.(ts|js):\d+|undefined|\[object /.test(line));
  if (bad.length > 0) problems.push(`malformed replies: ${JSON.stringify(bad.slice(0, 3))}`);
  return problems;
}

/** Resolves to the number of sessions run; throws fast-check's report (seed, path, input) on a failure. */
export async function fuzzLiveServer(port: number, protocol: 'pop3' | 'smtp', budget: FuzzBudget, from = '127.0.0.2'): Promise<number> {
  const details = await fc.check(
    fc.asyncProperty(sessionInput(protocol === 'pop3' ? POP3_WORDS : SMTP_WORDS), async (chunks) => {
      const problems = await fuzzSession(port, protocol, chunks, from);
      if (problems.length > 0) throw new Error(problems.join('; '));
    }),
    settings(budget),
  );
  if (details.failed) throw new Error(fc.defaultReportMessage(details));
  return details.numRuns;
}
