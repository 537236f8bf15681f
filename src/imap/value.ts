// A neutral tree for IMAP response data (RFC 3501 4): what handlers and the message module
// produce, and what the response writer serialises. Strings become quoted strings or
// literals as needed, Buffers always literals, atoms go out as they are.
export type ImapValue = null | number | string | Buffer | ImapAtom | ImapValue[];

export interface ImapAtom {
  atom: string;
}

export const atom = (text: string): ImapAtom => ({ atom: text });
