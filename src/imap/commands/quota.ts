// QUOTA (RFC 9208): one root, "", holding the user's storage quota from the foundation.
import { astring, mailboxName } from '../args.js';
import { CODE, no } from '../errors.js';
import type { Session } from '../session.js';
import { atom, type ImapValue } from '../value.js';
import { mailboxValue } from '../writer.js';
import { arity } from './types.js';

async function quotaOf(s: Session): Promise<{ used: number; limit: number } | undefined> {
  const user = await s.ctx.deps.store.getUserById(s.userId);
  if (!user || user.quotaBytes <= 0) return undefined;
  return { used: Math.ceil(user.usedBytes / 1024), limit: Math.floor(user.quotaBytes / 1024) };
}

// RFC 9208 4.3
export async function getquotaroot(s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 1);
  const name = mailboxName(args[0]);
  if (!(await s.ctx.deps.store.getMailbox(s.userId, name))) throw no(`no mailbox ${name}`, CODE.nonexistent);
  const quota = await quotaOf(s);
  const wire = mailboxValue(astring(args[0], 'mailbox'));
  if (!quota) {
    s.send([atom('QUOTAROOT'), wire]);
    return;
  }
  s.send([atom('QUOTAROOT'), wire, '']);
  s.send([atom('QUOTA'), '', [atom('STORAGE'), quota.used, quota.limit]]);
}

// RFC 9208 4.2
export async function getquota(s: Session, args: ImapValue[]): Promise<void> {
  arity(args, 1);
  const quota = await quotaOf(s);
  if (astring(args[0], 'quota root') !== '' || !quota) throw no('no such quota root', CODE.nonexistent);
  s.send([atom('QUOTA'), '', [atom('STORAGE'), quota.used, quota.limit]]);
}

// RFC 9208 4.1: limits are set by the administrator (quill user quota), not by the user.
export async function setquota(_s: Session): Promise<void> {
  throw no('quotas are set by the administrator', CODE.noPerm);
}
