// Shared by the browser tests: Debian's chromium driven by playwright-core (which downloads no
// browser), and the web app built first when its build is missing or older than its sources.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { PUBLIC_DIR } from '../src/web/static.js';

export const CHROMIUM = process.env.QUILL_CHROMIUM ?? '/usr/bin/chromium';

/** The reason to skip a browser test on a machine without chromium, or false. */
export const noChromium: string | false = !existsSync(CHROMIUM) && `no chromium at ${CHROMIUM}`;

const APP_DIR = path.resolve('src/web/app');

/** The build is stale when any source of the app is newer than its index.html. */
function needsBuild(): boolean {
  const index = path.join(PUBLIC_DIR, 'index.html');
  if (!existsSync(index)) return true;
  const built = statSync(index).mtimeMs;
  return readdirSync(APP_DIR).some((name) => statSync(path.join(APP_DIR, name)).mtimeMs > built);
}

/** Builds the web app if needed, then starts a headless chromium. */
export async function launchBrowser(): Promise<Browser> {
  if (needsBuild()) {
    const built = spawnSync(process.execPath, [path.resolve('node_modules/vite/bin/vite.js'), 'build', '--config', 'src/web/app/vite.config.ts'], { stdio: 'inherit', timeout: 120_000 });
    assert.equal(built.status, 0, 'vite build');
  }
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
}
