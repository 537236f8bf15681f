// Address lists (RFC 5322 3.4) parsed leniently into the parts IMAP needs for ENVELOPE
// (RFC 3501 7.4.2: name, route, mailbox, host) and SORT. Values stay undecoded.

export interface Mailbox {
  /** Display name (quotes removed, encoded words kept), or null. */
  name: string | null;
  /** Obsolete source route ("@a,@b"), or null. */
  adl: string | null;
  mailbox: string | null;
  host: string | null;
}

export interface Group {
  group: string;
  members: Mailbox[];
}

export type AddressItem = Mailbox | Group;

/** `sp`: whitespace came before the token (kept in display names). */
type Token = { kind: 'word' | 'comment' | 'literal' | 'special'; text: string; quoted?: boolean; sp: boolean };

/** Lexes an address header value; unterminated quotes and comments run to the end. */
function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let sp = false;
  const push = (t: Omit<Token, 'sp'>): void => {
    tokens.push({ ...t, sp } as Token);
    sp = false;
  };
  while (i < input.length) {
    const c = input[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      sp = true;
      i++;
    } else if (c === '"') {
      let text = '';
      i++;
      while (i < input.length && input[i] !== '"') {
        if (input[i] === '\\' && i + 1 < input.length) i++;
        text += input[i];
        i++;
      }
      i++;
      push({ kind: 'word', text, quoted: true });
    } else if (c === '(') {
      let depth = 1;
      let text = '';
      i++;
      while (i < input.length && depth > 0) {
        const d = input[i]!;
        if (d === '\\' && i + 1 < input.length) {
          text += input[i + 1];
          i += 2;
          continue;
        }
        if (d === '(') depth++;
        else if (d === ')') depth--;
        if (depth > 0) text += d;
        i++;
      }
      push({ kind: 'comment', text: text.trim() });
      sp = true;
    } else if (c === '[') {
      const close = input.indexOf(']', i);
      const stop = close < 0 ? input.length : close + 1;
      push({ kind: 'literal', text: input.slice(i, stop) });
      i = stop;
    } else if ('<>@,;:.'.includes(c)) {
      push({ kind: 'special', text: c });
      i++;
    } else {
      let j = i;
      while (j < input.length && !' \t\r\n"(<>@,;:.['.includes(input[j]!) && input[j] !== ')') j++;
      if (j === i) j++; // a stray ')'
      push({ kind: 'word', text: input.slice(i, j), quoted: false });
      i = j;
    }
  }
  return tokens;
}

const isSpecial = (t: Token | undefined, s: string): boolean => t?.kind === 'special' && t.text === s;

/** Parses an address list; garbage yields what could be recovered, never an exception. */
export function parseAddressList(input: string): AddressItem[] {
  const tokens = tokenize(input);
  const items: AddressItem[] = [];
  let i = 0;
  while (i < tokens.length) {
    // One address: up to a top-level ',' — or a group up to its ';'.
    let j = i;
    let angle = false;
    let groupColon = -1;
    while (j < tokens.length) {
      const t = tokens[j]!;
      if (isSpecial(t, '<')) angle = true;
      else if (isSpecial(t, '>')) angle = false;
      else if (!angle && isSpecial(t, ':') && groupColon < 0) {
        groupColon = j;
        break;
      } else if (!angle && isSpecial(t, ',')) break;
      j++;
    }
    if (groupColon >= 0) {
      const name = phrase(tokens.slice(i, groupColon));
      let end = groupColon + 1;
      angle = false;
      while (end < tokens.length) {
        const t = tokens[end]!;
        if (isSpecial(t, '<')) angle = true;
        else if (isSpecial(t, '>')) angle = false;
        else if (!angle && isSpecial(t, ';')) break;
        end++;
      }
      const members: Mailbox[] = [];
      for (const slice of splitTopLevel(tokens.slice(groupColon + 1, end))) {
        const mailbox = parseMailbox(slice);
        if (mailbox) members.push(mailbox);
      }
      items.push({ group: name ?? '', members });
      i = end + 1;
      if (isSpecial(tokens[i], ',')) i++;
    } else {
      const mailbox = parseMailbox(tokens.slice(i, j));
      if (mailbox) items.push(mailbox);
      i = j + 1;
    }
  }
  return items;
}

function splitTopLevel(tokens: Token[]): Token[][] {
  const out: Token[][] = [];
  let angle = false;
  let current: Token[] = [];
  for (const t of tokens) {
    if (isSpecial(t, '<')) angle = true;
    else if (isSpecial(t, '>')) angle = false;
    if (!angle && isSpecial(t, ',')) {
      out.push(current);
      current = [];
    } else current.push(t);
  }
  out.push(current);
  return out;
}

function parseMailbox(tokens: Token[]): Mailbox | undefined {
  if (tokens.every((t) => t.kind === 'comment')) return undefined;
  const open = tokens.findIndex((t) => isSpecial(t, '<'));
  if (open >= 0) {
    let close = tokens.findIndex((t, n) => n > open && isSpecial(t, '>'));
    if (close < 0) close = tokens.length;
    let inner = tokens.slice(open + 1, close).filter((t) => t.kind !== 'comment');
    let adl: string | null = null;
    // obs-route: "@a,@b:" before the addr-spec.
    if (isSpecial(inner[0], '@')) {
      const colon = inner.findIndex((t) => isSpecial(t, ':'));
      if (colon >= 0) {
        adl = joinRaw(inner.slice(0, colon));
        inner = inner.slice(colon + 1);
      }
    }
    const name = phrase(tokens.slice(0, open)) ?? commentName(tokens.slice(close + 1));
    return { name, adl, ...addrSpec(inner) };
  }
  const name = commentName(tokens);
  const spec = tokens.filter((t) => t.kind !== 'comment');
  // A bare phrase with no '@' and several words is a display name without address.
  return { name, adl: null, ...addrSpec(spec) };
}

function addrSpec(tokens: Token[]): { mailbox: string | null; host: string | null } {
  let at = -1;
  for (let n = tokens.length - 1; n >= 0; n--) {
    if (isSpecial(tokens[n], '@')) {
      at = n;
      break;
    }
  }
  const local = joinRaw(at < 0 ? tokens : tokens.slice(0, at));
  const host = at < 0 ? '' : joinRaw(tokens.slice(at + 1));
  // RFC 3501 uses a NIL host only for group markers, so missing parts get placeholders
  // (as Dovecot does) rather than NIL.
  return { mailbox: local || 'MISSING_MAILBOX', host: host || 'MISSING_DOMAIN' };
}

/** Local part or domain as written: quoted strings keep their quotes, no spaces. */
function joinRaw(tokens: Token[]): string {
  return tokens
    .map((t) => (t.kind === 'word' && t.quoted ? `"${t.text.replace(/(["\\])/g, '\\$1')}"` : t.kind === 'comment' ? '' : t.text))
    .join('');
}

/** A display name from phrase tokens, quotes removed, whitespace runs as one space. */
function phrase(tokens: Token[]): string | null {
  let out = '';
  for (const t of tokens) {
    if (t.kind === 'comment') continue;
    if (t.sp && out) out += ' ';
    out += t.text;
  }
  out = out.trim();
  return out === '' ? null : out;
}

function commentName(tokens: Token[]): string | null {
  const comment = tokens.find((t) => t.kind === 'comment' && t.text !== '');
  return comment ? comment.text : null;
}

/** The mailboxes of a list, groups flattened (for SORT and SEARCH). */
export function flattenAddresses(items: AddressItem[]): Mailbox[] {
  return items.flatMap((item) => ('group' in item ? item.members : [item]));
}
