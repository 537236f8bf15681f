// The single-page app as a browser first meets it: the page, its assets, its security headers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { PUBLIC_DIR } from './static.js';

describe('web app files', () => {
  let server: TestServer;
  let base: string;

  before(async () => {
    // `npm test` builds first; a lone run of this file builds the app itself.
    if (!existsSync(path.join(PUBLIC_DIR, 'index.html'))) {
      const vite = path.resolve('node_modules/vite/bin/vite.js');
      const built = spawnSync(process.execPath, [vite, 'build', '--config', 'src/web/app/vite.config.ts'], { stdio: 'inherit', timeout: 120_000 });
      assert.equal(built.status, 0, 'vite build');
    }
    server = await startTestServer();
    base = `http://127.0.0.1:${server.port('http')}`;
  });
  after(async () => server.stop());

  it('serves the page with a strict policy, and its hashed assets', async () => {
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const policy = page.headers.get('content-security-policy') ?? '';
    assert.match(policy, /script-src 'self'(;|$)/);
    assert.match(policy, /frame-ancestors 'none'/);
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    const html = await page.text();
    assert.doesNotMatch(html, /<script>(?!<\/script>)/, 'no inline script');
    const script = /<script type="module" crossorigin src="(\/assets\/[\w.-]+\.js)">/.exec(html)?.[1];
    const style = /<link rel="stylesheet" crossorigin href="(\/assets\/[\w.-]+\.css)">/.exec(html)?.[1];
    assert.ok(script && style, html);
    const js = await fetch(base + script);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(js.headers.get('cache-control') ?? '', /immutable/);
    assert.match(await js.text(), /\/api\/login/);
    assert.equal((await fetch(base + style)).status, 200);
  });

  it('serves nothing else from disk', async () => {
    for (const bad of ['/assets/..%2F..%2Fpackage.json', '/assets/missing.js', '/assets/x.txt', '/package.json']) {
      assert.equal((await fetch(base + bad)).status, 404, bad);
    }
  });
});
