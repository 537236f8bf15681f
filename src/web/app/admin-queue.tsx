// Queue page: the outbound queue; show one entry, retry, hold, release, delete.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from './api.js';
import { bytes, when, type QueueEntry } from './admin-api.js';
import { Alert, ConfirmButton, Status, useAction } from './admin-common.js';

function EntryDetail({ entry, onClose }: { entry: QueueEntry; onClose: () => void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), [entry.id]);
  return (
    <section class="admin-detail" aria-labelledby="queue-entry-heading">
      <h3 id="queue-entry-heading" tabIndex={-1} ref={heading}>
        Queue entry {entry.id}
      </h3>
      <dl class="admin-facts">
        <dt>From</dt>
        <dd>{entry.from || '<> (bounce)'}</dd>
        <dt>To</dt>
        <dd>{entry.recipients.join(', ')}</dd>
        <dt>Status</dt>
        <dd>
          {entry.status}
          {entry.warned && ' (delay notice sent)'}
        </dd>
        <dt>Attempts</dt>
        <dd>{entry.attempts}</dd>
        <dt>Next attempt</dt>
        <dd>{when(entry.nextAttemptAt)}</dd>
        <dt>Last error</dt>
        <dd>{entry.lastError ?? 'none'}</dd>
        <dt>Size</dt>
        <dd>{bytes(entry.size)}</dd>
        <dt>Queued</dt>
        <dd>{when(entry.createdAt)}</dd>
      </dl>
      <button type="button" onClick={onClose}>
        Close entry
      </button>
    </section>
  );
}

export function QueuePage() {
  const [entries, setEntries] = useState<QueueEntry[] | null>(null);
  const [shown, setShown] = useState<QueueEntry | null>(null);
  const [error, setError] = useState('');
  const [status, setStatus] = useState('');
  const { busy, run } = useAction(setError, setStatus);

  const load = async () => {
    try {
      setEntries((await api<{ entries: QueueEntry[] }>('GET', '/api/admin/queue')).entries);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => void load(), []);

  const show = (id: number) =>
    run(async () => setShown((await api<{ entry: QueueEntry }>('GET', `/api/admin/queue/${id}`)).entry), '');

  const act = async (id: number, action: 'retry' | 'hold' | 'release' | 'delete') => {
    const done = { retry: 'will be retried now', hold: 'is held', release: 'is released', delete: 'is deleted' }[action];
    const ok = await run(() => (action === 'delete' ? api('DELETE', `/api/admin/queue/${id}`) : api('POST', `/api/admin/queue/${id}/${action}`)), `Entry ${id} ${done}.`);
    if (!ok) return;
    await load();
    if (shown?.id === id) {
      if (action === 'delete') setShown(null);
      else await show(id);
    }
  };

  return (
    <section aria-labelledby="queue-heading">
      <h2 id="queue-heading">Queue</h2>
      <Alert message={error} />
      <Status message={status} />
      <div class="toolbar">
        <button type="button" onClick={() => void load()}>
          Refresh queue
        </button>
      </div>
      {entries && (
        <div class="admin-scroll">
          <table class="admin-table admin-cards">
            <caption>{entries.length === 0 ? 'The queue is empty.' : `${entries.length} queued ${entries.length === 1 ? 'message' : 'messages'}`}</caption>
            <thead>
              <tr>
                <th scope="col">Entry</th>
                <th scope="col">From</th>
                <th scope="col">To</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Next attempt</th>
                <th scope="col">Last error</th>
                <th scope="col">Size</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((entry) => (
                <tr key={entry.id}>
                  <th scope="row">{entry.id}</th>
                  <td data-label="From">{entry.from || '<>'}</td>
                  <td data-label="To">{entry.recipients.join(', ')}</td>
                  <td data-label="Status">{entry.status}</td>
                  <td data-label="Attempts">{entry.attempts}</td>
                  <td data-label="Next attempt">{when(entry.nextAttemptAt)}</td>
                  <td class="admin-wrap" data-label="Last error">{entry.lastError ?? ''}</td>
                  <td data-label="Size">{bytes(entry.size)}</td>
                  <td class="admin-actions">
                    <button type="button" aria-label={`Show entry ${entry.id}`} onClick={() => void show(entry.id)}>
                      Show
                    </button>
                    <button type="button" aria-label={`Retry entry ${entry.id}`} disabled={busy} onClick={() => void act(entry.id, 'retry')}>
                      Retry
                    </button>
                    {entry.status === 'held' ? (
                      <button type="button" aria-label={`Release entry ${entry.id}`} disabled={busy} onClick={() => void act(entry.id, 'release')}>
                        Release
                      </button>
                    ) : (
                      <button type="button" aria-label={`Hold entry ${entry.id}`} disabled={busy} onClick={() => void act(entry.id, 'hold')}>
                        Hold
                      </button>
                    )}
                    <ConfirmButton label={`Delete entry ${entry.id}`} question={`Delete entry ${entry.id}?`} disabled={busy} onConfirm={() => void act(entry.id, 'delete')}>
                      Delete
                    </ConfirmButton>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {shown && <EntryDetail entry={shown} onClose={() => setShown(null)} />}
    </section>
  );
}
