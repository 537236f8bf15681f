// scrypt password hashes (node:crypto), stored as scrypt$N$r$p$salt$hash in base64.
// The cost follows current advice (OWASP: N=2^17, r=8, p=1, i.e. 128 MiB and ~0.4 s a hash);
// hashes made at a lower cost still verify and the authenticator rehashes them at login.
// Each hash holds 128*N*r bytes while it runs, so hashes wait their turn past `concurrency`.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const KEY_LENGTH = 32;

export interface PasswordCost {
  N: number;
  r: number;
  p: number;
}

/** What a server hashes with unless configured otherwise (limits.passwordScryptN). */
export const SHIPPED_COST: PasswordCost = { N: 2 ** 17, r: 8, p: 1 };
/** The test suite (QUILL_TEST, set by scripts/run-tests.mjs) creates many users: a cheaper default there. */
const TEST_COST: PasswordCost = { N: 2 ** 14, r: 8, p: 1 };
/** Stored hashes above this are refused rather than allowed to take gigabytes. */
const MAX_N = 2 ** 20;

let cost: PasswordCost = process.env.QUILL_TEST === '1' ? TEST_COST : SHIPPED_COST;
let concurrency = 1;
let running = 0;
const waiting: (() => void)[] = [];

/** Set once by the composition root from config.limits; undefined keeps the default. */
export function configurePasswords(options: { scryptN?: number; concurrency?: number }): void {
  if (options.scryptN !== undefined) cost = { ...SHIPPED_COST, N: options.scryptN };
  if (options.concurrency !== undefined) concurrency = options.concurrency;
}

export function passwordCost(): Readonly<PasswordCost> {
  return cost;
}

async function derive(password: string, salt: Buffer, options: PasswordCost): Promise<Buffer> {
  while (running >= concurrency) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await new Promise((resolve, reject) => {
      const maxmem = 256 * options.N * options.r + 16 * 1024 * 1024;
      scrypt(password, salt, KEY_LENGTH, { ...options, maxmem } satisfies ScryptOptions, (error, key) => (error ? reject(error) : resolve(key)));
    });
  } finally {
    running--;
    waiting.shift()?.();
  }
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, cost);
  return ['scrypt', cost.N, cost.r, cost.p, salt.toString('base64'), key.toString('base64')].join('$');
}

function parse(stored: string): { params: PasswordCost; salt: Buffer; hash: Buffer } | undefined {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  if (![params.N, params.r, params.p].every(Number.isSafeInteger) || params.N > MAX_N || params.r > 32 || params.p > 16) return undefined;
  return { params, salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parse(stored);
  if (!parsed) return false;
  const key = await derive(password, parsed.salt, parsed.params);
  return key.length === parsed.hash.length && timingSafeEqual(key, parsed.hash);
}

/** Whether a stored hash was made at less than today's cost (it is then rehashed at the next login). */
export function needsRehash(stored: string): boolean {
  const parsed = parse(stored);
  return parsed !== undefined && (parsed.params.N < cost.N || parsed.params.r < cost.r || parsed.params.p < cost.p);
}

/** A hash nobody's password matches, at today's cost: unknown users take as long as known ones. */
export function dummyHash(): string {
  return ['scrypt', cost.N, cost.r, cost.p, 'AAAAAAAAAAAAAAAAAAAAAA==', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='].join('$');
}
