// Accounts in the browser: login, logout, who am I, change password, sign-up (per config).
// Passwords go through the same Authenticator as IMAP/SMTP/POP3: scrypt, failure delay and
// throttling. Sign-up refuses role names, gives a quota, and is rate-limited per address;
// wrong invite codes and taken addresses count as failed logins (issue 17 row 7).
import type { FastifyInstance } from 'fastify';
import { addressKey, WindowCounter } from '../auth/throttle.js';
import type { ServiceDeps } from '../service.js';
import { domainOf } from '../smtp/delivery.js';
import { StoreError, type Directory, type WebState } from '../store/types.js';
import { hashPassword } from '../util/password.js';
import { Errors } from './errors.js';
import { accountOf, clearSessionCookie, publicUser, sameSecret, startSession } from './sessions.js';

const address = { type: 'string', minLength: 3, maxLength: 320 } as const;
const password = { type: 'string', minLength: 1, maxLength: 1024 } as const;
const newPassword = { type: 'string', minLength: 8, maxLength: 1024 } as const;
/** A From display name: one line, no angle brackets (they would make it an address). */
export const DISPLAY_NAME = { type: 'string', maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f<>]*$' } as const;

// A plain mailbox address: what sign-up accepts as a new account's name.
const NEW_ADDRESS = /^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9])?@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$/i;

export function accountRoutes(app: FastifyInstance, deps: ServiceDeps<Directory & WebState>): void {
  const { store, auth, config } = deps;
  const lifetimeHours = config.web.sessionHours;
  const signups = new WindowCounter(3600_000, config.limits.authThrottleEntries);
  const squash = (name: string) => name.toLowerCase().replace(/[._-]/g, '');
  const reserved = new Set(config.web.reservedNames.map(squash));

  // What the login page needs to know before anyone logs in.
  app.get('/config', { config: { public: true } }, async () => ({ signup: config.web.signup }));

  app.post<{ Body: { address: string; password: string } }>(
    '/login',
    {
      config: { public: true },
      schema: { body: { type: 'object', required: ['address', 'password'], additionalProperties: false, properties: { address, password } } },
    },
    async (request, reply) => {
      const result = await auth.authenticate(request.body.address, request.body.password, request.clientIp);
      if (!result.ok) throw result.reason === 'locked' ? Errors.locked() : Errors.badCredentials();
      const session = await startSession(store, result.user, lifetimeHours, request, reply);
      return { user: publicUser(result.user), csrfToken: session.csrfToken };
    },
  );

  app.post('/logout', async (request, reply) => {
    await store.deleteSession(accountOf(request).session.idHash);
    clearSessionCookie(request, reply);
    return { ok: true };
  });

  app.get('/me', async (request) => {
    const { user, session } = accountOf(request);
    return { user: publicUser(user), csrfToken: session.csrfToken };
  });

  // Webmail settings kept on the server, so every browser of the user sees them (issue 21).
  app.get('/settings', async (request) => ({ displayName: accountOf(request).user.displayName }));

  app.put<{ Body: { displayName: string } }>(
    '/settings',
    { schema: { body: { type: 'object', required: ['displayName'], additionalProperties: false, properties: { displayName: DISPLAY_NAME } } } },
    async (request) => {
      const displayName = request.body.displayName.trim();
      await store.setDisplayName(accountOf(request).user.address, displayName);
      return { displayName };
    },
  );

  app.post<{ Body: { currentPassword: string; newPassword: string } }>(
    '/password',
    {
      schema: {
        body: { type: 'object', required: ['currentPassword', 'newPassword'], additionalProperties: false, properties: { currentPassword: password, newPassword } },
      },
    },
    async (request) => {
      const { user, session } = accountOf(request);
      const result = await auth.authenticate(user.address, request.body.currentPassword, request.clientIp);
      if (!result.ok) throw result.reason === 'locked' ? Errors.locked() : Errors.forbidden('current password is wrong');
      await store.setPassword(user.address, await hashPassword(request.body.newPassword));
      // Other logins of this user end; this one stays.
      await store.deleteUserSessions(user.id, session.idHash);
      return { ok: true };
    },
  );

  app.post<{ Body: { address: string; password: string; inviteCode?: string } }>(
    '/signup',
    {
      config: { public: true },
      schema: {
        body: {
          type: 'object',
          required: ['address', 'password'],
          additionalProperties: false,
          properties: { address, password: newPassword, inviteCode: { type: 'string', maxLength: 256 } },
        },
      },
    },
    async (request, reply) => {
      const { signup, inviteCodes } = config.web;
      if (signup === 'closed') throw Errors.forbidden('sign-up is closed; ask an administrator for an account');
      if (auth.isLocked(request.clientIp)) throw Errors.locked();
      const from = addressKey(request.clientIp);
      if (signups.count(from) >= config.web.signupsPerIpPerHour) throw Errors.tooManySignups();
      if (signup === 'invite') {
        const code = request.body.inviteCode ?? '';
        if (!inviteCodes.some((known) => sameSecret(known, code))) {
          await auth.recordFailure(request.clientIp); // guessing codes is guessing passwords
          throw Errors.forbidden('a valid invite code is needed');
        }
      }
      const wanted = request.body.address.trim().toLowerCase();
      if (!NEW_ADDRESS.test(wanted)) throw Errors.badRequest('not a valid address');
      const localPart = wanted.slice(0, wanted.lastIndexOf('@'));
      if (reserved.has(squash(localPart.replace(/\+.*$/, '')))) throw Errors.forbidden(`${localPart} is a reserved name; choose another`);
      if (!(await store.getDomain(domainOf(wanted)))) throw Errors.badRequest(`${domainOf(wanted)} is not a domain of this server`);
      // Counted before the account is made, so parallel requests cannot all pass the check above.
      if (signups.add(from) > config.web.signupsPerIpPerHour) throw Errors.tooManySignups();
      let user;
      try {
        user = await store.addUser({ address: wanted, passwordHash: await hashPassword(request.body.password), quotaBytes: config.web.signupQuota });
      } catch (error) {
        if (error instanceof StoreError && error.code === 'conflict') {
          await auth.recordFailure(request.clientIp); // probing for existing addresses
          throw Errors.conflict('that address is taken');
        }
        throw error;
      }
      const session = await startSession(store, user, lifetimeHours, request, reply);
      void reply.code(201);
      return { user: publicUser(user), csrfToken: session.csrfToken };
    },
  );
}
