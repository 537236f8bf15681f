// The framing limits of an IMAP command, one rule for the nodes (src/imap/session.ts) and the
// gateway's IMAP front (src/gateway/imap-front.ts), so a command one side takes the other does
// not refuse, and what a node would refuse the gateway refuses before buffering it.
import type { Config } from '../config/config.js';
import type { ReaderEvent, ReaderLimits, ReaderProblem } from './parser.js';

/** Literals allowed before login (LOGIN with a literal password). */
export const PRE_AUTH_LITERAL = 8 * 1024;

/** ID's line may be longer (RFC 2971 3.3: 30 pairs of up to 1024 octets). */
const ID_LINE = /^[^\s(){%*"\\\]]+ ID /i;
const APPEND = /^\S+ APPEND /i;

/** The reader limits for a session; `authenticated` is asked for each command. */
export function imapReaderLimits(config: Config, authenticated: () => boolean): ReaderLimits {
  const limits = config.limits;
  return {
    lineLength: limits.lineLength,
    longLine: { length: Math.max(limits.imapIdLineLength, limits.lineLength), allowed: (head) => ID_LINE.test(head) },
    literalSize: (first) => {
      if (!authenticated()) return PRE_AUTH_LITERAL;
      return APPEND.test(first) ? limits.messageSize : Math.max(limits.lineLength * 8, 64 * 1024);
    },
    // All literals of one command together: APPEND one message (and its mailbox name), imap.commandLiteralBytes.
    commandBytes: (first) => {
      if (!authenticated()) return 2 * PRE_AUTH_LITERAL;
      const perCommand = config.imap.commandLiteralBytes;
      return APPEND.test(first) ? limits.messageSize + perCommand : perCommand;
    },
  };
}

export const READER_PROBLEM_TEXT: Record<ReaderProblem, string> = {
  'line-too-long': 'line too long',
  'literal-too-big': 'literal too big',
  'command-too-big': 'literals of this command too big in all',
  'too-many-literals': 'too many literals',
};

/**
 * What the client is told for a refused command, as a node tells it (src/imap/session.ts):
 * APPEND too big is NO [TOOBIG] (RFC 7889), other literal trouble BAD [TOOBIG]; with `close` a
 * BYE follows (RFC 7888 4: the rest of a non-synchronizing literal is not read).
 */
export function readerProblemReply(event: Extract<ReaderEvent, { kind: 'error' }>): string {
  const text = READER_PROBLEM_TEXT[event.problem];
  const tooBig = event.problem === 'literal-too-big' || event.problem === 'command-too-big';
  let out = '';
  if (event.tag) {
    if (tooBig && event.command === 'APPEND') out += `${event.tag} NO [TOOBIG] ${text}\r\n`;
    else out += `${event.tag} BAD ${event.problem === 'line-too-long' ? '' : '[TOOBIG] '}${text}\r\n`;
  } else if (!event.close) out += `* BAD ${event.problem === 'line-too-long' ? '' : '[TOOBIG] '}${text}\r\n`;
  if (event.close) out += `* BYE ${text}; closing the connection\r\n`;
  return out;
}
