// The command table: every command name, the states it is allowed in (RFC 3501 3, 6), and
// its handler. The dispatcher (Session.dispatch) checks the state; handlers never do.
import { append } from './append.js';
import { authenticate, gatewayLogin, login, starttls } from './auth.js';
import { capability, enable, id, logout, namespace, noop } from './any.js';
import { compress } from './compress.js';
import { copy } from './copy.js';
import { expunge } from './expunge.js';
import { fetch } from './fetch.js';
import { idle } from './idle.js';
import { create, del, listCommand, lsub, rename, status, subscribe } from './mailboxes.js';
import { getquota, getquotaroot, setquota } from './quota.js';
import { search, sort, thread } from './search.js';
import { check, close, select, unselect } from './select.js';
import { store } from './store.js';
import { ANY, AUTHENTICATED, NOT_AUTHENTICATED, SELECTED, type CommandSpec } from './types.js';

export type { CommandResult, CommandSpec } from './types.js';

export const COMMANDS = new Map<string, CommandSpec>([
  ['CAPABILITY', { states: ANY, run: capability }],
  ['NOOP', { states: ANY, run: noop }],
  ['LOGOUT', { states: ANY, run: logout }],
  ['ID', { states: ANY, run: id }],
  ['STARTTLS', { states: NOT_AUTHENTICATED, run: starttls }],
  ['LOGIN', { states: NOT_AUTHENTICATED, run: login }],
  ['AUTHENTICATE', { states: NOT_AUTHENTICATED, run: authenticate }],
  ['XQUILL-LOGIN', { states: NOT_AUTHENTICATED, run: gatewayLogin }],
  ['ENABLE', { states: AUTHENTICATED, run: enable }],
  ['NAMESPACE', { states: AUTHENTICATED, run: namespace }],
  ['SELECT', { states: AUTHENTICATED, run: select }],
  ['EXAMINE', { states: AUTHENTICATED, run: select }],
  ['CREATE', { states: AUTHENTICATED, run: create }],
  ['DELETE', { states: AUTHENTICATED, run: del }],
  ['RENAME', { states: AUTHENTICATED, run: rename }],
  ['SUBSCRIBE', { states: AUTHENTICATED, run: subscribe }],
  ['UNSUBSCRIBE', { states: AUTHENTICATED, run: subscribe }],
  ['LIST', { states: AUTHENTICATED, run: listCommand }],
  ['LSUB', { states: AUTHENTICATED, run: lsub }],
  ['STATUS', { states: AUTHENTICATED, run: status }],
  ['APPEND', { states: AUTHENTICATED, run: append }],
  ['IDLE', { states: AUTHENTICATED, run: idle }],
  ['COMPRESS', { states: AUTHENTICATED, run: compress }],
  ['GETQUOTAROOT', { states: AUTHENTICATED, run: getquotaroot }],
  ['GETQUOTA', { states: AUTHENTICATED, run: getquota }],
  ['SETQUOTA', { states: AUTHENTICATED, run: setquota }],
  ['CHECK', { states: SELECTED, run: check }],
  ['CLOSE', { states: SELECTED, run: close }],
  ['UNSELECT', { states: SELECTED, run: unselect }],
  ['EXPUNGE', { states: SELECTED, run: expunge }],
  ['SEARCH', { states: SELECTED, run: search }],
  ['FETCH', { states: SELECTED, run: fetch }],
  ['STORE', { states: SELECTED, run: store }],
  ['COPY', { states: SELECTED, run: copy }],
  ['MOVE', { states: SELECTED, run: copy }],
  ['SORT', { states: SELECTED, run: sort }],
  ['THREAD', { states: SELECTED, run: thread }],
  ['UID FETCH', { states: SELECTED, run: fetch }],
  ['UID STORE', { states: SELECTED, run: store }],
  ['UID COPY', { states: SELECTED, run: copy }],
  ['UID MOVE', { states: SELECTED, run: copy }],
  ['UID SEARCH', { states: SELECTED, run: search }],
  ['UID SORT', { states: SELECTED, run: sort }],
  ['UID THREAD', { states: SELECTED, run: thread }],
  ['UID EXPUNGE', { states: SELECTED, run: expunge }],
]);
