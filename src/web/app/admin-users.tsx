// Users and domains: search and page through users, create, disable/enable, reset password,
// set quota, move to a store group; list, add and remove domains.
import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, enc } from './api.js';
import { bytes, when, type AdminUser, type Domain } from './admin-api.js';
import { Alert, ConfirmButton, Status, useAction } from './admin-common.js';

const PAGE = 20;
const MIB = 1 << 20;

type Run = ReturnType<typeof useAction>['run'];

function CreateUser({ run, busy, onCreated }: { run: Run; busy: boolean; onCreated: () => void }) {
  const [address, setAddress] = useState('');
  const [password, setPassword] = useState('');
  const [quota, setQuota] = useState('0');
  const [isAdmin, setIsAdmin] = useState(false);
  async function submit(event: Event) {
    event.preventDefault();
    const quotaBytes = Math.round(Number(quota) * MIB);
    const ok = await run(() => api('POST', '/api/admin/users', { address, password, quotaBytes, isAdmin }), `Created ${address.trim().toLowerCase()}.`);
    if (ok) {
      setAddress('');
      setPassword('');
      setQuota('0');
      setIsAdmin(false);
      onCreated();
    }
  }
  return (
    <form class="admin-form" onSubmit={submit} aria-label="Create user">
      <h3>Create user</h3>
      <label>
        New address
        <input type="email" required value={address} onInput={(e) => setAddress(e.currentTarget.value)} />
      </label>
      <label>
        New password (8 characters or more)
        <input type="password" autocomplete="new-password" required minLength={8} value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
      </label>
      <label>
        Quota in MiB (0 = unlimited)
        <input type="number" min="0" step="any" required value={quota} onInput={(e) => setQuota(e.currentTarget.value)} />
      </label>
      <label class="inline">
        <input type="checkbox" checked={isAdmin} onChange={(e) => setIsAdmin(e.currentTarget.checked)} /> Administrator
      </label>
      <button type="submit" disabled={busy}>
        Create user
      </button>
    </form>
  );
}

/** The forms for one user: password, quota, group. */
function ManageUser({ user, run, busy, onChanged }: { user: AdminUser; run: Run; busy: boolean; onChanged: () => void }) {
  const [password, setPassword] = useState('');
  const [quota, setQuota] = useState(String(user.quotaBytes / MIB));
  const [group, setGroup] = useState(user.group ?? '');
  const base = `/api/admin/users/${enc(user.address)}`;
  return (
    <div class="admin-manage" role="group" aria-label={`Manage ${user.address}`}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (await run(() => api('POST', `${base}/password`, { password }), `New password set for ${user.address}.`)) setPassword('');
        }}
      >
        <label>
          New password for {user.address}
          <input type="password" autocomplete="new-password" required minLength={8} value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={busy}>
          Reset password
        </button>
      </form>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          const quotaBytes = Math.round(Number(quota) * MIB);
          if (await run(() => api('POST', `${base}/quota`, { quotaBytes }), `Quota of ${user.address} set to ${quotaBytes ? bytes(quotaBytes) : 'unlimited'}.`)) onChanged();
        }}
      >
        <label>
          Quota of {user.address} in MiB (0 = unlimited)
          <input type="number" min="0" step="any" required value={quota} onInput={(e) => setQuota(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={busy}>
          Set quota
        </button>
      </form>
      {/* Only a store of several PostgreSQL groups can move a user: elsewhere it is not offered. */}
      {user.group !== null && (
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            if (await run(() => api('POST', `${base}/move`, { group }), `${user.address} moved to ${group}.`)) onChanged();
          }}
        >
          <label>
            Store group for {user.address}
            <input required value={group} onInput={(e) => setGroup(e.currentTarget.value)} />
          </label>
          <button type="submit" disabled={busy}>
            Move
          </button>
        </form>
      )}
    </div>
  );
}

