// Commands valid in every state (RFC 3501 6.1) and the small extensions that sit beside
// them: ID (RFC 2971), ENABLE (RFC 5161), NAMESPACE (RFC 2342).
import { VERSION } from '../../version.js';
import { astring, atomText, isAtom, list } from '../args.js';
import { bad } from '../errors.js';
import type { Session } from '../session.js';
import { atom, type ImapValue } from '../value.js';
import { arity, type CommandResult } from './types.js';

// RFC 3501 6.1.1
export async function capability(s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 0);
  s.send([atom('CAPABILITY'), ...s.capabilities().map(atom)]);
}

// RFC 3501 6.1.2: updates are sent by the dispatcher after every command.
export async function noop(_s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 0);
}

// RFC 3501 6.1.3
export async function logout(s: Session, args: ImapValue[], info: { tag: string }): Promise<CommandResult> {
  arity(args, 0);
  s.untaggedStatus('BYE', 'logging out');
  s.tagged(info.tag, 'OK', 'LOGOUT completed');
  s.state = 'logout';
  return { responded: true };
}

// RFC 2971: the client's fields are accepted and ignored.
export async function id(s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 1);
  const fields = args[0];
  if (!(isAtom(fields) && fields.atom.toUpperCase() === 'NIL')) {
    const items = list(fields, 'ID parameters');
    if (items.length % 2 !== 0 || items.length > 60) throw bad('ID parameters must be name/value pairs');
  }
  s.send([atom('ID'), ['name', 'Quillmail', 'version', VERSION]]);
}

// RFC 5161: CONDSTORE and QRESYNC (which implies CONDSTORE, RFC 7162 3.2.3).
export async function enable(s: Session, args: ImapValue[]): Promise<void> {
  if (args.length === 0) throw bad('ENABLE needs capability names');
  const newly: string[] = [];
  for (const arg of args) {
    const name = atomText(arg) ?? astring(arg, 'capability').toUpperCase();
    const wanted = name === 'QRESYNC' ? ['CONDSTORE', 'QRESYNC'] : name === 'CONDSTORE' ? ['CONDSTORE'] : [];
    for (const cap of wanted) {
      if (!s.enabled.has(cap)) {
        s.enabled.add(cap);
        newly.push(cap);
      }
    }
  }
  s.send([atom('ENABLED'), ...newly.map(atom)]);
}

// RFC 2342: one personal namespace, no others.
export async function namespace(s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 0);
  s.send([atom('NAMESPACE'), [['', '/']], null, null]);
}
