// The mail view: mailboxes, the conversations of one (paged, live, multi-select with undo),
// the open conversation, compose. Where the reader is lives in the URL (route.ts).
import { Archive, ArrowLeft, FileText, Folder, FolderPlus, Forward, Inbox, LogOut, Mail as MailIcon, MailOpen, Paperclip, Reply, ReplyAll, Search, Send, Settings, ShieldAlert, SquarePen, Star, Trash2, Undo2, X } from 'lucide-preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, enc, type BulkResult, type ConversationList, type MailboxInfo, type MessageView, type Summary, type UserInfo } from './api.js';
import { Compose, type Draft } from './compose.js';
import { friendlyDate, full, longDate, who } from './format.js';
import { AppNav } from './nav.js';
import { MessageBody, ThreadLine, useMessage } from './reader.js';
import { mailHash, navigate, useMailRoute } from './route.js';

const PAGE = 50;
/** How long a notice stays; one with Undo stays a little longer. */
const NOTICE_MS = 6000;
const UNDO_MS = 10_000;

const quote = (text: string | null) =>
  (text ?? '')
    .trimEnd()
    .split('\n')
    .map((line) => `> ${line}`)
    .join('\n');

function replyDraft(view: MessageView, me: string, all: boolean): Draft {
  const to = view.replyTo.length ? view.replyTo : view.from;
  const toAddresses = to.map((a) => a.address.toLowerCase());
  const others = all ? [...view.to, ...view.cc].filter((a) => a.address.toLowerCase() !== me && !toAddresses.includes(a.address.toLowerCase())) : [];
  return {
    to: full(to),
    cc: full(others),
    subject: /^re:/i.test(view.subject) ? view.subject : `Re: ${view.subject}`,
    text: `\n\nOn ${view.date ? longDate(view.date) : 'an earlier date'}, ${who(view.from)} wrote:\n${quote(view.text)}`,
    inReplyTo: view.messageId ?? undefined,
    references: view.messageId ? [...view.references, view.messageId] : view.references,
  };
}

function forwardDraft(view: MessageView): Draft {
  const header = [`From: ${full(view.from)}`, `Date: ${longDate(view.date)}`, `Subject: ${view.subject}`, `To: ${full(view.to)}`].join('\n');
  return {
    to: '',
    cc: '',
    subject: `Fwd: ${view.subject}`,
    text: `\n\n---------- Forwarded message ----------\n${header}\n\n${view.text ?? ''}`,
    forward: { mailbox: view.mailbox, uid: view.uid, attachments: view.attachments.filter((a) => !a.embedded).length },
  };
}

function editDraft(view: MessageView): Draft {
  return { to: full(view.to), cc: full(view.cc), bcc: full(view.bcc), subject: view.subject, text: view.text ?? '', draftUid: view.uid };
}

const MAILBOX_ICONS: Record<string, typeof Inbox> = { '\\Drafts': FileText, '\\Sent': Send, '\\Trash': Trash2, '\\Archive': Archive, '\\Junk': ShieldAlert };
const mailboxIcon = (m: MailboxInfo) => (m.name === 'INBOX' ? Inbox : (m.specialUse && MAILBOX_ICONS[m.specialUse]) || Folder);

function SettingsForm({ user, onClose, onDisplayName }: { user: UserInfo; onClose: () => void; onDisplayName: (name: string) => void }) {
  const [displayName, setDisplayName] = useState(user.displayName);
  const [currentPassword, setCurrent] = useState('');
  const [newPassword, setNew] = useState('');
  const [message, setMessage] = useState('');
  const [done, setDone] = useState(false);
  async function submit(event: Event) {
    event.preventDefault();
    try {
      // Kept on the server: the From name of mail sent from any browser.
      if (displayName.trim() !== user.displayName) onDisplayName((await api<{ displayName: string }>('PUT', '/api/settings', { displayName })).displayName);
      if (!newPassword) return onClose();
      await api('POST', '/api/password', { currentPassword, newPassword });
      setDone(true);
      setMessage('Password changed. Your other sessions have been logged out.');
    } catch (e) {
      setMessage((e as Error).message);
    }
  }
  return (
    <form class="compose" onSubmit={submit} onKeyDown={(e) => e.key === 'Escape' && onClose()} aria-label="Settings">
      <h2>Settings</h2>
      <label>
        Display name (how your name shows on mail you send)
        <input autofocus maxLength={100} value={displayName} placeholder="Your Name" onInput={(e) => setDisplayName(e.currentTarget.value)} />
      </label>
      <fieldset>
        <legend>Change password</legend>
        <label>
          Current password <input type="password" autocomplete="current-password" required={!!newPassword} value={currentPassword} onInput={(e) => setCurrent(e.currentTarget.value)} />
        </label>
        <label>
          New password (8 characters or more)
          <input type="password" autocomplete="new-password" minLength={8} value={newPassword} onInput={(e) => setNew(e.currentTarget.value)} />
        </label>
      </fieldset>
      {message && (
        <p class={done ? 'hint' : 'error'} role={done ? 'status' : 'alert'}>
          {message}
        </p>
      )}
      <div class="actions">
        {!done && (
          <button type="submit" class="primary">
            Save
          </button>
        )}
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
    </form>
  );
}

