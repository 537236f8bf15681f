// One conversation: its messages oldest first, one open in full (text or sandboxed HTML).
import { Paperclip } from 'lucide-preact';
import { useEffect, useState } from 'preact/hooks';
import { api, enc, type MessageView, type Summary } from './api.js';
import { friendlyDate, full, linkify, longDate, size, who } from './format.js';

// The message's HTML is already sanitised by the server; the frame adds a second wall: no
// scripts (sandbox without allow-scripts), no same-origin access, and its own strict policy.
// The message's own <style> applies inside this frame only; remote loads wait for the reader.
function frameDocument(html: string, images: boolean): string {
  const imgSrc = images ? 'data: https: http:' : 'data:';
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src ${imgSrc}; style-src 'unsafe-inline'"><base target="_blank"><style>body{font-family:system-ui,sans-serif;margin:0.5rem;word-wrap:break-word}img{max-width:100%;height:auto}</style></head><body>${html}</body></html>`;
}

/** The open message, its remote images allowed or not, and kept told of flag changes. */
export function useMessage(folder: string, uid: number | null, onError: (e: unknown) => void) {
  const [view, setView] = useState<MessageView | null>(null);
  const [images, setImages] = useState(false);
  useEffect(() => {
    setView(null);
    setImages(false);
    if (uid === null) return;
    let live = true;
    api<MessageView>('GET', `/api/messages/${enc(folder)}/${uid}`).then(async (v) => {
      if (!live) return;
      setView(v);
      // Opening marks it read, and the page shows it so (the button then offers "Mark unread").
      if (!v.flags.includes('\\Seen')) {
        const r = await api<{ flags: string[] }>('POST', `/api/messages/${enc(folder)}/${uid}/flags`, { add: ['\\Seen'] });
        if (live) setView((current) => current && { ...current, flags: r.flags });
      }
    }, onError).catch(onError);
    return () => {
      live = false;
    };
  }, [folder, uid]);
  useEffect(() => {
    if (!images || uid === null) return;
    api<MessageView>('GET', `/api/messages/${enc(folder)}/${uid}?images=1`).then(setView, onError);
  }, [images]);
  return { view, setView, images, showImages: () => setImages(true) };
}

export function MessageBody({ view, folder, images, onShowImages }: { view: MessageView; folder: string; images: boolean; onShowImages: () => void }) {
  const attachments = view.attachments.filter((a) => !a.embedded);
  return (
    <>
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
        <dd>{longDate(view.date)}</dd>
      </dl>
      {view.remoteImages > 0 && !images && (
        <p class="notice inline">
          {view.remoteImages} remote image{view.remoteImages > 1 ? 's' : ''} blocked.{' '}
          <button type="button" onClick={onShowImages}>
            Show images
          </button>
        </p>
      )}
      {view.html !== null ? (
        <iframe class="body" title="Message body" sandbox="allow-popups allow-popups-to-escape-sandbox" srcdoc={frameDocument(view.html, images)} />
      ) : (
        <pre class="body text">{linkify(view.text ?? '')}</pre>
      )}
      {attachments.length > 0 && (
        <ul class="attachments" aria-label="Attachments">
          {attachments.map((a) => (
            <li key={a.index}>
              <Paperclip size={14} aria-hidden="true" />{' '}
              <a href={`/api/messages/${enc(folder)}/${view.uid}/attachments/${a.index}`} download={a.filename ?? ''}>
                {a.filename ?? `attachment ${a.index + 1}`}
              </a>{' '}
              ({size(a.size)})
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

/** The other messages of the conversation, as one line each; a click opens one. */
export function ThreadLine({ summary, onOpen }: { summary: Summary; onOpen: () => void }) {
  return (
    <li class={summary.flags.includes('\\Seen') ? 'earlier' : 'earlier unread'}>
      <button type="button" onClick={onOpen}>
        <span class="from">{who(summary.from)}</span>
        <span class="preview">{summary.preview}</span>
        <time>{friendlyDate(summary.date ?? summary.internalDate)}</time>
      </button>
    </li>
  );
}
