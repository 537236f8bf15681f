// Structured logs (pino) to stdout. Secrets are redacted by key name wherever they appear.
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** `destination` replaces stdout (tests capture the log with it). */
export function createLogger(level: string, name = 'quill', destination?: DestinationStream): Logger {
  const options = {
    name,
    level,
    redact: { paths: ['password', '*.password', 'pass', '*.pass', 'secret', '*.secret'], censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A logger that discards everything: for tests and CLI commands. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
