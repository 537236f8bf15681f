// Cluster page: every node and gateway from its last heartbeat, refreshed every 2 s while the
// page is visible; drain, undrain, stop and restart; the store's status.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, enc } from './api.js';
import { ago, bytes, since, type Cluster, type ClusterMember, type StoreView } from './admin-api.js';
import { Alert, ConfirmButton, Status, useAction } from './admin-common.js';

const POLL_MS = 2_000;

function connections(load: ClusterMember['load']): string {
  const parts = Object.entries(load.connections ?? {}).map(([proto, n]) => `${proto} ${n}`);
  return parts.length ? parts.join(', ') : 'none';
}

/** The state the member is in or has been asked to take (drain and undrain take effect at its next beat). */
function drainTarget(m: ClusterMember): string {
  return m.requestedState === 'draining' || m.requestedState === 'active' ? m.requestedState : m.state;
}

function StoreStatus({ store }: { store: StoreView }) {
  if (store.kind === 'sqlite')
    return (
      <dl class="admin-facts">
        <dt>Store</dt>
        <dd>SQLite</dd>
        <dt>File</dt>
        <dd>
          <code>{store.path}</code>
        </dd>
        <dt>Size</dt>
        <dd>{bytes(store.sizeBytes)}</dd>
      </dl>
    );
  return (
    <>
      <p>PostgreSQL, {store.groups.length === 1 ? 'one group' : `${store.groups.length} groups`}</p>
      <table class="admin-table">
        <caption>Store groups</caption>
        <thead>
          <tr>
            <th scope="col">Group</th>
            <th scope="col">Host</th>
            <th scope="col">Role</th>
            <th scope="col">Replay lag</th>
          </tr>
        </thead>
        <tbody>
          {store.groups.flatMap((group) =>
            group.hosts.map((host) => (
              <tr key={`${group.name} ${host.host}`}>
                <td>{group.name}</td>
                <td>{host.host}</td>
                <td>{host.role}</td>
                <td>{host.lagBytes === null ? '–' : bytes(host.lagBytes)}</td>
              </tr>
            )),
          )}
        </tbody>
      </table>
    </>
  );
}

export function ClusterPage() {
  const [cluster, setCluster] = useState<Cluster | null>(null);
  const [loadError, setLoadError] = useState('');
  const [error, setError] = useState('');
  const [status, setStatus] = useState('');
  const [now, setNow] = useState(Date.now());
  const { busy, run } = useAction(setError, setStatus);

  // One request at a time: a slow answer is never overtaken by an older one.
  const inFlight = useRef(false);
  const refresh = async () => {
    if (inFlight.current) return;
    inFlight.current = true;
    try {
      setCluster(await api<Cluster>('GET', '/api/admin/cluster'));
      setNow(Date.now());
      setLoadError('');
    } catch (e) {
      setLoadError((e as Error).message);
    } finally {
      inFlight.current = false;
    }
  };

  // Poll while the page is visible; a hidden tab stops asking and catches up when shown.
  useEffect(() => {
    let timer: number | undefined;
    const schedule = () => {
      clearInterval(timer);
      timer = undefined;
      if (document.visibilityState === 'visible') {
        void refresh();
        timer = window.setInterval(() => void refresh(), POLL_MS);
      }
    };
    schedule();
    document.addEventListener('visibilitychange', schedule);
    return () => {
      clearInterval(timer);
      document.removeEventListener('visibilitychange', schedule);
    };
  }, []);

  const act = async (member: ClusterMember, action: 'drain' | 'undrain' | 'stop' | 'restart') => {
    const done = { drain: 'asked to drain', undrain: 'asked to take new work again', stop: 'asked to stop', restart: 'asked to restart' }[action];
    if (await run(() => api('POST', `/api/admin/nodes/${enc(member.id)}/${action}`), `${member.id} ${done}.`)) await refresh();
  };

  const members = cluster?.members ?? [];
  return (
    <section aria-labelledby="cluster-heading">
      <h2 id="cluster-heading">Cluster</h2>
      <Alert message={error || loadError} />
      <Status message={status} />
      {!cluster && !loadError && <p class="loading">Loading…</p>}
      {cluster && (
        <div class="admin-scroll">
          <table class="admin-table admin-cards">
            <caption>Nodes and gateways (updated every 2 s)</caption>
            <thead>
              <tr>
                <th scope="col">Member</th>
                <th scope="col">Kind</th>
                <th scope="col">State</th>
                <th scope="col">Alive</th>
                <th scope="col">Version</th>
                <th scope="col">Connections</th>
                <th scope="col">Load</th>
                <th scope="col">Up</th>
                <th scope="col">Last heartbeat</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {members.length === 0 && (
                <tr>
                  <td colSpan={10}>No member has sent a heartbeat.</td>
                </tr>
              )}
              {members.map((m) => (
                <tr key={m.id} class={m.alive ? '' : 'dead'}>
                  <th scope="row">{m.id}</th>
                  <td data-label="Kind">{m.kind}</td>
                  <td data-label="State">
                    <span class={`state state-${m.state}`}>{m.state}</span>
                    {m.requestedState && m.requestedState !== m.state && <span class="hint"> (asked: {m.requestedState})</span>}
                  </td>
                  <td data-label="Alive">{m.alive ? 'alive' : 'dead'}</td>
                  <td data-label="Version">{m.version}</td>
                  <td data-label="Connections" class="admin-wrap">{connections(m.load)}</td>
                  <td class="admin-wrap" data-label="Load">
                    CPU {m.load.cpuPercent}%, event loop {m.load.eventLoopDelayMs} ms, RSS {bytes(m.load.rssBytes)}
                    {m.load.queueDepth !== undefined && `, queue ${m.load.queueDepth}`}
                  </td>
                  <td data-label="Up">
                    <time dateTime={m.startedAt} title={`started ${new Date(m.startedAt).toLocaleString()}`}>
                      {since(m.startedAt, now)}
                    </time>
                  </td>
                  <td data-label="Last heartbeat">
                    <time dateTime={m.beatAt} title={new Date(m.beatAt).toLocaleString()}>
                      {ago(m.beatAt, now)}
                    </time>
                  </td>
                  <td class="admin-actions" data-label="Actions">
                    {m.kind === 'node' &&
                      (drainTarget(m) === 'draining' ? (
                        <button type="button" aria-label={`Undrain ${m.id}`} disabled={busy} onClick={() => void act(m, 'undrain')}>
                          Undrain
                        </button>
                      ) : (
                        <button type="button" aria-label={`Drain ${m.id}`} disabled={busy || m.state === 'stopping'} onClick={() => void act(m, 'drain')}>
                          Drain
                        </button>
                      ))}
                    {/* Nodes and gateways alike obey a stop or restart at their next beat. */}
                    <ConfirmButton label={`Stop ${m.id}`} question={`Stop ${m.id}?`} disabled={busy || !m.alive} onConfirm={() => void act(m, 'stop')}>
                      Stop
                    </ConfirmButton>
                    <ConfirmButton label={`Restart ${m.id}`} question={`Restart ${m.id}?`} disabled={busy || !m.alive} onConfirm={() => void act(m, 'restart')}>
                      Restart
                    </ConfirmButton>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {cluster && (
        <section aria-labelledby="store-heading">
          <h3 id="store-heading">Store</h3>
          <StoreStatus store={cluster.store} />
        </section>
      )}
    </section>
  );
}
