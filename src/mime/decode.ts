// Decoding for SEARCH and BINARY: transfer encodings (RFC 2045 6) and charsets to text.
import iconv from 'iconv-lite';
import libmime from 'libmime';
import { decode as qpDecode } from 'libqp';
import { bytesToText, fieldValue, type HeaderField } from './header.js';
import type { MimePart } from './mime.js';

/** Undoes the Content-Transfer-Encoding; undefined for an encoding we do not know (RFC 3516 UNKNOWN-CTE). */
export function decodeTransfer(body: Buffer, encoding: string): Buffer | undefined {
  switch (encoding) {
    case '7BIT':
    case '8BIT':
    case 'BINARY':
      return body;
    case 'BASE64':
      return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/]/g, ''), 'base64');
    case 'QUOTED-PRINTABLE':
      return qpDecode(body);
    default:
      return undefined;
  }
}

/** Bytes in a charset to text; unknown charsets fall back to UTF-8 or Latin-1. */
export function decodeCharset(bytes: Buffer, charset: string | undefined): string {
  if (charset) {
    const name = libmime.normalizeCharset(charset);
    if (iconv.encodingExists(name)) {
      try {
        return iconv.decode(bytes, name);
      } catch {
        // fall through
      }
    }
  }
  return bytesToText(bytes);
}

/** The text of a part as a reader sees it: transfer encoding and charset undone. */
export function partText(raw: Buffer, part: MimePart): string {
  const body = raw.subarray(part.bodyStart, part.bodyEnd);
  const bytes = decodeTransfer(body, part.encoding) ?? body;
  const charset = part.params.find(([name]) => name === 'CHARSET')?.[1];
  return decodeCharset(bytes, charset);
}

/** A header field value with encoded words decoded (RFC 2047). */
export function decodedFieldValue(raw: Buffer, field: HeaderField): string {
  return decodeWords(fieldValue(raw, field));
}

export function decodeWords(value: string): string {
  try {
    return libmime.decodeWords(value);
  } catch {
    return value;
  }
}
