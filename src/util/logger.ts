// Structured logs (pino) to stdout. Secrets are redacted by key name wherever they appear.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, name = 'quill'): Logger {
  return pino({
    name,
    level,
    redact: { paths: ['password', '*.password', 'pass', '*.pass', 'secret', '*.secret'], censor: '[redacted]' },
  });
}

/** A logger that discards everything: for tests and CLI commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
