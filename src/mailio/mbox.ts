// mbox in and out (mboxrd: a "From " line starts each message; body lines matching
// /^>*From / carry one more '>' in the file). Bytes are handled as Buffers throughout.
import { createReadStream } from 'node:fs';
import type { Writable } from 'node:stream';

export interface MboxMessage {
  raw: Buffer;
  /** The date of the "From " line, when it has one we can read. */
  date?: Date;
}

const FROM = Buffer.from('From ');

/** Bare LF line ends become CRLF, as stored messages are CRLF (RFC 5322 2.3). */
export function toCrlf(lines: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const line of lines) {
    const body = line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line;
    parts.push(body, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

function unescapeFrom(line: Buffer): Buffer {
  let i = 0;
  while (i < line.length && line[i] === 0x3e) i++;
  return i > 0 && line.subarray(i, i + 5).equals(FROM) ? line.subarray(1) : line;
}

function fromLineDate(line: Buffer): Date | undefined {
  // "From sender Mon Jan  1 00:00:00 2024": the date is what follows the sender.
  const text = line.toString('latin1').slice(5).trim();
  const space = text.indexOf(' ');
  if (space < 0) return undefined;
  const date = new Date(text.slice(space + 1));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Reads an mbox file message by message without holding the whole file in memory. */
export async function* readMbox(file: string): AsyncGenerator<MboxMessage> {
  let pending: Buffer = Buffer.alloc(0);
  let lines: Buffer[] = [];
  let date: Date | undefined;
  let started = false;

  function* takeLine(line: Buffer): Generator<MboxMessage> {
    if (line.subarray(0, 5).equals(FROM)) {
      if (started && lines.length > 0) {
        // The blank line before a "From " line belongs to the separator, not the message.
        if (lines[lines.length - 1]!.length === 0) lines.pop();
        yield { raw: toCrlf(lines), date };
      }
      started = true;
      lines = [];
      date = fromLineDate(line);
      return;
    }
    if (!started) return; // junk before the first "From " line
    lines.push(unescapeFrom(line));
  }

  for await (const chunk of createReadStream(file)) {
    pending = pending.length > 0 ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
    let start = 0;
    for (let nl = pending.indexOf(0x0a, start); nl >= 0; nl = pending.indexOf(0x0a, start)) {
      yield* takeLine(pending.subarray(start, nl));
      start = nl + 1;
    }
    pending = Buffer.from(pending.subarray(start));
  }
  if (pending.length > 0) yield* takeLine(pending);
  if (started && lines.length > 0) {
    if (lines[lines.length - 1]!.length === 0) lines.pop();
    yield { raw: toCrlf(lines), date };
  }
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** The From_ line's date, asctime(3) style in UTC: "Mon Jan  1 00:00:00 2024". */
function asctime(d: Date): string {
  const time = [d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${time} ${d.getUTCFullYear()}`;
}

/** Writes one message in mboxrd form, with LF line ends. */
export async function writeMboxMessage(out: Writable, raw: Buffer, sender: string, date: Date): Promise<void> {
  const write = (data: Buffer | string) =>
    new Promise<void>((resolve, reject) => {
      if (out.write(data)) resolve();
      else out.once('drain', resolve).once('error', reject);
    });
  await write(`From ${sender || 'MAILER-DAEMON'} ${asctime(date)}\n`);
  let start = 0;
  while (start < raw.length) {
    let nl = raw.indexOf(0x0a, start);
    if (nl < 0) nl = raw.length;
    let line = raw.subarray(start, nl);
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, -1);
    let i = 0;
    while (i < line.length && line[i] === 0x3e) i++;
    if (line.subarray(i, i + 5).equals(FROM)) await write('>');
    await write(Buffer.concat([line, Buffer.from('\n')]));
    start = nl + 1;
  }
  await write('\n');
}
