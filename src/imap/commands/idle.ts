// IDLE (RFC 2177): changes to the selected mailbox are announced as they happen, woken by
// the change hub, until the client sends DONE.
import { chunksAsLine } from '../parser.js';
import type { CommandInfo, Session } from '../session.js';
import type { ImapValue } from '../value.js';
import { continuation } from '../writer.js';
import { arity, type CommandResult } from './types.js';

export async function idle(s: Session, args: ImapValue[], info: CommandInfo): Promise<CommandResult> {
  arity(args, 0);
  s.write(continuation('idling'));
  const line = s.next();
  for (;;) {
    await s.syncSelected(true);
    const change = s.waitForChange();
    const event = await Promise.race([line.then((e) => ({ e })), change.promise.then(() => undefined)]);
    change.cancel();
    if (event === undefined) {
      if (s.isClosed) return { responded: true };
      continue;
    }
    if (!event.e) return { responded: true }; // the client went away
    if (event.e.kind === 'command' && chunksAsLine(event.e.chunks).trim().toUpperCase() === 'DONE') {
      await s.syncSelected(true);
      s.tagged(info.tag, 'OK', 'IDLE terminated');
    } else s.tagged(info.tag, 'BAD', 'expected DONE');
    return { responded: true };
  }
}
