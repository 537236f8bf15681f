// Writing a message: recipients, subject, text and attachments; sent through /api/send.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type Address } from './api.js';

export interface Draft {
  to: string;
  cc: string;
  bcc?: string;
  subject: string;
  text: string;
  inReplyTo?: string;
  references?: string[];
  /** Forward: the original's attachments go along. */
  forward?: { mailbox: string; uid: number; attachments: number };
  /** UID in Drafts when editing a saved draft. */
  draftUid?: number;
}

/**
 * A To/Cc/Bcc line as a list: commas or semicolons separate, except inside quotes or angle
 * brackets, so `"Builder, Bob" <bob@example.com>, ann@example.com` is two recipients.
 */
export function splitAddresses(value: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  let angle = false;
  for (const char of value) {
    if (char === '"' && !angle) quoted = !quoted;
    else if (char === '<' && !quoted) angle = true;
    else if (char === '>' && !quoted) angle = false;
    if ((char === ',' || char === ';') && !quoted && !angle) {
      out.push(current);
      current = '';
    } else current += char;
  }
  out.push(current);
  return out.map((a) => a.trim()).filter(Boolean);
}

const ADDRESS = /^[^\s@<>",;]+@[^\s@<>",;]+$/;

/** The first entry that is not an address a server would take, if any. */
export function badAddress(list: string[]): string | undefined {
  return list.find((entry) => {
    const angle = /<([^<>]*)>\s*$/.exec(entry);
    return !ADDRESS.test(angle ? angle[1]!.trim() : entry);
  });
}

/** Where the recipient being typed starts: after the last comma or semicolon outside quotes and angle brackets. */
function lastEntryStart(value: string): number {
  let start = 0;
  let quoted = false;
  let angle = false;
  for (let i = 0; i < value.length; i++) {
    const char = value[i];
    if (char === '"' && !angle) quoted = !quoted;
    else if (char === '<' && !quoted) angle = true;
    else if (char === '>' && !quoted) angle = false;
    else if ((char === ',' || char === ';') && !quoted && !angle) start = i + 1;
  }
  return start;
}

