// ENVELOPE (RFC 3501 7.4.2) from a header block: raw (undecoded) values as servers send them.
import { parseAddressList, type AddressItem } from './address.js';
import type { HeaderMap } from './header.js';

/** A field of the envelope: a string, NIL as null, or a list. Plain JSON, and an IMAP value as it is. */
export type EnvelopeValue = null | string | EnvelopeValue[];

export function buildEnvelope(headers: HeaderMap): EnvelopeValue[] {
  const text = (name: string): string | null => headers.first(name) ?? null;
  const addresses = (name: string): EnvelopeValue => addressList(headers.first(name));
  const from = addresses('from');
  const orFrom = (value: EnvelopeValue): EnvelopeValue => (value === null ? from : value);
  return [
    text('date'),
    text('subject'),
    from,
    // "If the Sender or Reply-To lines are absent ... or are present but empty, the server
    // sets the corresponding member of the envelope to be the same value as the from member."
    orFrom(addresses('sender')),
    orFrom(addresses('reply-to')),
    addresses('to'),
    addresses('cc'),
    addresses('bcc'),
    text('in-reply-to'),
    text('message-id'),
  ];
}

/** An address list as ENVELOPE wants it: NIL when empty; groups as start/end markers. */
export function addressList(value: string | undefined): EnvelopeValue {
  if (value === undefined) return null;
  const out: EnvelopeValue[] = [];
  const push = (items: AddressItem[]): void => {
    for (const item of items) {
      if ('group' in item) {
        out.push([null, null, item.group, null]);
        push(item.members);
        out.push([null, null, null, null]);
      } else {
        out.push([item.name, item.adl, item.mailbox, item.host]);
      }
    }
  };
  push(parseAddressList(value));
  return out.length === 0 ? null : out;
}
