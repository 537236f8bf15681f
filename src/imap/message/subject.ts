// Base subject extraction (RFC 5256 2.1) for SORT SUBJECT and THREAD.
import { decodeWords } from '../../mime/decode.js';

export interface BaseSubject {
  base: string;
  /** Steps 2, 3 or 6 removed a reply/forward marker (used by THREAD=REFERENCES step 5). */
  replyOrForward: boolean;
}

const TRAILER = /(?:\(fwd\)|[ ])$/i;
const BLOB = /^\[[^[\]]*\] */;
const REFWD = /^(?:\[[^[\]]*\] *)*(?:re|fwd?) *(?:\[[^[\]]*\] *)?:/i;

export function baseSubject(raw: string | undefined): BaseSubject {
  // Step 1: decode encoded words, whitespace runs become one space.
  let s = decodeWords(raw ?? '').replace(/[\t\r\n ]+/g, ' ');
  let replyOrForward = false;
  for (;;) {
    // Step 2: trailers.
    for (let m = TRAILER.exec(s); m; m = TRAILER.exec(s)) {
      if (m[0] !== ' ') replyOrForward = true;
      s = s.slice(0, -m[0].length);
    }
    // Steps 3-5: leaders and blobs, repeated.
    for (let changed = true; changed; ) {
      changed = false;
      let m: RegExpExecArray | null;
      while ((m = /^ +/.exec(s)) || (m = REFWD.exec(s))) {
        if (m[0].trim()) replyOrForward = true;
        s = s.slice(m[0].length);
        changed = true;
      }
      const blob = BLOB.exec(s);
      if (blob && s.length > blob[0].length) {
        s = s.slice(blob[0].length);
        changed = true;
      }
    }
    // Step 6: "[fwd: ... ]".
    if (/^\[fwd:/i.test(s) && s.endsWith(']')) {
      s = s.slice(5, -1);
      replyOrForward = true;
      continue;
    }
    return { base: s, replyOrForward };
  }
}

/** i;ascii-casemap ordering key (RFC 4790 9.2), used by SORT (RFC 5256 2.2). */
export function asciiCasemap(value: string): string {
  return value.replace(/[a-z]+/g, (s) => s.toUpperCase());
}
