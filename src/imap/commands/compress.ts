// COMPRESS=DEFLATE (RFC 4978).
import { atomText } from '../args.js';
import { bad, no } from '../errors.js';
import type { CommandInfo, Session } from '../session.js';
import type { ImapValue } from '../value.js';
import { arity, type CommandResult } from './types.js';

export async function compress(s: Session, args: ImapValue[], info: CommandInfo): Promise<CommandResult> {
  arity(args, 1);
  if (atomText(args[0]) !== 'DEFLATE') throw bad('only DEFLATE is supported');
  if (s.compressed) throw no('compression is already active', 'COMPRESSIONACTIVE');
  s.tagged(info.tag, 'OK', 'DEFLATE active');
  s.flush();
  s.startCompression();
  return { responded: true };
}
