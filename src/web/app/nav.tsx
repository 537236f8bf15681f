// The switch between the app's parts. The part is kept in the location hash (#/drive,
// #/admin; mail otherwise) so reloads and the back button keep it.
import { useEffect, useState } from 'preact/hooks';
import type { UserInfo } from './api.js';

export type View = 'mail' | 'drive' | 'admin';

export function viewFromHash(hash: string): View {
  if (hash.startsWith('#/drive')) return 'drive';
  if (hash.startsWith('#/admin')) return 'admin';
  return 'mail';
}

export function useView(): View {
  const [view, setView] = useState<View>(viewFromHash(location.hash));
  useEffect(() => {
    const changed = () => setView(viewFromHash(location.hash));
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return view;
}

export function AppNav({ user, current }: { user: UserInfo; current: View }) {
  const parts: [View, string, string][] = [
    ['mail', 'Mail', '#/'],
    ['drive', 'Drive', '#/drive'],
  ];
  if (user.isAdmin) parts.push(['admin', 'Admin', '#/admin']);
  return (
    <nav class="apps" aria-label="Parts">
      {parts.map(([view, label, href]) => (
        <a key={view} href={href} aria-current={view === current ? 'page' : undefined}>
          {label}
        </a>
      ))}
    </nav>
  );
}
