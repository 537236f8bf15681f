// The mail view: mailboxes, the message list of one (paged, live), the open message, compose.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, enc, type Address, type MailboxInfo, type MessageList, type MessageView, type Summary, type UserInfo } from './api.js';
import { Compose, type Draft } from './compose.js';
import { AppNav } from './nav.js';

const PAGE = 50;

const who = (list: Address[]) => list.map((a) => a.name || a.address).join(', ') || '(nobody)';
const full = (list: Address[]) => list.map((a) => (a.name ? `${a.name} <${a.address}>` : a.address)).join(', ');

function shortDate(iso: string | null): string {
  if (!iso) return '';
  const date = new Date(iso);
  return date.toDateString() === new Date().toDateString() ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : date.toLocaleDateString();
}

function size(bytes: number): string {
  return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(0)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
}

// The message's HTML is already sanitised by the server; the frame adds a second wall: no
// scripts (sandbox without allow-scripts), no same-origin access, and its own strict policy.
function frameDocument(html: string, images: boolean): string {
  const imgSrc = images ? 'data: https: http:' : 'data:';
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src ${imgSrc}; style-src 'unsafe-inline'"><base target="_blank"><style>body{font-family:system-ui,sans-serif;margin:0.5rem;word-wrap:break-word}img{max-width:100%;height:auto}</style></head><body>${html}</body></html>`;
}

const quote = (text: string | null) =>
  (text ?? '')
    .split('\n')
    .map((line) => `> ${line}`)
    .join('\n');

function replyDraft(view: MessageView, me: string, all: boolean): Draft {
  const to = (view.replyTo.length ? view.replyTo : view.from).map((a) => a.address);
  const others = all ? [...view.to, ...view.cc].map((a) => a.address).filter((a) => a.toLowerCase() !== me && !to.includes(a)) : [];
  return {
    to: to.join(', '),
    cc: others.join(', '),
    subject: /^re:/i.test(view.subject) ? view.subject : `Re: ${view.subject}`,
    text: `\n\nOn ${view.date ? new Date(view.date).toLocaleString() : 'an earlier date'}, ${who(view.from)} wrote:\n${quote(view.text)}`,
    inReplyTo: view.messageId ?? undefined,
    references: view.messageId ? [...view.references, view.messageId] : view.references,
  };
}

function forwardDraft(view: MessageView): Draft {
  const header = [`From: ${full(view.from)}`, `Date: ${view.date ?? ''}`, `Subject: ${view.subject}`, `To: ${full(view.to)}`].join('\n');
  return {
    to: '',
    cc: '',
    subject: `Fwd: ${view.subject}`,
    text: `\n\n---------- Forwarded message ----------\n${header}\n\n${view.text ?? ''}`,
    forward: { mailbox: view.mailbox, uid: view.uid, attachments: view.attachments.length },
  };
}

function editDraft(view: MessageView): Draft {
  const list = (addresses: Address[]) => addresses.map((a) => a.address).join(', ');
  return { to: list(view.to), cc: list(view.cc), bcc: list(view.bcc), subject: view.subject, text: view.text ?? '', draftUid: view.uid };
}

function PasswordForm({ onClose }: { onClose: () => void }) {
  const [currentPassword, setCurrent] = useState('');
  const [newPassword, setNew] = useState('');
  const [message, setMessage] = useState('');
  const [done, setDone] = useState(false);
  async function submit(event: Event) {
    event.preventDefault();
    try {
      await api('POST', '/api/password', { currentPassword, newPassword });
      setDone(true);
      setMessage('Password changed. Your other sessions have been logged out.');
    } catch (e) {
      setMessage((e as Error).message);
    }
  }
  return (
    <form class="compose" onSubmit={submit} onKeyDown={(e) => e.key === 'Escape' && onClose()} aria-label="Change password">
      <label>
        Current password <input type="password" autocomplete="current-password" required autofocus value={currentPassword} onInput={(e) => setCurrent(e.currentTarget.value)} />
      </label>
      <label>
        New password (8 characters or more)
        <input type="password" autocomplete="new-password" required minLength={8} value={newPassword} onInput={(e) => setNew(e.currentTarget.value)} />
      </label>
      {message && (
        <p class={done ? 'hint' : 'error'} role={done ? 'status' : 'alert'}>
          {message}
        </p>
      )}
      <div class="actions">
        {!done && <button type="submit">Change password</button>}
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
    </form>
  );
}

