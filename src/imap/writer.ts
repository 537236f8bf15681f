// The one IMAP response writer (RFC 3501 7, 9): value trees to bytes. Strings become quoted
// strings when they can, literals otherwise (8-bit text, CR/LF, long text); Buffers are
// always literals, sent byte for byte.
import type { ImapAtom, ImapValue } from './value.js';

export type StatusKind = 'OK' | 'NO' | 'BAD' | 'BYE' | 'PREAUTH';

/** The longest string sent quoted; longer ones go as literals. */
const QUOTED_MAX = 1024;

class Out {
  private parts: Buffer[] = [];
  private text = '';
  /** Whether a literal was written (the output is then not one line of text). */
  hasLiteral = false;

  str(s: string): void {
    this.text += s;
  }

  private partBytes = 0;

  literal(bytes: Buffer): void {
    this.hasLiteral = true;
    this.text += `{${bytes.length}}\r\n`;
    const head = Buffer.from(this.text, 'utf8');
    this.parts.push(head, bytes);
    this.partBytes += head.length + bytes.length;
    this.text = '';
  }

  value(v: ImapValue): void {
    if (v === null) this.str('NIL');
    else if (typeof v === 'number') this.str(String(v));
    else if (typeof v === 'string') this.string(v);
    else if (Buffer.isBuffer(v)) this.literal(v);
    else if (Array.isArray(v)) {
      this.str('(');
      for (let i = 0; i < v.length; i++) {
        if (i > 0) this.str(' ');
        this.value(v[i]!);
      }
      this.str(')');
    } else this.str(v.atom);
  }

  string(s: string): void {
    // quoted = DQUOTE *QUOTED-CHAR DQUOTE, 7-bit without CR, LF and NUL (RFC 3501 9).
    if (s.length <= QUOTED_MAX && /^[\x01-\x09\x0b\x0c\x0e-\x7f]*$/.test(s)) this.str(`"${s.replace(/["\\]/g, '\\$&')}"`);
    else this.literal(Buffer.from(s, 'utf8'));
  }

  done(): Buffer {
    this.text += '\r\n';
    return this.bytes();
  }

  /** What was written so far, as bytes. */
  bytes(): Buffer {
    if (this.parts.length === 0) return Buffer.from(this.text, 'utf8');
    this.parts.push(Buffer.from(this.text, 'utf8'));
    return Buffer.concat(this.parts);
  }

  /** Roughly the size so far (characters of text plus literal bytes). */
  get size(): number {
    return this.text.length + this.partBytes;
  }
}

/** An untagged data response: `* 3 EXISTS`, `* LIST (\HasNoChildren) "/" INBOX`, `* 1 FETCH (...)`. */
export function untagged(values: ImapValue[]): Buffer {
  const out = new Out();
  out.str('*');
  for (const v of values) {
    out.str(' ');
    out.value(v);
  }
  return out.done();
}

/**
 * Many untagged responses built into one buffer (a FETCH over a whole mailbox): one socket
 * write per batch instead of one per message.
 */
export class ResponseBatch {
  private out = new Out();
  /** Responses added since the last take(). */
  count = 0;
  /** Roughly the bytes held. */
  bytes = 0;

  add(values: ImapValue[]): void {
    const before = this.out.size;
    this.out.str('*');
    for (const v of values) {
      this.out.str(' ');
      this.out.value(v);
    }
    this.out.str('\r\n');
    this.bytes += this.out.size - before;
    this.count++;
  }

  /** A response already written out as text (7-bit, with its CRLF): the FETCH fast path. */
  addLine(line: string): void {
    this.out.str(line);
    this.bytes += line.length;
    this.count++;
  }

  /** The bytes of the responses added so far; the batch starts empty again. */
  take(): Buffer {
    const bytes = this.out.bytes();
    this.out = new Out();
    this.count = 0;
    this.bytes = 0;
    return bytes;
  }
}

/** A status response, tagged or untagged (`*`): `a1 OK [READ-WRITE] SELECT completed`. */
export function status(tag: string, kind: StatusKind, text: string, code?: string): Buffer {
  const clean = text.replace(/[\r\n]+/g, ' ');
  return Buffer.from(`${tag} ${kind} ${code ? `[${code}] ` : ''}${clean}\r\n`, 'utf8');
}

export function continuation(text: string): Buffer {
  return Buffer.from(`+ ${text}\r\n`, 'utf8');
}

/** One value as it appears on the wire (handy for response codes with values in them). */
export function valueText(v: ImapValue): string {
  const out = new Out();
  out.value(v);
  return out.done().subarray(0, -2).toString('utf8');
}

/**
 * A value written out once as an atom that goes on the wire as it is (FETCH keeps those of a
 * message's ENVELOPE and BODYSTRUCTURE); undefined when it needs a literal.
 */
export function wireAtom(v: ImapValue): ImapAtom | undefined {
  const out = new Out();
  out.value(v);
  return out.hasLiteral ? undefined : { atom: out.bytes().toString('utf8') };
}

/** A mailbox name on the wire: an atom when it can be one (as Dovecot sends them), else a string. */
export function mailboxValue(wire: string): ImapValue {
  return /^[^\x00-\x20\x7f-\uffff(){%*"\\\]]+$/.test(wire) && wire.toUpperCase() !== 'NIL' ? { atom: wire } : wire;
}
