// The shape of the command table (STYLE.md: one table maps names to handlers and the
// states each is allowed in; the dispatcher checks the state once, handlers never do).
import type { CommandInfo, Session, State } from '../session.js';
import { bad } from '../errors.js';
import type { ImapValue } from '../value.js';

export interface CommandResult {
  /** Response code of the tagged OK, e.g. `APPENDUID 1 5`. */
  code?: string;
  text?: string;
  /** The handler wrote its own tagged response (STARTTLS, LOGOUT, IDLE). */
  responded?: boolean;
}

export interface CommandSpec {
  states: readonly State[];
  run(session: Session, args: ImapValue[], info: CommandInfo): Promise<CommandResult | void>;
}

export const ANY: readonly State[] = ['not-authenticated', 'authenticated', 'selected'];
export const NOT_AUTHENTICATED: readonly State[] = ['not-authenticated'];
export const AUTHENTICATED: readonly State[] = ['authenticated', 'selected'];
export const SELECTED: readonly State[] = ['selected'];

/** Fails with BAD unless the argument count is in range. */
export function arity(args: ImapValue[], min: number, max = min): void {
  if (args.length < min) throw bad('missing arguments');
  if (args.length > max) throw bad('too many arguments');
}
