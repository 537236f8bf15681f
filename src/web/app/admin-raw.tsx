// Raw data page (read only, every view audited by the server): a user's mailboxes, a mailbox's
// messages (metadata), one message's stored bytes as text in a <pre>, the user's drive objects.
import { Fragment } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, enc } from './api.js';
import { bytes, plain, when, type AdminUser, type RawMailbox, type RawMessage, type RawMessageMeta } from './admin-api.js';
import { Alert } from './admin-common.js';

const PAGE = 50;

type Step =
  | { kind: 'none' }
  | { kind: 'mailboxes'; mailboxes: RawMailbox[] }
  | { kind: 'messages'; mailboxes: RawMailbox[]; mailbox: RawMailbox; messages: RawMessageMeta[]; total: number; offset: number }
  | { kind: 'message'; back: Step; mailbox: RawMailbox; uid: number; message: RawMessage }
  | { kind: 'drive'; objects: Record<string, unknown>[]; truncated: boolean };

function Message({ mailbox, uid, message, onBack }: { mailbox: RawMailbox; uid: number; message: RawMessage; onBack: () => void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), [uid]);
  return (
    <section aria-labelledby="raw-message-heading">
      <h3 id="raw-message-heading" tabIndex={-1} ref={heading}>
        Message {uid} in {mailbox.name}
      </h3>
      <button type="button" onClick={onBack}>
        Back to {mailbox.name}
      </button>
      <dl class="admin-facts">
        {Object.entries(message.meta).map(([key, value]) => (
          <Fragment key={key}>
            <dt>{key}</dt>
            <dd>{plain(value)}</dd>
          </Fragment>
        ))}
      </dl>
      {message.truncated && <p class="hint">Only the first 1 MB is shown.</p>}
      {message.encoding === 'latin1' && <p class="hint">Not valid UTF-8: shown one character per byte (latin1).</p>}
      {/* As text, never as HTML: Preact escapes it. */}
      <pre class="admin-raw" aria-label={`Stored bytes of message ${uid}`} tabIndex={0}>
        {message.raw}
      </pre>
    </section>
  );
}