function Users() {
  const [query, setQuery] = useState('');
  const [q, setQ] = useState('');
  const [offset, setOffset] = useState(0);
  const [data, setData] = useState<{ users: AdminUser[]; total: number } | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState('');
  const [status, setStatus] = useState('');
  const { busy, run } = useAction(setError, setStatus);

  const load = async () => {
    try {
      setData(await api<{ users: AdminUser[]; total: number }>('GET', `/api/admin/users?q=${enc(q)}&offset=${offset}&limit=${PAGE}`));
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => void load(), [q, offset]);

  const toggle = async (user: AdminUser) => {
    const action = user.disabled ? 'enable' : 'disable';
    if (await run(() => api('POST', `/api/admin/users/${enc(user.address)}/${action}`), `${user.address} ${action}d.`)) await load();
  };

  const total = data?.total ?? 0;
  return (
    <section aria-labelledby="users-heading">
      <h2 id="users-heading">Users</h2>
      <Alert message={error} />
      <Status message={status} />
      <form
        role="search"
        class="admin-search"
        onSubmit={(e) => {
          e.preventDefault();
          setOffset(0);
          setQ(query.trim());
        }}
      >
        <label>
          Search users
          <input type="search" value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
        </label>
        <button type="submit">Search</button>
      </form>
      {data && (
        <>
          <div class="admin-scroll">
            <table class="admin-table admin-cards">
              <caption>
                {total === 0 ? 'No users' : `Users ${offset + 1}–${offset + data.users.length} of ${total}`}
                {q && ` matching “${q}”`}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Address</th>
                  <th scope="col">Role</th>
                  <th scope="col">Status</th>
                  <th scope="col">Used / quota</th>
                  <th scope="col">Group</th>
                  <th scope="col">Created</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {data.users.map((user) => (
                  <Fragment key={user.address}>
                    <tr>
                      <th scope="row">{user.address}</th>
                      <td data-label="Role">{user.isAdmin ? 'admin' : 'user'}</td>
                      <td data-label="Status">{user.disabled ? 'disabled' : 'enabled'}</td>
                      <td data-label="Used / quota">
                        {bytes(user.usedBytes)} / {user.quotaBytes ? bytes(user.quotaBytes) : 'unlimited'}
                      </td>
                      <td data-label="Group">{user.group ?? '–'}</td>
                      <td data-label="Created">{when(user.createdAt)}</td>
                      <td class="admin-actions">
                        <button type="button" aria-label={`${user.disabled ? 'Enable' : 'Disable'} ${user.address}`} disabled={busy} onClick={() => void toggle(user)}>
                          {user.disabled ? 'Enable' : 'Disable'}
                        </button>
                        <button
                          type="button"
                          aria-label={`Manage ${user.address}`}
                          aria-expanded={open === user.address}
                          onClick={() => setOpen(open === user.address ? null : user.address)}
                        >
                          Manage
                        </button>
                      </td>
                    </tr>
                    {open === user.address && (
                      <tr>
                        <td colSpan={7}>
                          <ManageUser user={user} run={run} busy={busy} onChanged={() => void load()} />
                        </td>
                      </tr>
                    )}
                  </Fragment>
                ))}
              </tbody>
            </table>
          </div>
          <div class="pager">
            <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
              Previous page
            </button>
            <button type="button" disabled={offset + PAGE >= total} onClick={() => setOffset(offset + PAGE)}>
              Next page
            </button>
          </div>
        </>
      )}
      <CreateUser run={run} busy={busy} onCreated={() => void load()} />
    </section>
  );
}

function Domains() {
  const [domains, setDomains] = useState<Domain[] | null>(null);
  const [name, setName] = useState('');
  const [error, setError] = useState('');
  const [status, setStatus] = useState('');
  const { busy, run } = useAction(setError, setStatus);

  const load = async () => {
    try {
      setDomains((await api<{ domains: Domain[] }>('GET', '/api/admin/domains')).domains);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => void load(), []);

  return (
    <section aria-labelledby="domains-heading">
      <h2 id="domains-heading">Domains</h2>
      <Alert message={error} />
      <Status message={status} />
      {domains && (
        <div class="admin-scroll">
          <table class="admin-table admin-cards">
            <caption>{domains.length === 1 ? 'One domain' : `${domains.length} domains`}</caption>
            <thead>
              <tr>
                <th scope="col">Domain</th>
                <th scope="col">Users</th>
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {domains.map((d) => (
                <tr key={d.name}>
                  <th scope="row">{d.name}</th>
                  <td data-label="Users">{d.users}</td>
                  <td data-label="Created">{when(d.createdAt)}</td>
                  <td class="admin-actions">
                    <ConfirmButton
                      label={`Remove domain ${d.name}`}
                      question={`Remove ${d.name}?`}
                      disabled={busy}
                      onConfirm={async () => {
                        if (await run(() => api('DELETE', `/api/admin/domains/${enc(d.name)}`), `Removed ${d.name}.`)) await load();
                      }}
                    >
                      Remove
                    </ConfirmButton>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <form
        class="admin-form"
        aria-label="Add domain"
        onSubmit={async (e) => {
          e.preventDefault();
          if (await run(() => api('POST', '/api/admin/domains', { name: name.trim() }), `Added ${name.trim().toLowerCase()}.`)) {
            setName('');
            await load();
          }
        }}
      >
        <label>
          New domain
          <input required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={busy}>
          Add domain
        </button>
      </form>
    </section>
  );
}

export function UsersPage() {
  return (
    <>
      <Users />
      <Domains />
    </>
  );
}
