// The file drive: folders and files of the signed-in user. The open folder is kept in the
// hash (#/drive/12). Uploads go in 8 MiB PUTs with Content-Range, so a dropped connection
// costs at most one piece: the client asks the server where it stands and carries on.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, csrfHeader, enc, type UserInfo } from './api.js';
import { AppNav } from './nav.js';

/** Bytes per PUT; the server commits them in 1 MiB chunks as they arrive. */
const PIECE = 8 * 1024 * 1024;
const RETRIES = 6;

interface Entry {
  id: number;
  parent: number | null;
  name: string;
  kind: 'folder' | 'file';
  size: number;
  contentType: string | null;
  updated: string;
}

interface Listing {
  folder: number | null;
  path: { id: number; name: string }[];
  entries: Entry[];
  usedBytes: number;
  quotaBytes: number;
}

interface UploadState {
  key: number;
  name: string;
  size: number;
  sent: number;
  status: 'waiting' | 'sending' | 'retrying' | 'done' | 'failed' | 'cancelled';
  error?: string;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : value.toFixed(0)} ${units[unit]}`;
}

function folderFromHash(hash: string): number | null {
  const match = /^#\/drive\/(\d+)/.exec(hash);
  return match ? Number(match[1]) : null;
}

const folderHref = (id: number | null) => (id === null ? '#/drive' : `#/drive/${id}`);

/** One PUT of bytes through XMLHttpRequest, for its upload progress events. */
function putPiece(url: string, blob: Blob, first: number, total: number, onProgress: (loaded: number) => void, signal: AbortSignal): Promise<{ status: number; body: { offset?: number; error?: string; complete?: boolean } }> {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    signal.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.open('PUT', url);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.setRequestHeader('content-range', `bytes ${first}-${first + blob.size - 1}/${total}`);
    for (const [name, value] of Object.entries(csrfHeader())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    const parse = () => {
      try {
        return JSON.parse(xhr.responseText) as { offset?: number; error?: string; complete?: boolean };
      } catch {
        return {};
      }
    };
    xhr.onload = () => resolve({ status: xhr.status, body: parse() });
    xhr.onerror = () => resolve({ status: 0, body: { error: 'the connection dropped' } });
    xhr.ontimeout = xhr.onerror;
    xhr.onabort = () => resolve({ status: 0, body: { error: 'cancelled' } });
    xhr.send(blob);
  });
}

// Drawn, not emoji: a font without emoji would show boxes.
const FOLDER_ICON = 'M1 3.5A1.5 1.5 0 0 1 2.5 2h3.6l1.5 1.5h5.9A1.5 1.5 0 0 1 15 5v7.5a1.5 1.5 0 0 1-1.5 1.5h-11A1.5 1.5 0 0 1 1 12.5z';
const FILE_ICON = 'M3 1.5A1.5 1.5 0 0 1 4.5 0H10l4 4v10.5a1.5 1.5 0 0 1-1.5 1.5h-8A1.5 1.5 0 0 1 3 14.5zM10 1v3h3';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends one file; resumes from the server's offset after a failure. Throws with a clear message. */
async function sendFile(file: File, parent: number | null, onSent: (sent: number, retrying: boolean) => void, signal: AbortSignal): Promise<void> {
  const contentType = /^[\w.+-]+\/[\w.+-]+$/.test(file.type) ? file.type : undefined;
  const started = await api<{ id: string; offset: number }>('POST', '/api/drive/uploads', { parent, name: file.name, size: file.size, contentType });
  if (file.size === 0) return;
  const url = `/api/drive/uploads/${enc(started.id)}`;
  const cancelled = async () => {
    await api('DELETE', url).catch(() => undefined); // frees what was stored
    return new Error('cancelled');
  };
  let offset = started.offset;
  let failures = 0;
  while (offset < file.size) {
    const piece = file.slice(offset, Math.min(file.size, offset + PIECE));
    const at = offset;
    const reply = await putPiece(url, piece, at, file.size, (loaded) => onSent(at + loaded, false), signal);
    if (signal.aborted) throw await cancelled();
    if (reply.status === 200) {
      offset = reply.body.offset ?? at + piece.size;
      failures = 0;
      onSent(offset, false);
      continue;
    }
    if (reply.status === 409 && typeof reply.body.offset === 'number' && reply.body.offset !== at) {
      offset = reply.body.offset;
      continue;
    }
    // Only a dropped connection or a server in trouble is worth another try.
    if ((reply.status !== 0 && reply.status < 500) || reply.status === 507 || ++failures > RETRIES) {
      throw new Error(reply.body.error ?? `HTTP ${reply.status}`);
    }
    onSent(offset, true);
    await pause(500 * 2 ** failures);
    if (signal.aborted) throw await cancelled();
    try {
      offset = (await api<{ offset: number }>('GET', url)).offset;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) throw new Error('the upload is gone from the server (expired or cancelled)');
    }
  }
}

