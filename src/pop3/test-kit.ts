// Shared by the POP3 tests: runs poplib-driver.py (Python's poplib) against a port.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const DRIVER = fileURLToPath(new URL('./poplib-driver.py', import.meta.url));

type Plain = null | boolean | number | string | Buffer | Plain[] | { [key: string]: Plain };
export type StepResult = { ok: Plain } | { error: string };

function revive(value: unknown): Plain {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === 'object') {
    if ('b64' in value && typeof value.b64 === 'string') return Buffer.from(value.b64, 'base64');
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)]));
  }
  return value as Plain;
}

/** Runs poplib steps (see poplib-driver.py); result 0 is the greeting, then one per step. */
export async function poplib(port: number, steps: (string | number)[][]): Promise<StepResult[]> {
  const { stdout } = await run('python3', [DRIVER, String(port), JSON.stringify(steps)], { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  return (JSON.parse(stdout) as unknown[]).map((entry) => revive(entry) as StepResult);
}

/** The value of a step that must have succeeded. */
export function ok(result: StepResult | undefined): Plain {
  if (!result || !('ok' in result)) throw new Error(`step failed: ${JSON.stringify(result)}`);
  return result.ok;
}

/** The error text of a step that must have failed. */
export function error(result: StepResult | undefined): string {
  if (!result || !('error' in result)) throw new Error(`step did not fail: ${JSON.stringify(result)}`);
  return result.error;
}

/** A poplib retr/top answer [resp, lines, octets] joined back into bytes, as a client would. */
export function joined(result: StepResult | undefined): { status: string; data: Buffer; octets: number } {
  const [resp, lines, octets] = ok(result) as [Buffer, Buffer[], number];
  return { status: resp.toString(), data: Buffer.concat(lines.flatMap((line) => [line, Buffer.from('\r\n')])), octets };
}

/** Waits until the condition holds (a server-side effect of a client action), within a bound. */
export async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
