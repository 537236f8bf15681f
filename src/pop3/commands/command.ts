// The shape of a POP3 command handler; the dispatcher (Session.dispatch) checks the state.
import type { Pop3State, Session } from '../session.js';

export interface CommandArgs {
  /** Everything after the keyword and one space, as sent (PASS takes it whole: RFC 1939 7). */
  rest: string;
  /** The arguments split on spaces. */
  words: string[];
}

export interface Pop3Command {
  /** States in which the command is valid (RFC 1939 3); elsewhere it gets -ERR. */
  readonly states: readonly Pop3State[];
  run(session: Session, args: CommandArgs): Promise<void>;
}

export const AUTHORIZATION: readonly Pop3State[] = ['AUTHORIZATION'];
export const TRANSACTION: readonly Pop3State[] = ['TRANSACTION'];
export const ANY_STATE: readonly Pop3State[] = ['AUTHORIZATION', 'TRANSACTION'];
