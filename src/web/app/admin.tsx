// The admin console: cluster, users and domains, queue, audit log (administrators only).
import type { UserInfo } from './api.js';
import { AppNav } from './nav.js';

export function Admin({ user, onLogout }: { user: UserInfo; onLogout: () => void }) {
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
      <main>
        <p>The admin console is not ready yet.</p>
      </main>
    </div>
  );
}