function uploadText(u: UploadState): string {
  switch (u.status) {
    case 'done':
      return `Uploaded, ${formatBytes(u.size)}`;
    case 'failed':
      return `Failed: ${u.error}`;
    case 'cancelled':
      return 'Cancelled';
    case 'retrying':
      return `Connection lost, resuming at ${formatBytes(u.sent)}…`;
    case 'waiting':
      return 'Waiting';
    default:
      return `${formatBytes(u.sent)} of ${formatBytes(u.size)}`;
  }
}

function EntryRow({ entry, folders, onChanged, onError }: { entry: Entry; folders: { id: number | null; label: string }[]; onChanged: () => void; onError: (message: string) => void }) {
  const [mode, setMode] = useState<'idle' | 'rename' | 'move' | 'delete'>('idle');
  const [name, setName] = useState(entry.name);
  const [target, setTarget] = useState('');
  const run = async (action: () => Promise<unknown>) => {
    try {
      await action();
      setMode('idle');
      onChanged();
    } catch (error) {
      onError((error as Error).message);
    }
  };
  const escape = (event: KeyboardEvent) => {
    if (event.key === 'Escape') setMode('idle');
  };
  const targets = folders.filter((f) => f.id !== entry.id && f.id !== entry.parent);
  return (
    <li class={`entry ${entry.kind}`}>
      <svg class="icon" aria-hidden="true" viewBox="0 0 16 16" width="16" height="16">
        <path d={entry.kind === 'folder' ? FOLDER_ICON : FILE_ICON} />
      </svg>
      {mode === 'rename' ? (
        <form
          class="inline"
          onKeyDown={escape}
          onSubmit={(event) => {
            event.preventDefault();
            void run(() => api('PATCH', `/api/drive/nodes/${entry.id}`, { name: name.trim() }));
          }}
        >
          <input aria-label={`New name for ${entry.name}`} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} required maxLength={255} autoFocus />
          <button type="submit">Save</button>
          <button type="button" onClick={() => setMode('idle')}>
            Cancel
          </button>
        </form>
      ) : entry.kind === 'folder' ? (
        <a class="name" href={folderHref(entry.id)}>
          {entry.name}
        </a>
      ) : (
        <span class="name">{entry.name}</span>
      )}
      <span class="size">{entry.kind === 'file' ? formatBytes(entry.size) : ''}</span>
      <span class="date">{new Date(entry.updated).toLocaleDateString()}</span>
      {mode === 'move' ? (
        <form
          class="inline"
          onKeyDown={escape}
          onSubmit={(event) => {
            event.preventDefault();
            const parent = target === 'root' ? null : Number(target);
            void run(() => api('PATCH', `/api/drive/nodes/${entry.id}`, { parent }));
          }}
        >
          <select aria-label={`Move ${entry.name} to`} value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)} required autoFocus>
            <option value="">Move to…</option>
            {targets.map((f) => (
              <option key={f.id ?? 'root'} value={f.id === null ? 'root' : String(f.id)}>
                {f.label}
              </option>
            ))}
          </select>
          <button type="submit" disabled={!target}>
            Move
          </button>
          <button type="button" onClick={() => setMode('idle')}>
            Cancel
          </button>
        </form>
      ) : mode === 'delete' ? (
        <span class="actions" role="group" aria-label={`Delete ${entry.name}?`} onKeyDown={escape}>
          <span>{entry.kind === 'folder' ? 'Delete with everything in it?' : 'Delete?'}</span>
          <button type="button" class="danger" onClick={() => void run(() => api('DELETE', `/api/drive/nodes/${entry.id}`))}>
            Yes, delete
          </button>
          {/* The safe answer has the focus, so a stray Enter keeps the file. */}
          <button type="button" onClick={() => setMode('idle')} autoFocus>
            Keep
          </button>
        </span>
      ) : (
        mode === 'idle' && (
          <span class="actions">
            {entry.kind === 'file' && (
              <a href={`/api/drive/files/${entry.id}/content`} download={entry.name} aria-label={`Download ${entry.name}`}>
                Download
              </a>
            )}
            <button type="button" aria-label={`Rename ${entry.name}`} onClick={() => (setName(entry.name), setMode('rename'))}>
              Rename
            </button>
            <button type="button" disabled={targets.length === 0} aria-label={`Move ${entry.name}`} onClick={() => (setTarget(''), setMode('move'))}>
              Move
            </button>
            <button type="button" aria-label={`Delete ${entry.name}`} onClick={() => setMode('delete')}>
              Delete
            </button>
          </span>
        )
      )}
    </li>
  );
}

