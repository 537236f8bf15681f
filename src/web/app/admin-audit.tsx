// Audit log page: who did what when, newest first, a page at a time (older pages by id).
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { details, when, type AuditEntry } from './admin-api.js';
import { Alert } from './admin-common.js';

const PAGE = 50;

export function AuditPage() {
  // The `before` ids of the pages shown so far; the last one is the current page (undefined: newest).
  const [pages, setPages] = useState<(number | undefined)[]>([undefined]);
  const [entries, setEntries] = useState<AuditEntry[] | null>(null);
  const [error, setError] = useState('');
  const before = pages[pages.length - 1];

  const load = async () => {
    try {
      const query = before === undefined ? `limit=${PAGE}` : `limit=${PAGE}&before=${before}`;
      setEntries((await api<{ entries: AuditEntry[] }>('GET', `/api/admin/audit?${query}`)).entries);
      setError('');
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => void load(), [before]);

  const oldest = entries?.[entries.length - 1];
  return (
    <section aria-labelledby="audit-heading">
      <h2 id="audit-heading">Audit log</h2>
      <Alert message={error} />
      <div class="toolbar">
        <button type="button" onClick={() => (pages.length > 1 ? setPages([undefined]) : void load())}>
          Newest entries
        </button>
      </div>
      {entries && (
        <div class="admin-scroll">
          <table class="admin-table">
            <caption>{entries.length === 0 ? 'No entries.' : pages.length === 1 ? 'Newest first' : `Older entries, page ${pages.length}`}</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">Action</th>
                <th scope="col">Target</th>
                <th scope="col">Detail</th>
                <th scope="col">Node</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr key={e.id}>
                  <td>
                    <time dateTime={e.at}>{when(e.at)}</time>
                  </td>
                  <td>{e.actor}</td>
                  <td>{e.action}</td>
                  <td>{e.target}</td>
                  <td class="admin-wrap">
                    {details(e.detail)}
                  </td>
                  <td>{e.node ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div class="pager">
        <button type="button" disabled={pages.length === 1} onClick={() => setPages(pages.slice(0, -1))}>
          Newer entries
        </button>
        <button type="button" disabled={!oldest || (entries?.length ?? 0) < PAGE} onClick={() => oldest && setPages([...pages, oldest.id])}>
          Older entries
        </button>
      </div>
    </section>
  );
}
