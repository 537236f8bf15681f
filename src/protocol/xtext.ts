// RFC 3461 4 xtext, as XCLIENT (SMTP, and our POP3 XCLIENT) carries its values: every byte of the
// value's UTF-8 outside "!" to "~", and "+" and "=", as "+" and two upper-case hex digits.
// One copy for the gateway's fronts and the nodes (the two fronts' copies disagreed: one encoded
// UTF-16 code units, so "€" became "+20AC" instead of "+E2+82+AC").

export function encodeXtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte > 0x20 && byte < 0x7f && byte !== 0x2b && byte !== 0x3d ? String.fromCharCode(byte) : `+${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The value, or undefined when the text is not xtext (a "+" without two upper-case hex digits, a byte out of range). */
export function decodeXtext(text: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x2b) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (code > 0x20 && code < 0x7f && code !== 0x3d) bytes.push(code);
    else return undefined;
  }
  return Buffer.from(bytes).toString('utf8');
}
