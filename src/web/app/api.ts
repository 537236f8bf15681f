// The JSON API: every call sends the session cookie; state-changing ones carry the CSRF token.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let csrfToken = '';

/** A sentence for an answer without one (a proxy's error page, say). */
const STATUS_TEXT: Record<number, string> = {
  401: 'Your session has ended. Log in again.',
  403: 'That is not allowed.',
  404: 'That is no longer here.',
  413: 'That is too large to send in one piece.',
  502: 'The mail server is not answering. Try again in a moment.',
  503: 'The mail server is busy or restarting. Try again in a moment.',
  504: 'The mail server took too long to answer. Try again in a moment.',
};

export function setCsrfToken(token: string): void {
  csrfToken = token;
}

/** The CSRF header for a state-changing request made without api() (an XMLHttpRequest upload). */
export function csrfHeader(): Record<string, string> {
  return csrfToken ? { 'x-csrf-token': csrfToken } : {};
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, 'The server cannot be reached. Check your connection.');
  }
  const data = response.headers.get('content-type')?.startsWith('application/json') ? await response.json() : undefined;
  if (!response.ok) throw new ApiError(response.status, (data as { error?: string } | undefined)?.error ?? STATUS_TEXT[response.status] ?? `The server answered ${response.status}. Try again in a moment.`);
  return data as T;
}

export interface Address {
  name: string;
  address: string;
}

export interface UserInfo {
  address: string;
  /** The From name of sent mail (settings, kept on the server). */
  displayName: string;
  isAdmin: boolean;
  quotaBytes: number;
  usedBytes: number;
}

export interface Session {
  user: UserInfo;
  csrfToken: string;
}

export interface MailboxInfo {
  name: string;
  specialUse: string | null;
  messages: number;
  unseen: number;
}

export interface Summary {
  uid: number;
  flags: string[];
  size: number;
  internalDate: string;
  subject: string;
  from: Address[];
  to: Address[];
  date: string | null;
  hasAttachments: boolean;
  messageId: string | null;
  preview: string;
}

export interface Conversation {
  /** The newest message's UID: the conversation's name in URLs. */
  uid: number;
  uids: number[];
  count: number;
  unseen: number;
  flagged: boolean;
  hasAttachments: boolean;
  subject: string;
  from: Address[];
  to: Address[];
  date: string;
  preview: string;
}

export interface ConversationList {
  total: number;
  complete: boolean;
  offset: number;
  limit: number;
  conversations: Conversation[];
}

export interface BulkResult {
  mailbox: string;
  deleted?: boolean;
  count: number;
  map?: [number, number][];
}

export interface MessageList {
  total: number;
  /** False when a search stopped before the oldest messages. */
  complete?: boolean;
  offset: number;
  limit: number;
  messages: Summary[];
}

export interface AttachmentInfo {
  index: number;
  filename: string | null;
  contentType: string;
  size: number;
  inline: boolean;
  embedded: boolean;
}

export interface MessageView {
  mailbox: string;
  uid: number;
  flags: string[];
  subject: string;
  from: Address[];
  to: Address[];
  cc: Address[];
  bcc: Address[];
  replyTo: Address[];
  date: string | null;
  messageId: string | null;
  references: string[];
  text: string | null;
  html: string | null;
  remoteImages: number;
  attachments: AttachmentInfo[];
}

export const enc = encodeURIComponent;
