// What a mailbox name may be, wherever one is made (IMAP CREATE and RENAME, import): levels
// split by "/" (RFC 3501 5.1: the hierarchy delimiter), none empty, none "." or ".." (names
// become paths on export and in other servers' stores), no control characters (RFC 3501 5.1:
// names are text) and no LIST wildcards.

export const MAILBOX_NAME_MAX = 512;

/** Why a name cannot be a mailbox's, or undefined when it can. */
export function mailboxNameProblem(name: string): string | undefined {
  if (name === '') return 'mailbox name is empty';
  if (name.length > MAILBOX_NAME_MAX) return `mailbox name is longer than ${MAILBOX_NAME_MAX} characters`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f-\x9f]/.test(name)) return 'mailbox name contains control characters';
  if (/[*%]/.test(name)) return 'mailbox name contains the wildcard "*" or "%"';
  for (const level of name.split('/')) {
    if (level === '') return 'mailbox name has an empty hierarchy level';
    if (level === '.' || level === '..') return `mailbox name has a "${level}" level`;
  }
  return undefined;
}
