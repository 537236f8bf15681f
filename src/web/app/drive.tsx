// The file drive: folders and files of the signed-in user.
import type { UserInfo } from './api.js';
import { AppNav } from './nav.js';

export function Drive({ user, onLogout }: { user: UserInfo; onLogout: () => void }) {
  return (
    <div class="drive">
      <header>
        <strong>Quillmail</strong>
        <AppNav user={user} current="drive" />
        <span class="me">{user.address}</span>
        <button type="button" onClick={onLogout}>
          Log out
        </button>
      </header>
      <main>
        <p>The drive is not ready yet.</p>
      </main>
    </div>
  );
}
