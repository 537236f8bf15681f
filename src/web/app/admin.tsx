// The admin console: cluster, users and domains, queue, raw data, audit log (administrators
// only; the server refuses everyone else with 403). The page is kept in the hash: #/admin/queue.
import { useEffect, useState } from 'preact/hooks';
import type { UserInfo } from './api.js';
import { AuditPage } from './admin-audit.js';
import { ClusterPage } from './admin-cluster.js';
import { QueuePage } from './admin-queue.js';
import { RawPage } from './admin-raw.js';
import { UsersPage } from './admin-users.js';
import { AppNav } from './nav.js';

const PAGES = [
  ['cluster', 'Cluster', ClusterPage],
  ['users', 'Users & domains', UsersPage],
  ['queue', 'Queue', QueuePage],
  ['raw', 'Raw data', RawPage],
  ['audit', 'Audit log', AuditPage],
] as const;

type PageName = (typeof PAGES)[number][0];

function pageFromHash(hash: string): PageName {
  const name = /^#\/admin\/([a-z]+)/.exec(hash)?.[1];
  return PAGES.find(([page]) => page === name)?.[0] ?? 'cluster';
}

export function Admin({ user, onLogout }: { user: UserInfo; onLogout: () => void }) {
  const [page, setPage] = useState<PageName>(pageFromHash(location.hash));
  useEffect(() => {
    const changed = () => setPage(pageFromHash(location.hash));
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  const [, label, Page] = PAGES.find(([name]) => name === page)!;
  useEffect(() => {
    document.title = `${label} · Admin · Quillmail`;
  }, [label]);

  return (
    <div class="admin">
      <header>
        <strong>Quillmail</strong>
        <AppNav user={user} current="admin" />
        <span class="me">{user.address}</span>
        <button type="button" onClick={onLogout}>
          Log out
        </button>
      </header>
      <nav class="admin-tabs" aria-labelledby="admin-title">
        <h1 id="admin-title">Admin console</h1>
        <ul>
          {PAGES.map(([name, text]) => (
            <li key={name}>
              <a href={`#/admin/${name}`} aria-current={name === page ? 'page' : undefined}>
                {text}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main class="admin-main">
        <Page key={page} />
      </main>
    </div>
  );
}
