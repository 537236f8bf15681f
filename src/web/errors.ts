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

/** Field names as a person reads them: "to" is the To line, "quotaBytes" the quota. */
const FIELD_NAMES: Record<string, string> = {
  to: 'To',
  cc: 'Cc',
  bcc: 'Bcc',
  subject: 'Subject',
  text: 'The message',
  address: 'The address',
  password: 'The password',
  newPassword: 'The new password',
  currentPassword: 'The current password',
  name: 'The name',
  filename: 'The file name',
  quotaBytes: 'The quota',
  displayName: 'The display name',
};

function fieldName(path: string): string {
  const parts = path.split('/').filter((part) => part !== '' && !/^\d+$/.test(part));
  const last = parts.at(-1) ?? '';
  return FIELD_NAMES[last] ?? (last ? `The field “${last}”` : 'The request');
}

function valueAt(root: unknown, path: string): unknown {
  let value = root;
  for (const part of path.split('/').filter(Boolean)) value = value && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
  return value;
}

const ADDRESS_FIELD = /^\/(?:to|cc|bcc)\/\d+$/;

/**
 * A sentence for a person instead of the validator's "body/to/0 must match pattern …";
 * the field and the rule it broke, in words.
 */
export function humanMessage(error: FastifyError, request: FastifyRequest): string {
  const first = error.validation?.[0];
  if (!first) {
    if (error.statusCode === 413) return 'That is too large to send in one piece.';
    if (error.statusCode === 415) return 'The request must be JSON.';
    if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return 'The request is not valid JSON.';
    return error.message;
  }
  const context = error.validationContext ?? 'body';
  const root = context === 'body' ? request.body : context === 'querystring' ? request.query : context === 'params' ? request.params : undefined;
  const path = first.instancePath;
  const params = first.params as Record<string, unknown>;
  const field = fieldName(path);
  switch (first.keyword) {
    case 'required':
      return `${fieldName(`${path}/${String(params.missingProperty)}`)} is missing.`;
    case 'additionalProperties':
      return `Unknown field “${String(params.additionalProperty)}” (additional properties are not allowed).`;
    case 'pattern':
    case 'format': {
      const value = valueAt(root, path);
      if (ADDRESS_FIELD.test(path)) return `“${String(value)}” in ${field} is not an email address. Write it as name@example.com or Name <name@example.com>.`;
      return `${field} has characters or a form that is not allowed.`;
    }
    case 'maxLength':
      return `${field} is too long (at most ${String(params.limit)} characters).`;
    case 'minLength':
      return Number(params.limit) <= 1 ? `${field} is empty.` : `${field} is too short (at least ${String(params.limit)} characters).`;
    case 'maxItems':
      return `${field} has too many entries (at most ${String(params.limit)}).`;
    case 'minimum':
    case 'maximum':
      return `${field} is out of range (${first.keyword} ${String(params.limit)}).`;
    case 'type':
      return `${field} must be ${params.type === 'integer' ? 'a whole number' : `a ${String(params.type)}`}.`;
    case 'enum':
      return `${field} must be one of: ${((params.allowedValues as unknown[]) ?? []).join(', ')}.`;
    default:
      return `${field} is not valid.`;
  }
}

/** Bytes as a person reads them: 1.5 MB, not 1572864. */
export function humanBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

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
      const message =
        error.code === 'unavailable'
          ? Errors.unavailable().message
          : error.code === 'quota' && error.message === 'quota exceeded'
            ? 'Your mailbox is full (quota exceeded): delete some mail or files, or ask for more space.'
            : error.message;
      void reply.code(status).send({ error: message });
      return;
    }
    // Fastify's own: schema validation (400), bad JSON (400), body too large (413), media type (415).
    const status = (error as FastifyError).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      void reply.code(status).send({ error: humanMessage(error as FastifyError, request) });
      return;
    }
    logger.error({ err: error, url: request.url }, 'web request failed');
    void reply.code(500).send({ error: 'internal error' });
  };
}