interface Notice {
  text: string;
  error?: boolean;
  undo?: () => Promise<void>;
}

export function Mail({ user, onLogout }: { user: UserInfo; onLogout: () => void }) {
  const [displayName, setDisplayName] = useState(user.displayName);
  const route = useMailRoute();
  const current = route.folder;
  const [mailboxes, setMailboxes] = useState<MailboxInfo[]>([]);
  const [offset, setOffset] = useState(0);
  const [list, setList] = useState<ConversationList | null>(null);
  const [thread, setThread] = useState<Summary[] | null>(null);
  const [checked, setChecked] = useState<Set<number>>(new Set());
  const [draft, setDraft] = useState<Draft | null>(null);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const [search, setSearch] = useState('');
  const [query, setQuery] = useState('');
  const [notice, setNotice] = useState<Notice | null>(null);
  const state = useRef({ current, offset, query });
  state.current = { current, offset, query };

  const fail = useCallback((e: unknown) => setNotice({ text: (e as Error).message, error: true }), []);
  const say = (text: string, undo?: () => Promise<void>) => setNotice({ text, undo });

  // Notices go away by themselves; errors stay a little longer than news.
  useEffect(() => {
    if (!notice) return;
    const timer = setTimeout(() => setNotice(null), notice.undo || notice.error ? UNDO_MS : NOTICE_MS);
    return () => clearTimeout(timer);
  }, [notice]);

  const loadMailboxes = useCallback(() => {
    api<{ mailboxes: MailboxInfo[] }>('GET', '/api/mailboxes').then((r) => setMailboxes(r.mailboxes), fail);
  }, []);

  const loadList = useCallback(() => {
    const { current: mailbox, offset: from, query: q } = state.current;
    const search = q ? `&q=${enc(q)}` : '';
    api<ConversationList>('GET', `/api/mailboxes/${enc(mailbox)}/conversations?offset=${from}&limit=${PAGE}${search}`).then((r) => {
      if (state.current.current === mailbox) setList(r);
    }, fail);
  }, []);

  // The open conversation: the thread holding the message in the URL.
  const openUid = route.uid;
  const loadThread = useCallback(() => {
    const { current: mailbox } = state.current;
    if (openUid === null) return setThread(null);
    api<{ messages: Summary[] }>('GET', `/api/mailboxes/${enc(mailbox)}/threads/${openUid}`).then((r) => {
      if (state.current.current === mailbox) setThread(r.messages);
    }, fail);
  }, [openUid]);
  const shownUid = route.thread ? (thread?.at(-1)?.uid ?? null) : openUid;
  const { view, setView, images, showImages } = useMessage(current, route.thread && !thread ? null : shownUid, fail);

  useEffect(loadMailboxes, []);
  // A new compose window starts without the last one's "Sent."
  useEffect(() => {
    if (draft) setNotice(null);
  }, [draft]);
  useEffect(() => {
    setOffset(0);
    setSearch('');
    setQuery('');
    setChecked(new Set());
  }, [current]);
  useEffect(() => {
    setList(null);
    loadList();
  }, [current, offset, query]);
  useEffect(() => {
    setThread(null);
    loadThread();
  }, [current, openUid]);

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

  // The tab says how much is unread in the inbox.
  const inbox = mailboxes.find((m) => m.name === 'INBOX');
  useEffect(() => {
    document.title = inbox && inbox.unseen > 0 ? `(${inbox.unseen}) Inbox — Quillmail` : 'Quillmail';
  }, [inbox?.unseen]);

  const open = (mailbox: string) => navigate(mailHash({ folder: mailbox }));
  const closeMessage = (replace = false) => navigate(mailHash({ folder: current }), replace);

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
        navigate(mailHash({ folder: to }), true);
      } else {
        if (!confirm(`Delete the folder ${current} and every message in it?`)) return;
        await api('DELETE', `/api/mailboxes/${enc(current)}`);
        navigate(mailHash({ folder: 'INBOX' }), true);
      }
      loadMailboxes();
    } catch (e) {
      fail(e);
    }
  }

  const currentBox = mailboxes.find((m) => m.name === current);
  const isDrafts = currentBox?.specialUse === '\\Drafts';
  const isSent = currentBox?.specialUse === '\\Sent' || current === 'Sent';
  const isSpecial = current === 'INBOX' || !!currentBox?.specialUse;

  /** Moves or deletes, then offers Undo: the same messages moved back by their new UIDs. */
  async function bulk(uids: number[], action: 'move' | 'delete', to?: string) {
    if (uids.length === 0) return;
    const from = current;
    try {
      const result = await api<BulkResult>('POST', `/api/mailboxes/${enc(from)}/bulk`, { uids, action, ...(to ? { to } : {}) });
      setChecked(new Set());
      if (openUid !== null && uids.includes(openUid)) closeMessage(true);
      loadList();
      loadMailboxes();
      if (result.deleted) return say(`${result.count === 1 ? 'Deleted' : `${result.count} messages deleted`} for good.`);
      const moved = (result.map ?? []).map(([, uid]) => uid);
      const text = `${result.count === 1 ? 'Moved' : `${result.count} messages moved`} to ${result.mailbox}.`;
      say(text, async () => {
        await api('POST', `/api/mailboxes/${enc(result.mailbox)}/bulk`, { uids: moved, action: 'move', to: from });
        say(action === 'delete' ? 'Delete undone.' : 'Move undone.');
        loadList();
        loadMailboxes();
      });
    } catch (e) {
      fail(e);
    }
  }

  async function mark(uids: number[], action: 'read' | 'unread') {
    try {
      await api('POST', `/api/mailboxes/${enc(current)}/bulk`, { uids, action });
      setChecked(new Set());
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
      loadMailboxes();
    } catch (e) {
      fail(e);
    }
  }

  const conversations = list?.conversations ?? [];
  const selectedUids = conversations.filter((c) => checked.has(c.uid)).flatMap((c) => c.uids);
  const openConversation = (uid: number, count: number) => navigate(mailHash({ folder: current, uid, thread: count > 1 }));
  const isOpen = (uids: number[]) => openUid !== null && uids.includes(openUid);

  // Keyboard: j/k next/previous, c compose, r reply, a reply all, f forward, # delete, u back, x select.
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement;
      if (draft || settingsOpen || event.ctrlKey || event.metaKey || event.altKey || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName)) return;
      const index = conversations.findIndex((c) => isOpen(c.uids));
      const step = (delta: number) => {
        const next = conversations[Math.min(Math.max(index + delta, 0), conversations.length - 1)];
        if (next) openConversation(next.uid, next.count);
      };
      const actions: Record<string, () => void> = {
        j: () => step(1),
        k: () => step(-1),
        c: () => setDraft({ to: '', cc: '', subject: '', text: '' }),
        r: () => view && setDraft(replyDraft(view, user.address, false)),
        a: () => view && setDraft(replyDraft(view, user.address, true)),
        f: () => view && setDraft(forwardDraft(view)),
        '/': () => document.getElementById('search')?.focus(),
        '#': () => view && void bulk([view.uid], 'delete'),
        Delete: () => view && void bulk([view.uid], 'delete'),
        u: () => closeMessage(),
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

  const check = (uid: number, on: boolean) => {
    const next = new Set(checked);
    if (on) next.add(uid);
    else next.delete(uid);
    setChecked(next);
  };

  const moveChoices = mailboxes.filter((m) => m.name !== current);
  const MoveSelect = ({ onMove }: { onMove: (to: string) => void }) => (
    <select aria-label="Move to" value="" onChange={(e) => e.currentTarget.value && onMove(e.currentTarget.value)}>
      <option value="">Move to…</option>
      {moveChoices.map((m) => (
        <option key={m.name} value={m.name}>
          {m.name}
        </option>
      ))}
    </select>
  );

  const startCompose = () => setDraft({ to: '', cc: '', subject: '', text: '' });

  return (
    <div class={`mail ${openUid !== null ? 'reading' : ''}`}>
      <header>
        <strong class="brand">
          <MailIcon size={18} aria-hidden="true" /> Quillmail
        </strong>
        <AppNav user={user} current="mail" />
        <select class="picker" aria-label="Mailbox" value={current} onChange={(e) => open(e.currentTarget.value)}>
          {mailboxes.map((m) => (
            <option key={m.name} value={m.name}>
              {m.name}
              {m.unseen > 0 ? ` (${m.unseen})` : ''}
            </option>
          ))}
        </select>
        <span class="me">{user.address}</span>
        <button type="button" class="icon" onClick={() => setSettingsOpen(true)} aria-label="Settings" title="Settings">
          <Settings size={18} aria-hidden="true" />
        </button>
        <button type="button" class="icon" onClick={onLogout} aria-label="Log out" title="Log out">
          <LogOut size={18} aria-hidden="true" />
        </button>
      </header>
      {notice && (
        <p class={`toast ${notice.error ? 'error' : 'notice'}`} role={notice.error ? 'alert' : 'status'}>
          <span>{notice.text}</span>
          {notice.undo && (
            <button type="button" onClick={() => (setNotice(null), void notice.undo!().catch(fail))}>
              <Undo2 size={16} aria-hidden="true" /> Undo
            </button>
          )}
          <button type="button" class="icon" aria-label="Dismiss" onClick={() => setNotice(null)}>
            <X size={16} aria-hidden="true" />
          </button>
        </p>
      )}
      <nav aria-label="Mailboxes">
        <button type="button" class="primary compose-button" onClick={startCompose}>
          <SquarePen size={18} aria-hidden="true" /> Compose
        </button>
        <ul>
          {mailboxes.map((m) => {
            const Icon = mailboxIcon(m);
            return (
              <li key={m.name}>
                <a href={mailHash({ folder: m.name })} class={m.name === current ? 'current' : ''} aria-current={m.name === current ? 'page' : undefined}>
                  <Icon size={16} aria-hidden="true" /> {m.name} {m.unseen > 0 && <span class="count">{m.unseen}</span>}
                </a>
              </li>
            );
          })}
        </ul>
        <div class="folder-actions">
          <button type="button" onClick={() => folder('create')}>
            <FolderPlus size={16} aria-hidden="true" /> New folder
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
          <Search size={16} aria-hidden="true" />
          <input id="search" type="search" placeholder={`Search ${current}`} aria-label="Search mail" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        </form>
        {conversations.length > 0 && (
          <div class="bulk" aria-label="Selection">
            <input
              type="checkbox"
              aria-label="Select all"
              checked={checked.size > 0 && conversations.every((c) => checked.has(c.uid))}
              onChange={(e) => setChecked(e.currentTarget.checked ? new Set(conversations.map((c) => c.uid)) : new Set())}
            />
            {checked.size > 0 ? (
              <>
                <span>{checked.size} selected</span>
                <button type="button" class="icon" aria-label="Delete selected" title="Delete" onClick={() => bulk(selectedUids, 'delete')}>
                  <Trash2 size={16} aria-hidden="true" />
                </button>
                <button type="button" class="icon" aria-label="Mark selected read" title="Mark read" onClick={() => mark(selectedUids, 'read')}>
                  <MailOpen size={16} aria-hidden="true" />
                </button>
                <button type="button" class="icon" aria-label="Mark selected unread" title="Mark unread" onClick={() => mark(selectedUids, 'unread')}>
                  <MailIcon size={16} aria-hidden="true" />
                </button>
                <MoveSelect onMove={(to) => bulk(selectedUids, 'move', to)} />
              </>
            ) : (
              <span class="hint">{list && list.total > 0 ? `${list.total} conversation${list.total > 1 ? 's' : ''}` : ''}</span>
            )}
          </div>
        )}
        {list?.complete === false && <p class="hint">Only the newest messages were searched.</p>}
        {list === null ? (
          <p class="loading">Loading…</p>
        ) : list.total === 0 ? (
          <p class="empty">{query ? `Nothing in ${current} matches “${query}”.` : `No messages in ${current}.`}</p>
        ) : (
          <>
            <ul class="conversations">
              {conversations.map((c) => (
                <li key={c.uid} class={`${c.unseen > 0 ? 'unread' : ''} ${isOpen(c.uids) ? 'selected' : ''} ${checked.has(c.uid) ? 'checked' : ''}`}>
                  <input type="checkbox" aria-label={`Select ${c.subject || '(no subject)'}`} checked={checked.has(c.uid)} onChange={(e) => check(c.uid, e.currentTarget.checked)} />
                  <button type="button" onClick={() => openConversation(c.uid, c.count)} aria-current={isOpen(c.uids)}>
                    <span class="from">
                      {isDrafts || isSent ? `To: ${who(c.to)}` : who(c.from)}
                      {c.count > 1 && <span class="thread-count"> {c.count}</span>}
                    </span>
                    <span class="subject">
                      {c.flagged && <Star size={14} class="flagged" aria-label="flagged" />}
                      {c.subject || '(no subject)'}
                      {c.hasAttachments && <Paperclip size={14} aria-label="has attachments" />}
                    </span>
                    <span class="preview">{c.preview}</span>
                    <time dateTime={c.date}>{friendlyDate(c.date)}</time>
                  </button>
                </li>
              ))}
            </ul>
            {list.total > PAGE && (
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
            )}
          </>
        )}
      </section>
      <button type="button" class="primary fab" onClick={startCompose} aria-label="Compose" title="Compose">
        <SquarePen size={20} aria-hidden="true" />
      </button>
      <article class="view" aria-label="Message">
        {view && (
          <>
            <div class="toolbar">
              <button type="button" class="back" onClick={() => closeMessage()} aria-label="Back">
                <ArrowLeft size={16} aria-hidden="true" /> <span class="label">Back</span>
              </button>
              {isDrafts && (
                <button type="button" onClick={() => setDraft(editDraft(view))}>
                  <SquarePen size={16} aria-hidden="true" /> Edit draft
                </button>
              )}
              <button type="button" onClick={() => setDraft(replyDraft(view, user.address, false))} aria-label="Reply">
                <Reply size={16} aria-hidden="true" /> <span class="label">Reply</span>
              </button>
              <button type="button" onClick={() => setDraft(replyDraft(view, user.address, true))} aria-label="Reply all">
                <ReplyAll size={16} aria-hidden="true" /> <span class="label">Reply all</span>
              </button>
              <button type="button" onClick={() => setDraft(forwardDraft(view))} aria-label="Forward">
                <Forward size={16} aria-hidden="true" /> <span class="label">Forward</span>
              </button>
              <button type="button" onClick={() => toggle('\\Flagged')} aria-label={view.flags.includes('\\Flagged') ? 'Unflag' : 'Flag'}>
                <Star size={16} aria-hidden="true" /> <span class="label">{view.flags.includes('\\Flagged') ? 'Unflag' : 'Flag'}</span>
              </button>
              <button type="button" onClick={() => toggle('\\Seen')} aria-label={view.flags.includes('\\Seen') ? 'Mark unread' : 'Mark read'}>
                {view.flags.includes('\\Seen') ? <MailIcon size={16} aria-hidden="true" /> : <MailOpen size={16} aria-hidden="true" />}{' '}
                <span class="label">{view.flags.includes('\\Seen') ? 'Mark unread' : 'Mark read'}</span>
              </button>
              <MoveSelect onMove={(to) => bulk([view.uid], 'move', to)} />
              <button type="button" onClick={() => bulk([view.uid], 'delete')} aria-label="Delete">
                <Trash2 size={16} aria-hidden="true" /> <span class="label">Delete</span>
              </button>
            </div>
            <h2>{view.subject || '(no subject)'}</h2>
            {thread && thread.length > 1 && (
              <ol class="thread" aria-label="Conversation">
                {thread
                  .filter((m) => m.uid !== view.uid)
                  .map((m) => (
                    <ThreadLine key={m.uid} summary={m} onOpen={() => navigate(mailHash({ folder: current, uid: m.uid }))} />
                  ))}
              </ol>
            )}
            <MessageBody view={view} folder={current} images={images} onShowImages={showImages} />
          </>
        )}
      </article>
      {draft && (
        <div class="overlay" role="dialog" aria-modal="true" aria-label="New message">
          <Compose
            draft={draft}
            onClose={(saved) => {
              setDraft(null);
              if (saved) {
                say('Draft saved in Drafts.');
                loadMailboxes();
                if (isDrafts) loadList();
              }
            }}
            onSent={() => {
              setDraft(null);
              say('Sent.');
              loadMailboxes();
              if (isDrafts) {
                closeMessage(true);
                loadList();
              }
            }}
          />
        </div>
      )}
      {settingsOpen && (
        <div class="overlay" role="dialog" aria-modal="true" aria-label="Settings">
          <SettingsForm user={{ ...user, displayName }} onDisplayName={setDisplayName} onClose={() => setSettingsOpen(false)} />
        </div>
      )}
    </div>
  );
}
