// POP3's own framing pieces (RFC 1939): the size a client is told and TOP. Dot-stuffing and the
// terminator are shared with SMTP and the gateway (src/protocol/dot-stuffing.ts).

const LF = 0x0a;
const CR = 0x0d;

/** Octets the client receives for a message, before stuffing: a CRLF is added when it lacks one. */
export function transmittedSize(storedSize: number, crlfAtEnd: boolean): number {
  return crlfAtEnd ? storedSize : storedSize + 2;
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