export function Mail({ user, onLogout }: { user: UserInfo; onLogout: () => void }) {
  const [mailboxes, setMailboxes] = useState<MailboxInfo[]>([]);
  const [current, setCurrent] = useState('INBOX');
  const [offset, setOffset] = useState(0);
  const [list, setList] = useState<MessageList | null>(null);
  const [selected, setSelected] = useState<number | null>(null);
  const [view, setView] = useState<MessageView | null>(null);
  const [images, setImages] = useState(false);
  const [draft, setDraft] = useState<Draft | null>(null);
  const [passwordOpen, setPasswordOpen] = useState(false);
  const [search, setSearch] = useState('');
  const [query, setQuery] = useState('');
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const state = useRef({ current, offset, query });
  state.current = { current, offset, query };

  const fail = (e: unknown) => setError((e as Error).message);

  const loadMailboxes = useCallback(() => {
    api<{ mailboxes: MailboxInfo[] }>('GET', '/api/mailboxes').then((r) => setMailboxes(r.mailboxes), fail);
  }, []);

  const loadList = useCallback(() => {
    const { current: mailbox, offset: from, query: q } = state.current;
    const search = q ? `&q=${enc(q)}` : '';
    api<MessageList>('GET', `/api/mailboxes/${enc(mailbox)}/messages?offset=${from}&limit=${PAGE}${search}`).then((r) => {
      if (state.current.current === mailbox) setList(r);
    }, fail);
  }, []);

  useEffect(loadMailboxes, []);
  // A new compose window starts without the last one's "Sent."
  useEffect(() => {
    if (draft) setNotice('');
  }, [draft]);
  useEffect(() => {
    setList(null);
    loadList();
  }, [current, offset, query]);

  // Live updates: the server's event stream says which mailbox changed.
  useEffect(() => {
    const events = new EventSource('/api/events');
    const changed = (event: MessageEvent<string>) => {
      const { mailbox } = JSON.parse(event.data) as { mailbox: string | null };
      loadMailboxes();
      if (mailbox === null || mailbox === state.current.current) loadList();
    };
    for (const kind of ['append', 'expunge', 'flags', 'mailbox']) events.addEventListener(kind, changed);
    return () => events.close();
  }, []);

  useEffect(() => {
    setView(null);
    setImages(false);
    if (selected === null) return;
    api<MessageView>('GET', `/api/messages/${enc(current)}/${selected}`).then((v) => {
      setView(v);
      if (!v.flags.includes('\\Seen')) api('POST', `/api/messages/${enc(current)}/${selected}/flags`, { add: ['\\Seen'] }).catch(fail);
    }, fail);
  }, [selected]);

  useEffect(() => {
    if (!images || selected === null) return;
    api<MessageView>('GET', `/api/messages/${enc(current)}/${selected}?images=1`).then(setView, fail);
  }, [images]);

  function open(mailbox: string) {
    setCurrent(mailbox);
    setOffset(0);
    setSelected(null);
    setSearch('');
    setQuery('');
  }

  async function folder(action: 'create' | 'rename' | 'delete') {
    try {
      if (action === 'create') {
        const name = prompt('Name of the new folder (use / for a subfolder):');
        if (!name) return;
        await api('POST', '/api/mailboxes', { name });
        open(name);
      } else if (action === 'rename') {
        const to = prompt(`New name for ${current}:`, current);
        if (!to || to === current) return;
        await api('POST', `/api/mailboxes/${enc(current)}/rename`, { to });
        open(to);
      } else {
        if (!confirm(`Delete the folder ${current} and every message in it?`)) return;
        await api('DELETE', `/api/mailboxes/${enc(current)}`);
        open('INBOX');
      }
      loadMailboxes();
    } catch (e) {
      fail(e);
    }
  }

  const currentBox = mailboxes.find((m) => m.name === current);
  const isDrafts = currentBox?.specialUse === '\\Drafts';
  const isSpecial = current === 'INBOX' || !!currentBox?.specialUse;

  async function remove() {
    if (selected === null) return;
    try {
      const result = await api<{ deleted: boolean }>('DELETE', `/api/messages/${enc(current)}/${selected}`);
      setNotice(result.deleted ? 'Deleted for good.' : 'Moved to Trash.');
      setSelected(null);
      loadList();
      loadMailboxes();
    } catch (e) {
      fail(e);
    }
  }

  async function move(to: string) {
    if (selected === null || !to) return;
    try {
      await api('POST', `/api/messages/${enc(current)}/${selected}/move`, { to });
      setNotice(`Moved to ${to}.`);
      setSelected(null);
      loadList();
      loadMailboxes();
    } catch (e) {
      fail(e);
    }
  }

  async function toggle(flag: string) {
    if (!view) return;
    const has = view.flags.includes(flag);
    try {
      const r = await api<{ flags: string[] }>('POST', `/api/messages/${enc(current)}/${view.uid}/flags`, has ? { remove: [flag] } : { add: [flag] });
      setView({ ...view, flags: r.flags });
    } catch (e) {
      fail(e);
    }
  }

  // Keyboard: j/k next/previous, Enter is the click, c compose, r reply, a reply all, f forward, # delete, u back.
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement;
      if (draft || passwordOpen || event.ctrlKey || event.metaKey || event.altKey || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName)) return;
      const messages = list?.messages ?? [];
      const index = messages.findIndex((m) => m.uid === selected);
      const step = (delta: number) => {
        const next = messages[Math.min(Math.max(index + delta, 0), messages.length - 1)];
        if (next) setSelected(next.uid);
      };
      const actions: Record<string, () => void> = {
        j: () => step(1),
        k: () => step(-1),
        c: () => setDraft({ to: '', cc: '', subject: '', text: '' }),
        r: () => view && setDraft(replyDraft(view, user.address, false)),
        a: () => view && setDraft(replyDraft(view, user.address, true)),
        f: () => view && setDraft(forwardDraft(view)),
        '/': () => document.getElementById('search')?.focus(),
        '#': () => void remove(),
        Delete: () => void remove(),
        u: () => setSelected(null),
      };
      const action = actions[event.key];
      if (action) {
        event.preventDefault();
        action();
      }
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  });

  const row = (m: Summary) => (
    <li key={m.uid} class={`${m.flags.includes('\\Seen') ? '' : 'unread'} ${m.uid === selected ? 'selected' : ''}`}>
      <button type="button" onClick={() => setSelected(m.uid)} aria-current={m.uid === selected}>
        <span class="from">{current === 'Sent' ? who(m.to) : who(m.from)}</span>
        <span class="subject">
          {m.flags.includes('\\Flagged') && <span aria-label="flagged">★ </span>}
          {m.subject || '(no subject)'}
          {m.hasAttachments && <span aria-label="has attachments"> 📎</span>}
        </span>
        <time>{shortDate(m.date ?? m.internalDate)}</time>
      </button>
    </li>
  );

  return (
    <div class={`mail ${selected !== null ? 'reading' : ''}`}>
      <header>
        <strong>Quillmail</strong>
        <AppNav user={user} current="mail" />
        <button type="button" onClick={() => setDraft({ to: '', cc: '', subject: '', text: '' })}>
          Compose
        </button>
        <select class="picker" aria-label="Mailbox" value={current} onChange={(e) => open(e.currentTarget.value)}>
          {mailboxes.map((m) => (
            <option key={m.name} value={m.name}>
              {m.name}
              {m.unseen > 0 ? ` (${m.unseen})` : ''}
            </option>
          ))}
        </select>
        <span class="me">{user.address}</span>
        <button type="button" onClick={() => setPasswordOpen(true)}>
          Password
        </button>
        <button type="button" onClick={onLogout}>
          Log out
        </button>
      </header>
      {(error || notice) && (
        <p class={error ? 'error' : 'notice'} role={error ? 'alert' : 'status'} onClick={() => (setError(''), setNotice(''))}>
          {error || notice}
        </p>
      )}
      <nav aria-label="Mailboxes">
        <ul>
          {mailboxes.map((m) => (
            <li key={m.name}>
              <button type="button" class={m.name === current ? 'current' : ''} onClick={() => open(m.name)}>
                {m.name} {m.unseen > 0 && <span class="count">{m.unseen}</span>}
              </button>
            </li>
          ))}
        </ul>
        <div class="folder-actions">
          <button type="button" onClick={() => folder('create')}>
            New folder
          </button>
          {!isSpecial && (
            <>
              <button type="button" onClick={() => folder('rename')}>
                Rename
              </button>
              <button type="button" onClick={() => folder('delete')}>
                Delete folder
              </button>
            </>
          )}
        </div>
      </nav>
      <section class="list" aria-label="Messages">
        <form
          class="search"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            setOffset(0);
            setQuery(search.trim());
          }}
        >
          <input id="search" type="search" placeholder={`Search ${current}`} aria-label="Search subject and addresses" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        </form>
        {list?.complete === false && <p class="hint">Only the newest messages were searched.</p>}
        {list === null ? (
          <p class="loading">Loading…</p>
        ) : list.total === 0 ? (
          <p class="empty">{query ? `Nothing in ${current} matches “${query}”.` : `No messages in ${current}.`}</p>
        ) : (
          <>
            <ul>{list.messages.map(row)}</ul>
            <div class="pager">
              <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
                Newer
              </button>
              <span>
                {offset + 1}–{Math.min(offset + PAGE, list.total)} of {list.total}
              </span>
              <button type="button" disabled={offset + PAGE >= list.total} onClick={() => setOffset(offset + PAGE)}>
                Older
              </button>
            </div>
          </>
        )}
      </section>
      <article class="view" aria-label="Message">
        {view && (
          <>
            <div class="toolbar">
              <button type="button" class="back" onClick={() => setSelected(null)}>
                Back
              </button>
              {isDrafts && (
                <button type="button" onClick={() => setDraft(editDraft(view))}>
                  Edit draft
                </button>
              )}
              <button type="button" onClick={() => setDraft(replyDraft(view, user.address, false))}>
                Reply
              </button>
              <button type="button" onClick={() => setDraft(replyDraft(view, user.address, true))}>
                Reply all
              </button>
              <button type="button" onClick={() => setDraft(forwardDraft(view))}>
                Forward
              </button>
              <button type="button" onClick={() => toggle('\\Flagged')}>
                {view.flags.includes('\\Flagged') ? 'Unflag' : 'Flag'}
              </button>
              <button type="button" onClick={() => toggle('\\Seen')}>
                {view.flags.includes('\\Seen') ? 'Mark unread' : 'Mark read'}
              </button>
              <select aria-label="Move to" value="" onChange={(e) => move(e.currentTarget.value)}>
                <option value="">Move to…</option>
                {mailboxes
                  .filter((m) => m.name !== current)
                  .map((m) => (
                    <option key={m.name} value={m.name}>
                      {m.name}
                    </option>
                  ))}
              </select>
              <button type="button" onClick={remove}>
                Delete
              </button>
            </div>
            <h2>{view.subject || '(no subject)'}</h2>
            <dl class="headers">
              <dt>From</dt>
              <dd>{full(view.from)}</dd>
              <dt>To</dt>
              <dd>{full(view.to)}</dd>
              {view.cc.length > 0 && (
                <>
                  <dt>Cc</dt>
                  <dd>{full(view.cc)}</dd>
                </>
              )}
              <dt>Date</dt>
              <dd>{view.date ? new Date(view.date).toLocaleString() : ''}</dd>
            </dl>
            {view.remoteImages > 0 && !images && (
              <p class="notice">
                {view.remoteImages} remote image{view.remoteImages > 1 ? 's' : ''} blocked.{' '}
                <button type="button" onClick={() => setImages(true)}>
                  Show images
                </button>
              </p>
            )}
            {view.html !== null ? (
              <iframe class="body" title="Message body" sandbox="allow-popups allow-popups-to-escape-sandbox" srcdoc={frameDocument(view.html, images)} />
            ) : (
              <pre class="body text">{view.text}</pre>
            )}
            {view.attachments.length > 0 && (
              <ul class="attachments" aria-label="Attachments">
                {view.attachments.map((a) => (
                  <li key={a.index}>
                    <a href={`/api/messages/${enc(current)}/${view.uid}/attachments/${a.index}`} download={a.filename ?? ''}>
                      {a.filename ?? `attachment ${a.index + 1}`}
                    </a>{' '}
                    ({size(a.size)})
                  </li>
                ))}
              </ul>
            )}
          </>
        )}
      </article>
      {draft && (
        <div class="overlay" role="dialog" aria-modal="true" aria-label="New message">
          <Compose
            draft={draft}
            onClose={() => setDraft(null)}
            onSent={() => {
              setDraft(null);
              setNotice('Sent.');
              loadMailboxes();
              if (isDrafts) {
                setSelected(null);
                loadList();
              }
            }}
          />
        </div>
      )}
      {passwordOpen && (
        <div class="overlay" role="dialog" aria-modal="true" aria-label="Change password">
          <PasswordForm onClose={() => setPasswordOpen(false)} />
        </div>
      )}
    </div>
  );
}