/** `Name <address>`, the name quoted when it holds characters that would split or end it (RFC 5322 §3.4). */
export function formatAddress(a: Address): string {
  if (!a.name) return a.address;
  const name = /[,;<>"@()[\]:\\]/.test(a.name) ? `"${a.name.replace(/["\\]/g, '\\$&')}"` : a.name;
  return `${name} <${a.address}>`;
}

/**
 * A To/Cc/Bcc field that suggests people from mail already exchanged (/api/contacts) for the
 * recipient being typed: arrows move, Enter or Tab picks, Escape closes the list, a click picks.
 */
function AddressField({ label, value, onValue, autofocus, placeholder }: { label: string; value: string; onValue: (value: string) => void; autofocus?: boolean; placeholder?: string }) {
  const [suggestions, setSuggestions] = useState<Address[]>([]);
  const [active, setActive] = useState(0);
  const asked = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout>>();
  const input = useRef<HTMLInputElement>(null);
  const listId = `suggest-${label.toLowerCase()}`;
  useEffect(() => () => clearTimeout(timer.current), []);

  function suggest(text: string) {
    clearTimeout(timer.current);
    const typed = text.slice(lastEntryStart(text)).trim();
    const ask = ++asked.current;
    if (!typed || typed.includes('<')) return setSuggestions([]);
    timer.current = setTimeout(async () => {
      try {
        const { contacts } = await api<{ contacts: Address[] }>('GET', `/api/contacts?q=${encodeURIComponent(typed.slice(0, 200))}`);
        if (ask !== asked.current) return; // a later keystroke asked again
        setSuggestions(contacts);
        setActive(0);
      } catch {
        setSuggestions([]); // suggestions are a help, never an error
      }
    }, 120);
  }

  function pick(contact: Address) {
    const start = lastEntryStart(value);
    const before = value.slice(0, start).trimEnd();
    onValue(`${before ? `${before} ` : ''}${formatAddress(contact)}, `);
    asked.current++;
    setSuggestions([]);
    input.current?.focus();
  }

  function onKeyDown(event: KeyboardEvent) {
    if (suggestions.length === 0) return;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const step = event.key === 'ArrowDown' ? 1 : -1;
      setActive((active + step + suggestions.length) % suggestions.length);
    } else if ((event.key === 'Enter' && !event.ctrlKey && !event.metaKey) || (event.key === 'Tab' && !event.shiftKey)) {
      // Picks the suggestion; the form never sees this Enter (it would move on, never send).
      event.preventDefault();
      event.stopPropagation();
      pick(suggestions[active]!);
    } else if (event.key === 'Escape') {
      event.stopPropagation(); // closes the list, not the message
      asked.current++;
      setSuggestions([]);
    }
  }

  const open = suggestions.length > 0;
  return (
    <div class="address-field">
      <label>
        {label}{' '}
        <input
          ref={input}
          value={value}
          autofocus={autofocus}
          placeholder={placeholder}
          autocomplete="off"
          role="combobox"
          aria-autocomplete="list"
          aria-expanded={open}
          aria-controls={listId}
          aria-activedescendant={open ? `${listId}-${active}` : undefined}
          onInput={(e) => {
            onValue(e.currentTarget.value);
            suggest(e.currentTarget.value);
          }}
          onKeyDown={onKeyDown}
          onBlur={() => {
            asked.current++;
            setSuggestions([]);
          }}
        />
      </label>
      {open && (
        <ul class="suggestions" role="listbox" id={listId} aria-label={`Suggestions for ${label}`}>
          {suggestions.map((contact, i) => (
            <li
              key={contact.address}
              id={`${listId}-${i}`}
              role="option"
              aria-selected={i === active}
              // mousedown would take the focus from the field (and close the list) before the click
              onMouseDown={(e) => e.preventDefault()}
              onClick={() => pick(contact)}
            >
              {contact.name ? (
                <>
                  <span class="suggestion-name">{contact.name}</span> <span class="suggestion-address">&lt;{contact.address}&gt;</span>
                </>
              ) : (
                <span class="suggestion-address">{contact.address}</span>
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** How long typing must pause before the draft is saved. */
const AUTOSAVE_MS = 1500;

function toBase64(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export function Compose({ draft, onClose, onSent }: { draft: Draft; onClose: (saved: boolean) => void; onSent: () => void }) {
  const [to, setTo] = useState(draft.to);
  const [cc, setCc] = useState(draft.cc);
  const [bcc, setBcc] = useState(draft.bcc ?? '');
  const [saved, setSaved] = useState('');
  const [subject, setSubject] = useState(draft.subject);
  const [text, setText] = useState(draft.text);
  const [files, setFiles] = useState<File[]>([]);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const body = useRef<HTMLTextAreaElement>(null);
  // What the saving code reads: the latest fields, the draft's UID in Drafts, and whether
  // anything changed since the last save. Saves run one after another (each replaces the last).
  const state = useRef({ draftUid: draft.draftUid, dirty: false, sent: false, saving: Promise.resolve(true) });
  const fields = useRef({ to, cc, bcc, subject, text, files });
  fields.current = { to, cc, bcc, subject, text, files };
  const timer = useRef<ReturnType<typeof setTimeout>>();

  // A reply starts with the cursor above the quote.
  useEffect(() => {
    if (draft.to && body.current) {
      body.current.focus();
      body.current.setSelectionRange(0, 0);
    }
    return () => clearTimeout(timer.current);
  }, []);

  function changed<T>(set: (value: T) => void) {
    return (value: T) => {
      set(value);
      state.current.dirty = true;
      clearTimeout(timer.current);
      timer.current = setTimeout(() => void save(), AUTOSAVE_MS);
    };
  }

  async function message() {
    const { to, cc, bcc, subject, text, files } = fields.current;
    const attachments = await Promise.all(files.map(async (file) => ({ filename: file.name, content: await toBase64(file) })));
    return {
      to: splitAddresses(to),
      cc: splitAddresses(cc),
      bcc: splitAddresses(bcc),
      subject,
      text,
      attachments,
      ...(draft.inReplyTo ? { inReplyTo: draft.inReplyTo, references: draft.references ?? [] } : {}),
      ...(draft.forward ? { forward: { mailbox: draft.forward.mailbox, uid: draft.forward.uid } } : {}),
    };
  }

  async function send() {
    clearTimeout(timer.current);
    setError('');
    const { to, cc, bcc } = fields.current;
    const all = [...splitAddresses(to), ...splitAddresses(cc), ...splitAddresses(bcc)];
    if (all.length === 0) return setError('Add at least one recipient in To, Cc or Bcc.');
    const bad = badAddress(all);
    if (bad) return setError(`“${bad}” is not an email address. Write it as name@example.com or Name <name@example.com>.`);
    setBusy(true);
    await state.current.saving; // a save under way finishes first, so its draft is the one removed
    try {
      const { draftUid } = state.current;
      await api('POST', '/api/send', { ...(await message()), ...(draftUid ? { draft: draftUid } : {}) });
      state.current.sent = true;
      onSent();
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  }

  /** Saves to Drafts when something changed; true when nothing is left unsaved. */
  function save(): Promise<boolean> {
    clearTimeout(timer.current);
    const run = async () => {
      if (!state.current.dirty || state.current.sent) return true;
      state.current.dirty = false;
      try {
        const { draftUid } = state.current;
        // Addresses half typed are kept as they are; the server checks them when sending.
        const content = await message();
        const keep = (list: string[]) => list.filter((a) => !badAddress([a]));
        const result = await api<{ uid: number }>('POST', '/api/drafts', { ...content, to: keep(content.to), cc: keep(content.cc), bcc: keep(content.bcc), ...(draftUid ? { replaces: draftUid } : {}) });
        state.current.draftUid = result.uid;
        setSaved(`Draft saved at ${new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}.`);
        setError('');
        return true;
      } catch (e) {
        state.current.dirty = true;
        setError(`The draft could not be saved: ${(e as Error).message}`);
        return false;
      }
    };
    state.current.saving = state.current.saving.then(run, run);
    return state.current.saving;
  }

  /** Escape and Close keep the work: saved to Drafts first, and the window stays if that fails. */
  async function close() {
    const hadChanges = state.current.dirty;
    if (await save()) onClose(hadChanges || state.current.draftUid !== draft.draftUid);
  }

  function onKeyDown(event: KeyboardEvent) {
    const target = event.target as HTMLElement;
    if (event.key === 'Escape') {
      event.preventDefault();
      void close();
    } else if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (!busy) void send();
    } else if (event.key === 'Enter' && target.tagName === 'INPUT') {
      event.preventDefault(); // Enter in a one-line field never sends: it moves on
      const inputs = [...(event.currentTarget as HTMLFormElement).querySelectorAll<HTMLElement>('input:not([type=file]), textarea')];
      inputs[inputs.indexOf(target) + 1]?.focus();
    }
  }

  return (
    <form
      class="compose"
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
      onKeyDown={onKeyDown}
      aria-label="Compose"
    >
      <AddressField label="To" value={to} onValue={changed(setTo)} autofocus={!draft.to} placeholder="Name <name@example.com>, …" />
      <AddressField label="Cc" value={cc} onValue={changed(setCc)} />
      <AddressField label="Bcc" value={bcc} onValue={changed(setBcc)} />
      <label>
        Subject <input value={subject} onInput={(e) => changed(setSubject)(e.currentTarget.value)} />
      </label>
      <textarea ref={body} aria-label="Message" rows={14} value={text} onInput={(e) => changed(setText)(e.currentTarget.value)} />
      <label>
        Attachments <input type="file" multiple onChange={(e) => changed(setFiles)([...(e.currentTarget.files ?? [])])} />
      </label>
      {draft.forward && draft.forward.attachments > 0 && (
        <p class="hint">
          {draft.forward.attachments} attachment{draft.forward.attachments > 1 ? 's' : ''} of the original message go along.
        </p>
      )}
      {saved && (
        <p class="hint" role="status">
          {saved}
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="actions">
        <button type="submit" class="primary" disabled={busy} title="Send (Ctrl+Enter)">
          {busy ? 'Sending…' : 'Send'}
        </button>
        <button type="button" onClick={() => ((state.current.dirty = true), void save())} disabled={busy}>
          Save draft
        </button>
        <button type="button" onClick={() => void close()} title="Close and keep the draft (Escape)">
          Close
        </button>
      </div>
    </form>
  );
}
