// Writing a message: recipients, subject, text and attachments; sent through /api/send.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from './api.js';

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

const splitAddresses = (value: string) =>
  value
    .split(/[,;\s]+/)
    .map((a) => a.trim())
    .filter(Boolean);

function toBase64(file: File): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export function Compose({ draft, onClose, onSent }: { draft: Draft; onClose: () => void; onSent: () => void }) {
  const [to, setTo] = useState(draft.to);
  const [cc, setCc] = useState(draft.cc);
  const [bcc, setBcc] = useState(draft.bcc ?? '');
  const [draftUid, setDraftUid] = useState(draft.draftUid);
  const [saved, setSaved] = useState('');
  const [subject, setSubject] = useState(draft.subject);
  const [text, setText] = useState(draft.text);
  const [files, setFiles] = useState<File[]>([]);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const body = useRef<HTMLTextAreaElement>(null);

  // A reply starts with the cursor above the quote.
  useEffect(() => {
    if (draft.to && body.current) {
      body.current.focus();
      body.current.setSelectionRange(0, 0);
    }
  }, []);

  async function message() {
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

  async function send(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      await api('POST', '/api/send', { ...(await message()), ...(draftUid ? { draft: draftUid } : {}) });
      onSent();
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  }

  async function save() {
    setBusy(true);
    setError('');
    try {
      const result = await api<{ uid: number }>('POST', '/api/drafts', { ...(await message()), ...(draftUid ? { replaces: draftUid } : {}) });
      setDraftUid(result.uid);
      setSaved(`Draft saved at ${new Date().toLocaleTimeString()}.`);
    } catch (e) {
      setError((e as Error).message);
    }
    setBusy(false);
  }

  return (
    <form class="compose" onSubmit={send} onKeyDown={(e) => e.key === 'Escape' && onClose()} aria-label="Compose">
      <label>
        To <input required value={to} onInput={(e) => setTo(e.currentTarget.value)} autofocus={!draft.to} />
      </label>
      <label>
        Cc <input value={cc} onInput={(e) => setCc(e.currentTarget.value)} />
      </label>
      <label>
        Bcc <input value={bcc} onInput={(e) => setBcc(e.currentTarget.value)} />
      </label>
      <label>
        Subject <input value={subject} onInput={(e) => setSubject(e.currentTarget.value)} />
      </label>
      <textarea ref={body} aria-label="Message" rows={14} value={text} onInput={(e) => setText(e.currentTarget.value)} />
      <label>
        Attachments <input type="file" multiple onChange={(e) => setFiles([...(e.currentTarget.files ?? [])])} />
      </label>
      {draft.forward && draft.forward.attachments > 0 && (
        <p class="hint">
          {draft.forward.attachments} attachment{draft.forward.attachments > 1 ? 's' : ''} of the original message go along.
        </p>
      )}
      {saved && <p class="hint">{saved}</p>}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="actions">
        <button type="submit" disabled={busy}>
          {busy ? 'Sending…' : 'Send'}
        </button>
        <button type="button" onClick={save} disabled={busy}>
          Save draft
        </button>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
    </form>
  );
}
