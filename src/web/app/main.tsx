// Quillmail in the browser: log in, then the mail view.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, setCsrfToken, type Session } from './api.js';
import { Admin } from './admin.js';
import { Drive } from './drive.js';
import { Mail } from './mail.js';
import { useView } from './nav.js';

type Mode = 'login' | 'signup';

function Login({ onLogin }: { onLogin: (session: Session) => void }) {
  const [mode, setMode] = useState<Mode>('login');
  const [signup, setSignup] = useState<'closed' | 'open' | 'invite'>('closed');
  const [address, setAddress] = useState('');
  const [password, setPassword] = useState('');
  const [inviteCode, setInviteCode] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<{ signup: 'closed' | 'open' | 'invite' }>('GET', '/api/config').then((c) => setSignup(c.signup), () => undefined);
  }, []);

  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      const body = mode === 'login' ? { address, password } : { address, password, ...(signup === 'invite' ? { inviteCode } : {}) };
      onLogin(await api<Session>('POST', mode === 'login' ? '/api/login' : '/api/signup', body));
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  }

  const action = mode === 'login' ? 'Log in' : 'Create account';
  return (
    <main class="login">
      <form onSubmit={submit} aria-label={action}>
        <h1>Quillmail</h1>
        <label>
          Address
          <input type="email" autocomplete="username" required autofocus value={address} onInput={(e) => setAddress(e.currentTarget.value)} />
        </label>
        <label>
          Password{mode === 'signup' && ' (8 characters or more)'}
          <input
            type="password"
            autocomplete={mode === 'login' ? 'current-password' : 'new-password'}
            required
            minLength={mode === 'signup' ? 8 : undefined}
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {mode === 'signup' && signup === 'invite' && (
          <label>
            Invite code
            <input required value={inviteCode} onInput={(e) => setInviteCode(e.currentTarget.value)} />
          </label>
        )}
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'One moment…' : action}
        </button>
        {signup !== 'closed' && (
          <button type="button" class="link" onClick={() => (setMode(mode === 'login' ? 'signup' : 'login'), setError(''))}>
            {mode === 'login' ? 'New here? Create an account' : 'Have an account? Log in'}
          </button>
        )}
      </form>
    </main>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [error, setError] = useState('');
  const view = useView();

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
  const onLogout = async () => {
    await api('POST', '/api/logout').catch(() => undefined);
    setCsrfToken('');
    setSession(null);
  };
  if (view === 'drive') return <Drive user={session.user} onLogout={onLogout} />;
  if (view === 'admin' && session.user.isAdmin) return <Admin user={session.user} onLogout={onLogout} />;
  return <Mail user={session.user} onLogout={onLogout} />;
}

render(<App />, document.getElementById('app')!);
