// Modified UTF-7 mailbox names (RFC 3501 5.1.3): the store keeps names in Unicode, the wire
// carries printable ASCII with "&...-" runs of modified base64 UTF-16.

export function encodeMailboxName(name: string): string {
  let out = '';
  let run = '';
  const flush = (): void => {
    if (!run) return;
    const units = Buffer.alloc(run.length * 2);
    for (let i = 0; i < run.length; i++) units.writeUInt16BE(run.charCodeAt(i), i * 2);
    out += `&${units.toString('base64').replace(/=+$/, '').replace(/\//g, ',')}-`;
    run = '';
  };
  for (const ch of name) {
    const code = ch.charCodeAt(0);
    if (code >= 0x20 && code <= 0x7e) {
      flush();
      out += ch === '&' ? '&-' : ch;
    } else run += ch;
  }
  flush();
  return out;
}

/** The Unicode name, or undefined when the text is not valid modified UTF-7. */
export function decodeMailboxName(wire: string): string | undefined {
  let out = '';
  for (let i = 0; i < wire.length; i++) {
    const ch = wire[i]!;
    const code = wire.charCodeAt(i);
    if (code < 0x20 || code > 0x7e) return undefined;
    if (ch !== '&') {
      out += ch;
      continue;
    }
    const end = wire.indexOf('-', i + 1);
    if (end < 0) return undefined;
    const b64 = wire.slice(i + 1, end);
    i = end;
    if (b64 === '') {
      out += '&';
      continue;
    }
    if (!/^[A-Za-z0-9+,]+$/.test(b64)) return undefined;
    const bytes = Buffer.from(b64.replace(/,/g, '/'), 'base64');
    if (bytes.length % 2 !== 0) return undefined;
    let text = '';
    for (let j = 0; j < bytes.length; j += 2) text += String.fromCharCode(bytes.readUInt16BE(j));
    // A run must not encode what could be sent plainly.
    if ([...text].some((c) => c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) <= 0x7e)) return undefined;
    out += text;
  }
  return out;
}
