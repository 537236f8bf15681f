// Errors the web API answers with, as {error: "..."} and a status code, mapped in one place.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { StoreError, type StoreErrorCode } from '../store/types.js';
import type { Logger } from '../util/logger.js';

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const Errors = {
  badRequest: (message: string) => new HttpError(400, message),
  notLoggedIn: () => new HttpError(401, 'not logged in'),
  badCredentials: () => new HttpError(401, 'wrong address or password'),
  csrf: () => new HttpError(403, 'missing or wrong X-CSRF-Token header'),
  forbidden: (message: string) => new HttpError(403, message),
  notFound: (what = 'not found') => new HttpError(404, what),
  conflict: (message: string) => new HttpError(409, message),
  locked: () => new HttpError(429, 'too many failed logins from your address, try again later'),
  tooManySignups: () => new HttpError(429, 'too many accounts created from your address, try again later'),
  unavailable: () => new HttpError(503, 'store unavailable, try again later'),
} as const;

const STORE_STATUS: Record<StoreErrorCode, number> = { conflict: 409, 'not-found': 404, quota: 507, invalid: 400, unavailable: 503 };

export function errorHandler(logger: Logger) {
  return (error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): void => {
    if (error instanceof HttpError) {
      void reply.code(error.statusCode).send({ error: error.message });
      return;
    }
    if (error instanceof StoreError) {
      const status = STORE_STATUS[error.code];
      if (error.code === 'unavailable') logger.warn({ err: error.message, url: request.url }, 'store unavailable');
      void reply.code(status).send({ error: error.code === 'unavailable' ? Errors.unavailable().message : error.message });
      return;
    }
    // Fastify's own: schema validation (400), bad JSON (400), body too large (413), media type (415).
    const status = (error as FastifyError).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      void reply.code(status).send({ error: error.message });
      return;
    }
    logger.error({ err: error, url: request.url }, 'web request failed');
    void reply.code(500).send({ error: 'internal error' });
  };
}
