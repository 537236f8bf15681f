// Quillmail in the browser: log in, then the mail view.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, setCsrfToken, type Session } from './api.js';
import { Mail } from './mail.js';

function Login({ onLogin }: { onLogin: (session: Session) => void }) {
  const [address, setAddress] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      onLogin(await api<Session>('POST', '/api/login', { address, password }));
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  }

  return (
    <main class="login">
      <form onSubmit={submit} aria-label="Log in">
        <h1>Quillmail</h1>
        <label>
          Address
          <input type="email" autocomplete="username" required autofocus value={address} onInput={(e) => setAddress(e.currentTarget.value)} />
        </label>
        <label>
          Password
          <input type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
    </main>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState('');

  useEffect(() => {
    api<Session>('GET', '/api/me').then(
      (me) => {
        setCsrfToken(me.csrfToken);
        setSession(me);
      },
      (e: ApiError) => (e.status === 401 ? setSession(null) : setError(e.message)),
    );
  }, []);

  if (error)
    return (
      <p class="error" role="alert">
        {error}
      </p>
    );
  if (session === undefined) return <p class="loading">Loading…</p>;
  if (session === null)
    return (
      <Login
        onLogin={(s) => {
          setCsrfToken(s.csrfToken);
          setSession(s);
        }}
      />
    );
  return (
    <Mail
      user={session.user}
      onLogout={async () => {
        await api('POST', '/api/logout').catch(() => undefined);
        setCsrfToken('');
        setSession(null);
      }}
    />
  );
}

render(<App />, document.getElementById('app')!);
