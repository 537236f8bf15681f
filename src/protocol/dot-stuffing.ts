// The dot-terminated data of SMTP (RFC 5321 4.5.2, 4.1.1.4) and POP3 multi-line responses
// (RFC 1939 3): a line starting with "." gets one more, and CRLF "." CRLF ends the data. One copy
// for the POP3 server, the gateway's SMTP and POP3 fronts, and our SMTP test client. Lines end at
// LF for stuffing, as the readers (smtp-server, POP3 clients) take a bare LF as a line end too.

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const DOT_BUFFER = Buffer.from('.');
const TERMINATOR = Buffer.from('.\r\n');
const CRLF_TERMINATOR = Buffer.from('\r\n.\r\n');

export function endsWithCrlf(data: Buffer): boolean {
  return data.length >= 2 && data[data.length - 2] === CR && data[data.length - 1] === LF;
}

/** What ends dot-terminated data carrying `data`: a CRLF when the data lacks one, then "." CRLF. */
export function terminatorAfter(data: Buffer): Buffer {
  return endsWithCrlf(data) ? TERMINATOR : CRLF_TERMINATOR;
}

/** The data byte-stuffed, in chunks of about `chunkSize` bytes, for writes that respect backpressure. */
export function* dotStuffed(data: Buffer, chunkSize = 64 * 1024): Generator<Buffer> {
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    const end = Math.min(offset + chunkSize, data.length);
    const parts: Buffer[] = [];
    let from = offset;
    let at = offset;
    while (at < end) {
      if (data[at] === DOT && (at === 0 || data[at - 1] === LF)) {
        parts.push(data.subarray(from, at), DOT_BUFFER);
        from = at;
      }
      const lf = data.indexOf(LF, at);
      if (lf === -1 || lf >= end) break;
      at = lf + 1;
    }
    parts.push(data.subarray(from, end));
    yield parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}

/** A line of dot-terminated data without its stuffing dot (the terminator itself is "."). */
export function unstuffLine(line: string): string {
  return line.startsWith('.') ? line.slice(1) : line;
}

/** Dot-terminated data (without its terminator) with the stuffing undone. */
export function unstuffed(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  for (let at = 0; at < data.length; ) {
    if (data[at] === DOT) {
      parts.push(data.subarray(from, at));
      from = at + 1;
    }
    const lf = data.indexOf(LF, at);
    if (lf === -1) break;
    at = lf + 1;
  }
  parts.push(data.subarray(from));
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * Where the terminator (CRLF . CRLF) ends in `chunk`, -1 when it is not in it; `tail` holds the up
 * to 4 bytes before the chunk (at the start, the CRLF that ended the command or status line), for
 * a terminator split between reads.
 */
export function dataEnd(tail: Buffer, chunk: Buffer): number {
  const edge = Buffer.concat([tail, chunk.subarray(0, CRLF_TERMINATOR.length - 1)]).indexOf(CRLF_TERMINATOR);
  if (edge >= 0) return edge + CRLF_TERMINATOR.length - tail.length;
  const at = chunk.indexOf(CRLF_TERMINATOR);
  return at < 0 ? -1 : at + CRLF_TERMINATOR.length;
}

/** The last 4 bytes up to the end of `chunk` (`tail`: those before it), for dataEnd on the next read. */
export function tailAfter(tail: Buffer, chunk: Buffer): Buffer {
  return chunk.length >= 4 ? Buffer.from(chunk.subarray(chunk.length - 4)) : Buffer.concat([tail, chunk]).subarray(-4);
}
