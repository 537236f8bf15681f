// Browser sessions: a random id in an HttpOnly cookie, only its SHA-256 in the store (so a
// leaked table opens no session), and a per-session CSRF token that every state-changing
// request must echo in X-CSRF-Token.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Directory, User, WebSession, WebState } from '../store/types.js';
import { Errors } from './errors.js';

export const SESSION_COOKIE = 'quill_session';
export const CSRF_HEADER = 'x-csrf-token';

/** The logged-in user of a request, set by the API's onRequest hook. */
export interface Account {
  user: User;
  session: WebSession;
}

declare module 'fastify' {
  interface FastifyRequest {
    account: Account | null;
    /** The client's address: the socket's, or the one a trusted gateway's PROXY header named. */
    clientIp: string;
    /** The browser's connection is encrypted: to this node, or to the gateway that carried the request. */
    overTls: boolean;
  }
  interface FastifyContextConfig {
    /** Reachable without a session (login, sign-up). */
    public?: boolean;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function hashSessionId(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

export function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** Starts a session for a user who just proved who they are; sets the cookie. */
export async function startSession(store: WebState, user: User, lifetimeHours: number, request: FastifyRequest, reply: FastifyReply): Promise<WebSession> {
  const id = randomBytes(32).toString('base64url');
  const session = { idHash: hashSessionId(id), userId: user.id, csrfToken: randomBytes(32).toString('base64url'), expiresAt: new Date(Date.now() + lifetimeHours * 3_600_000) };
  await store.createSession(session);
  void reply.setCookie(SESSION_COOKIE, id, {
    path: '/',
    httpOnly: true,
    sameSite: 'lax',
    secure: request.overTls,
    maxAge: Math.floor(lifetimeHours * 3600),
  });
  return { ...session, createdAt: new Date() };
}

export function clearSessionCookie(request: FastifyRequest, reply: FastifyReply): void {
  void reply.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'lax', secure: request.overTls });
}

/**
 * The API's gate, before the body is read: a live session for every route not marked
 * public (401), and the CSRF token on every state-changing request (403).
 */
export function requireAccount(store: Directory & WebState) {
  return async (request: FastifyRequest): Promise<void> => {
    if (request.routeOptions.config.public) return;
    const id = request.cookies[SESSION_COOKIE];
    if (!id) throw Errors.notLoggedIn();
    const session = await store.getSession(hashSessionId(id));
    if (!session) throw Errors.notLoggedIn();
    const user = await store.getUserById(session.userId);
    if (!user || user.disabled) throw Errors.notLoggedIn();
    if (!SAFE_METHODS.has(request.method)) {
      const token = request.headers[CSRF_HEADER];
      if (typeof token !== 'string' || !sameSecret(token, session.csrfToken)) throw Errors.csrf();
    }
    request.account = { user, session };
  };
}

/** The account of a route behind requireAccount. */
export function accountOf(request: FastifyRequest): Account {
  if (!request.account) throw Errors.notLoggedIn();
  return request.account;
}

export function publicUser(user: User) {
  return { address: user.address, displayName: user.displayName, isAdmin: user.isAdmin, quotaBytes: user.quotaBytes, usedBytes: user.usedBytes };
}

