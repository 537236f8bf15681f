#!/usr/bin/env node
// The `quill` command. Runs the compiled CLI; `npm run build` produces dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('quill: not built yet; run `npm run build` (or `npm ci`) first\n');
  process.exit(1);
}
await import(entry.href);
