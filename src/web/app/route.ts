// The mail view's place in the URL, so Back, reload and shared links work:
//   #/mail/<folder>              a folder
//   #/mail/<folder>/t/<uid>      the conversation holding message <uid>
//   #/mail/<folder>/<uid>        message <uid>, shown inside its conversation
// (Folder names are URI-encoded, so a subfolder's '/' stays inside one segment.)
import { useEffect, useState } from 'preact/hooks';

export interface MailRoute {
  folder: string;
  uid: number | null;
  /** True for the conversation URL: the newest message opens. */
  thread: boolean;
}

export function parseMailRoute(hash: string): MailRoute {
  const parts = hash.replace(/^#\/?/, '').split('/');
  if (parts[0] !== 'mail' || !parts[1]) return { folder: 'INBOX', uid: null, thread: false };
  let folder = 'INBOX';
  try {
    folder = decodeURIComponent(parts[1]);
  } catch {
    // a hand-written URL with a stray %: the inbox
  }
  const thread = parts[2] === 't';
  const uid = Number(thread ? parts[3] : parts[2]);
  return { folder, uid: Number.isInteger(uid) && uid > 0 ? uid : null, thread: thread && Number.isInteger(uid) };
}

export function mailHash(route: Partial<MailRoute> & { folder: string }): string {
  const base = `#/mail/${encodeURIComponent(route.folder)}`;
  if (!route.uid) return base;
  return route.thread ? `${base}/t/${route.uid}` : `${base}/${route.uid}`;
}

/** Goes to a place: a new history entry, or in place of this one (after a delete, say). */
export function navigate(hash: string, replace = false): void {
  if (location.hash === hash) return;
  if (replace) location.replace(hash);
  else location.hash = hash;
}

export function useMailRoute(): MailRoute {
  const [route, setRoute] = useState(() => parseMailRoute(location.hash));
  useEffect(() => {
    const changed = () => setRoute(parseMailRoute(location.hash));
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}