export function Drive({ user, onLogout }: { user: UserInfo; onLogout: () => void }) {
  const [folder, setFolder] = useState<number | null>(folderFromHash(location.hash));
  const [listing, setListing] = useState<Listing | null>(null);
  const [error, setError] = useState('');
  const [newFolder, setNewFolder] = useState('');
  const [uploads, setUploads] = useState<UploadState[]>([]);
  const [dragging, setDragging] = useState(false);
  const uploading = useRef(false);
  const queue = useRef<{ key: number; file: File; parent: number | null }[]>([]);
  const aborts = useRef(new Map<number, AbortController>());
  const nextKey = useRef(1);
  const fileInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    const changed = () => setFolder(folderFromHash(location.hash));
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);

  const load = useCallback(() => {
    api<Listing>('GET', folder === null ? '/api/drive' : `/api/drive?folder=${folder}`).then(
      (data) => {
        setListing(data);
      },
      (e: Error) => {
        setError(e.message);
        if (e instanceof ApiError && e.status === 404 && folder !== null) location.hash = '#/drive';
      },
    );
  }, [folder]);
  useEffect(load, [load]);
  // Uploads outlive a change of folder: they refresh whatever folder is open when they end.
  const loadLatest = useRef(load);
  loadLatest.current = load;

  const update = (key: number, change: Partial<UploadState>) => setUploads((list) => list.map((u) => (u.key === key ? { ...u, ...change } : u)));

  // One file at a time: the server's disk and the user's line are shared anyway.
  const pump = async () => {
    if (uploading.current) return;
    uploading.current = true;
    for (let item = queue.current.shift(); item; item = queue.current.shift()) {
      const { key, file, parent } = item;
      const abort = new AbortController();
      aborts.current.set(key, abort);
      update(key, { status: 'sending' });
      try {
        await sendFile(file, parent, (sent, retrying) => update(key, { sent, status: retrying ? 'retrying' : 'sending' }), abort.signal);
        update(key, { sent: file.size, status: 'done' });
      } catch (e) {
        update(key, abort.signal.aborted ? { status: 'cancelled' } : { status: 'failed', error: (e as Error).message });
      }
      aborts.current.delete(key);
      loadLatest.current();
    }
    uploading.current = false;
  };

  const cancel = (key: number) => {
    queue.current = queue.current.filter((item) => item.key !== key);
    const abort = aborts.current.get(key);
    if (abort) abort.abort();
    else update(key, { status: 'cancelled' });
  };

  const addFiles = (files: FileList | null) => {
    if (!files || files.length === 0) return;
    const added: UploadState[] = [];
    for (const file of Array.from(files)) {
      const key = nextKey.current++;
      queue.current.push({ key, file, parent: folder });
      added.push({ key, name: file.name, size: file.size, sent: 0, status: 'waiting' });
    }
    setUploads((list) => [...list.filter((u) => u.status !== 'done' && u.status !== 'cancelled'), ...added]);
    if (fileInput.current) fileInput.current.value = '';
    void pump();
  };

  const createFolder = async (event: Event) => {
    event.preventDefault();
    try {
      await api('POST', '/api/drive/folders', { parent: folder, name: newFolder.trim() });
      setNewFolder('');
      setError('');
      load();
    } catch (e) {
      setError((e as Error).message);
    }
  };

  const path = listing?.path ?? [];
  const parentOfFolder = path.length >= 2 ? path[path.length - 2]! : null;
  // Where an entry can move: the root, the folder above, and the folders beside it.
  const moveTargets: { id: number | null; label: string }[] = [];
  if (folder !== null) {
    moveTargets.push({ id: null, label: 'My files (top)' });
    if (parentOfFolder) moveTargets.push({ id: parentOfFolder.id, label: `${parentOfFolder.name} (up one level)` });
  }
  for (const entry of listing?.entries ?? []) if (entry.kind === 'folder') moveTargets.push({ id: entry.id, label: entry.name });

  const quota = listing && listing.quotaBytes > 0 ? listing.quotaBytes : 0;
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
      <main
        class={dragging ? 'dropping' : undefined}
        onDragOver={(event) => {
          if (!event.dataTransfer?.types.includes('Files')) return;
          event.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(event) => {
          event.preventDefault();
          setDragging(false);
          addFiles(event.dataTransfer?.files ?? null);
        }}
      >
        <nav class="crumbs" aria-label="Folder path">
          <ol>
            <li>
              <a href="#/drive" aria-current={folder === null ? 'page' : undefined}>
                My files
              </a>
            </li>
            {path.map((p) => (
              <li key={p.id}>
                <a href={folderHref(p.id)} aria-current={p.id === folder ? 'page' : undefined}>
                  {p.name}
                </a>
              </li>
            ))}
          </ol>
        </nav>
        <div class="drive-tools">
          <form onSubmit={createFolder}>
            <input aria-label="New folder name" placeholder="New folder" value={newFolder} onInput={(e) => setNewFolder((e.target as HTMLInputElement).value)} required maxLength={255} />
            <button type="submit">Create folder</button>
          </form>
          <label class="button">
            Upload files
            <input ref={fileInput} type="file" multiple onChange={(e) => addFiles((e.target as HTMLInputElement).files)} />
          </label>
          {listing && (
            <span class="quota">
              {quota > 0 ? (
                <>
                  <meter min={0} max={quota} value={listing.usedBytes} aria-label="Storage used" />
                  {formatBytes(listing.usedBytes)} of {formatBytes(quota)} used (mail and files)
                </>
              ) : (
                <>{formatBytes(listing.usedBytes)} used (mail and files)</>
              )}
            </span>
          )}
        </div>
        {error && (
          <p class="error" role="alert">
            {error}{' '}
            <button type="button" class="link" onClick={() => setError('')}>
              Dismiss
            </button>
          </p>
        )}
        {uploads.length > 0 && (
          <ul class="uploads" aria-label="Uploads">
            {uploads.map((u) => (
              <li key={u.key} class={u.status}>
                <span class="name">{u.name}</span>
                <progress max={u.size || 1} value={u.status === 'done' ? u.size || 1 : u.sent} aria-label={`Upload of ${u.name}`} />
                <span class="state">
                  {uploadText(u)}
                  {(u.status === 'waiting' || u.status === 'sending' || u.status === 'retrying') && (
                    <>
                      {' '}
                      <button type="button" class="link" aria-label={`Cancel upload of ${u.name}`} onClick={() => cancel(u.key)}>
                        Cancel
                      </button>
                    </>
                  )}
                </span>
              </li>
            ))}
          </ul>
        )}
        {listing === null ? (
          <p class="hint">Loading…</p>
        ) : listing.entries.length === 0 ? (
          <p class="hint">This folder is empty. Upload files (or drop them here) or create a folder.</p>
        ) : (
          <ul class="entries" aria-label="Files and folders">
            {listing.entries.map((entry) => (
              <EntryRow key={entry.id} entry={entry} folders={moveTargets} onChanged={load} onError={setError} />
            ))}
          </ul>
        )}
      </main>
    </div>
  );
}
