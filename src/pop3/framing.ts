// Multi-line response framing (RFC 1939 3): lines starting with '.' get one more '.', and
// the response ends with CRLF.CRLF. Message bytes are sent exactly as stored otherwise.

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const DOT_BUFFER = Buffer.from('.');
const TERMINATOR = Buffer.from('.\r\n');
const CRLF_TERMINATOR = Buffer.from('\r\n.\r\n');

export function endsWithCrlf(data: Buffer): boolean {
  return data.length >= 2 && data[data.length - 2] === CR && data[data.length - 1] === LF;
}

/** Octets the client receives for a message, before stuffing: a CRLF is added when it lacks one. */
export function transmittedSize(storedSize: number, crlfAtEnd: boolean): number {
  return crlfAtEnd ? storedSize : storedSize + 2;
}

/** What ends a multi-line response carrying `data`: a CRLF when the data lacks one, then '.' CRLF. */
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

/** RFC 1939 7 TOP: the header, the blank line after it, and the first `lines` lines of the body. */
export function topOf(data: Buffer, lines: number): Buffer {
  let bodyStart = data.length;
  for (let at = 0; at < data.length; ) {
    const lf = data.indexOf(LF, at);
    if (lf === -1) break;
    const lineLength = lf - at - (lf > at && data[lf - 1] === CR ? 1 : 0);
    at = lf + 1;
    if (lineLength === 0) {
      bodyStart = at;
      break;
    }
  }
  let end = bodyStart;
  for (let n = 0; n < lines && end < data.length; n++) {
    const lf = data.indexOf(LF, end);
    end = lf === -1 ? data.length : lf + 1;
  }
  return data.subarray(0, end);
}
