// The drive in a real browser (playwright-core driving Debian's chromium): open Drive, make a
// folder, upload files through the file input (one PUT dropped on the way, so the upload has
// to resume), see them listed with their sizes, download one byte-exact, delete, and a
// hostile file name stays text.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { launchBrowser, noChromium } from '../../test/browser-kit.js';

const XSS_NAME = '<img src=x onerror="window.__xss=7">.txt';

describe('drive in a browser', { skip: noChromium }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let base: string;
  const problems: string[] = [];

  before(async () => {
    server = await startTestServer();
    base = `http://127.0.0.1:${server.port('http')}`;
    await server.addUser('una@example.com', 'una-password', { quotaBytes: 50 * 1024 * 1024 });
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1200, height: 800 }, acceptDownloads: true });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) problems.push(`console: ${message.text()}`);
    });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const bytes = randomBytes(Math.floor(9.5 * 1024 * 1024)); // two PUTs of 8 MiB at most

  it('logs in, opens Drive, makes a folder and goes into it', async () => {
    await page.goto(base);
    await page.getByLabel('Address').fill('una@example.com');
    await page.getByLabel('Password').fill('una-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('No messages in INBOX.').waitFor();
    await page.getByRole('navigation', { name: 'Parts' }).getByRole('link', { name: 'Drive' }).click();
    await page.getByText('This folder is empty.').waitFor();
    await page.getByLabel('New folder name').fill('Reports');
    await page.keyboard.press('Enter');
    await page.getByRole('link', { name: 'Reports' }).click();
    await page.getByRole('navigation', { name: 'Folder path' }).getByRole('link', { name: 'Reports' }).waitFor();
    await page.getByText('This folder is empty.').waitFor();
  });

  it('uploads files through the file input, resuming after a dropped PUT, and lists them with their sizes', async () => {
    let dropped = 0;
    await page.route('**/api/drive/uploads/*', async (route) => {
      if (route.request().method() === 'PUT' && dropped === 0) {
        dropped++;
        await route.abort('connectionreset');
      } else {
        await route.continue();
      }
    });
    await page.getByLabel('Upload files').setInputFiles([
      { name: 'data.bin', mimeType: 'application/octet-stream', buffer: bytes },
      { name: XSS_NAME, mimeType: 'text/plain', buffer: Buffer.from('hello') },
    ]);
    const files = page.getByRole('list', { name: 'Files and folders' });
    await files.getByText('data.bin').waitFor({ timeout: 30_000 });
    await files.getByText(XSS_NAME).waitFor({ timeout: 30_000 });
    assert.equal(dropped, 1, 'one PUT was cut, and the upload went on');
    await page.getByRole('list', { name: 'Uploads' }).getByText('Uploaded, 9.5 MB').waitFor();
    const row = files.getByRole('listitem').filter({ hasText: 'data.bin' });
    assert.equal(await row.locator('.size').textContent(), '9.5 MB');
    assert.equal(await files.getByRole('listitem').filter({ hasText: XSS_NAME }).locator('.size').textContent(), '5 B');
    await page.unroute('**/api/drive/uploads/*');
    await page.getByText(/used \(mail and files\)/).waitFor();
  });

  it('downloads a file byte-exact', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download data.bin' }).click()]);
    assert.equal(download.suggestedFilename(), 'data.bin');
    const saved = await download.path();
    assert.ok(readFileSync(saved).equals(bytes), 'byte-exact');
  });

  it('cancels an upload under way', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let seen = false;
    await page.route('**/api/drive/uploads/*', async (route) => {
      if (route.request().method() !== 'PUT') return route.continue();
      seen = true;
      await held; // the PUT hangs until the test lets it go
      await route.continue().catch(() => undefined);
    });
    await page.getByLabel('Upload files').setInputFiles([{ name: 'slow.bin', mimeType: 'application/octet-stream', buffer: randomBytes(100_000) }]);
    await page.getByRole('button', { name: 'Cancel upload of slow.bin' }).click();
    await page.getByRole('list', { name: 'Uploads' }).getByText('Cancelled').waitFor();
    release();
    await page.unroute('**/api/drive/uploads/*');
    assert.ok(seen);
    const una = (await server.store.getUser('una@example.com'))!;
    const reports = (await server.store.listDrive(una.id, null)).find((n) => n.name === 'Reports')!;
    assert.deepEqual((await server.store.listDrive(una.id, reports.id)).map((n) => n.name).sort(), ['data.bin', XSS_NAME].sort(), 'no slow.bin');
  });

  it('renames and deletes, and the hostile name never ran', async () => {
    await page.getByRole('button', { name: `Rename ${XSS_NAME}` }).click();
    await page.getByLabel(`New name for ${XSS_NAME}`).fill('note.txt');
    await page.keyboard.press('Enter');
    const files = page.getByRole('list', { name: 'Files and folders' });
    await files.getByText('note.txt').waitFor();
    await page.getByRole('button', { name: 'Delete data.bin' }).click();
    await page.getByRole('button', { name: 'Yes, delete' }).click();
    await files.getByText('data.bin').waitFor({ state: 'detached' });
    await files.getByText('note.txt').waitFor();
    const una = (await server.store.getUser('una@example.com'))!;
    assert.equal(una.usedBytes, 5, 'the big file no longer counts');
    assert.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined);
    assert.deepEqual(problems, [], 'no script errors');
  });

  it('works at phone width', async () => {
    await page.setViewportSize({ width: 390, height: 800 });
    await page.getByRole('link', { name: 'My files' }).click();
    await page.getByRole('link', { name: 'Reports' }).waitFor();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `no sideways scrolling: ${width}px`);
  });
});