function DriveObjects({ objects, truncated }: { objects: Record<string, unknown>[]; truncated: boolean }) {
  const columns = ['id', 'kind', 'name', 'parentId', 'size', 'contentType', 'updatedAt'];
  return (
    <div class="admin-scroll">
      <table class="admin-table">
        <caption>
          {objects.length === 0 ? 'No drive objects.' : `${objects.length} drive objects`}
          {truncated && ' (only the first shown)'}
        </caption>
        <thead>
          <tr>
            {columns.map((c) => (
              <th scope="col" key={c}>
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {objects.map((o, i) => (
            <tr key={plain(o.id) || i}>
              {columns.map((c) => (
                <td key={c}>{plain(o[c])}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function RawPage() {
  const [address, setAddress] = useState('');
  const [user, setUser] = useState('');
  const [step, setStep] = useState<Step>({ kind: 'none' });
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [suggestions, setSuggestions] = useState<string[]>([]);

  // Addresses matching what is typed, offered in a list under the field.
  useEffect(() => {
    const q = address.trim();
    if (q.length < 2) return setSuggestions([]);
    const timer = setTimeout(() => {
      api<{ users: AdminUser[] }>('GET', `/api/admin/users?q=${enc(q)}&limit=10`).then(
        (found) => setSuggestions(found.users.map((u) => u.address)),
        () => setSuggestions([]),
      );
    }, 250);
    return () => clearTimeout(timer);
  }, [address]);

  const load = async (next: () => Promise<Step>) => {
    setBusy(true);
    setError('');
    try {
      setStep(await next());
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const base = (who: string) => `/api/admin/raw/users/${enc(who)}`;

  const showMailboxes = (who: string) =>
    load(async () => ({ kind: 'mailboxes', mailboxes: (await api<{ mailboxes: RawMailbox[] }>('GET', `${base(who)}/mailboxes`)).mailboxes }));

  const showMessages = (mailboxes: RawMailbox[], mailbox: RawMailbox, offset: number) =>
    load(async () => {
      const page = await api<{ messages: RawMessageMeta[]; total: number }>('GET', `${base(user)}/mailboxes/${mailbox.id}/messages?offset=${offset}&limit=${PAGE}`);
      return { kind: 'messages', mailboxes, mailbox, messages: page.messages, total: page.total, offset };
    });

  const showMessage = (back: Step, mailbox: RawMailbox, uid: number) =>
    load(async () => ({ kind: 'message', back, mailbox, uid, message: await api<RawMessage>('GET', `${base(user)}/mailboxes/${mailbox.id}/messages/${uid}`) }));

  const showDrive = () =>
    load(async () => {
      const drive = await api<{ objects: Record<string, unknown>[]; truncated?: boolean }>('GET', `${base(user)}/drive`);
      return { kind: 'drive', objects: drive.objects, truncated: drive.truncated ?? false };
    });

  const mailboxesOf = (s: Step): RawMailbox[] | null => (s.kind === 'mailboxes' || s.kind === 'messages' ? s.mailboxes : s.kind === 'message' ? mailboxesOf(s.back) : null);
  const mailboxes = mailboxesOf(step);

  return (
    <section aria-labelledby="raw-heading">
      <h2 id="raw-heading">Raw data</h2>
      <p class="hint">Read only. Every view is written to the audit log.</p>
      <form
        class="admin-search"
        aria-label="Pick a user"
        onSubmit={(e) => {
          e.preventDefault();
          const who = address.trim().toLowerCase();
          setUser(who);
          void showMailboxes(who);
        }}
      >
        <label>
          User address
          <input type="email" required list="raw-users" autocomplete="off" value={address} onInput={(e) => setAddress(e.currentTarget.value)} />
        </label>
        <datalist id="raw-users">
          {suggestions.map((a) => (
            <option key={a} value={a} />
          ))}
        </datalist>
        <button type="submit" disabled={busy}>
          Show mailboxes
        </button>
        <button type="button" disabled={busy || !user} onClick={() => void showDrive()}>
          Show drive objects
        </button>
      </form>
      <Alert message={error} />
      {busy && <p class="loading">Loading…</p>}
      {mailboxes && step.kind !== 'message' && (
        <div class="admin-scroll">
          <table class="admin-table">
            <caption>Mailboxes of {user}</caption>
            <thead>
              <tr>
                <th scope="col">Mailbox</th>
                <th scope="col">Id</th>
                <th scope="col">Messages</th>
                <th scope="col">UIDVALIDITY</th>
                <th scope="col">UIDNEXT</th>
                <th scope="col">HIGHESTMODSEQ</th>
                <th scope="col">Special use</th>
                <th scope="col">Subscribed</th>
              </tr>
            </thead>
            <tbody>
              {mailboxes.map((m) => (
                <tr key={m.id} aria-current={step.kind === 'messages' && step.mailbox.id === m.id ? 'true' : undefined}>
                  <th scope="row">
                    <button type="button" class="link" aria-label={`Open mailbox ${m.name}`} onClick={() => void showMessages(mailboxes, m, 0)}>
                      {m.name}
                    </button>
                  </th>
                  <td>{m.id}</td>
                  <td>{m.messages}</td>
                  <td>{m.uidvalidity}</td>
                  <td>{m.uidnext}</td>
                  <td>{m.highestModseq}</td>
                  <td>{m.specialUse ?? ''}</td>
                  <td>{m.subscribed ? 'yes' : 'no'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {step.kind === 'messages' && (
        <section aria-labelledby="raw-messages-heading">
          <h3 id="raw-messages-heading">Messages in {step.mailbox.name}</h3>
          <div class="admin-scroll">
            <table class="admin-table">
              <caption>{step.total === 0 ? 'No messages.' : `Messages ${step.offset + 1}–${step.offset + step.messages.length} of ${step.total}`}</caption>
              <thead>
                <tr>
                  <th scope="col">UID</th>
                  <th scope="col">Size</th>
                  <th scope="col">Flags</th>
                  <th scope="col">Internal date</th>
                  <th scope="col">MODSEQ</th>
                  <th scope="col">Blob</th>
                </tr>
              </thead>
              <tbody>
                {step.messages.map((m) => (
                  <tr key={m.uid}>
                    <th scope="row">
                      <button type="button" class="link" aria-label={`View message ${m.uid}`} onClick={() => void showMessage(step, step.mailbox, m.uid)}>
                        {m.uid}
                      </button>
                    </th>
                    <td>{bytes(m.size)}</td>
                    <td>{m.flags.join(' ')}</td>
                    <td>{when(m.internalDate)}</td>
                    <td>{m.modseq}</td>
                    <td>
                      <code>{m.blobHash.slice(0, 16)}…</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div class="pager">
            <button type="button" disabled={step.offset === 0} onClick={() => void showMessages(step.mailboxes, step.mailbox, Math.max(0, step.offset - PAGE))}>
              Previous page
            </button>
            <button type="button" disabled={step.offset + PAGE >= step.total} onClick={() => void showMessages(step.mailboxes, step.mailbox, step.offset + PAGE)}>
              Next page
            </button>
          </div>
        </section>
      )}
      {step.kind === 'message' && <Message mailbox={step.mailbox} uid={step.uid} message={step.message} onBack={() => setStep(step.back)} />}
      {step.kind === 'drive' && (
        <section aria-labelledby="raw-drive-heading">
          <h3 id="raw-drive-heading">Drive of {user}</h3>
          <DriveObjects objects={step.objects} truncated={step.truncated} />
        </section>
      )}
    </section>
  );
}
