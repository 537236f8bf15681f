// Shapes of the admin API (/api/admin, docs in /tmp/h/admin-contract.md and src/web/admin.ts)
// and small formatting helpers shared by the console's pages.

export interface Load {
  connections: Record<string, number>;
  eventLoopDelayMs: number;
  cpuPercent: number;
  rssBytes: number;
  queueDepth?: number;
}

export interface ClusterMember {
  id: string;
  kind: 'node' | 'gateway';
  state: 'active' | 'draining' | 'stopping';
  requestedState: string | null;
  version: string;
  addresses: Record<string, string>;
  load: Load;
  startedAt: string;
  beatAt: string;
  alive: boolean;
}

export type StoreView =
  | { kind: 'sqlite'; path: string; sizeBytes: number; walBytes?: number | null }
  | { kind: 'postgres'; groups: { name: string; hosts: { host: string; role: 'primary' | 'standby' | 'unknown'; lagBytes: number | null }[] }[] };

export interface Cluster {
  members: ClusterMember[];
  store: StoreView;
}

export interface AdminUser {
  address: string;
  isAdmin: boolean;
  disabled: boolean;
  quotaBytes: number;
  usedBytes: number;
  createdAt: string;
  group: string | null;
}

export interface Domain {
  name: string;
  users: number;
  createdAt: string;
}

export interface QueueEntry {
  id: number;
  from: string;
  recipients: string[];
  status: string;
  attempts: number;
  nextAttemptAt: string;
  lastError: string | null;
  size: number;
  createdAt: string;
  /** A delay notice went to the sender. */
  warned?: boolean;
}

export interface RawMailbox {
  id: number;
  name: string;
  uidvalidity: number;
  uidnext: number;
  highestModseq: number;
  messages: number;
  specialUse: string | null;
  subscribed: boolean;
}

export interface RawMessageMeta {
  uid: number;
  size: number;
  flags: string[];
  internalDate: string;
  modseq: number;
  blobHash: string;
}

export interface RawMessage {
  meta: Record<string, unknown>;
  raw: string;
  truncated?: boolean;
  encoding?: string;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  detail: Record<string, unknown> | null;
  /** The node that served the call, if known. */
  node?: string | null;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

/** "3 s ago", "5 min ago", "2 h ago", "4 d ago". */
export function ago(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** How long since: "42 s", "5 min", "3 h 10 min", "2 d 4 h". */
export function since(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function when(iso: string): string {
  return new Date(iso).toLocaleString();
}

/** A value of unknown shape as one line of text. */
export function plain(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.length ? value.map(plain).join(' ') : '(none)';
  return JSON.stringify(value);
}

/** An audit entry's detail as "key: value, …". */
export function details(detail: Record<string, unknown> | null): string {
  if (!detail) return '';
  return Object.entries(detail)
    .map(([key, value]) => `${key}: ${plain(value)}`)
    .join(', ');
}
