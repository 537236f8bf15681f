// Issue 21's last points in a real browser (playwright-core driving Debian's chromium): address
// suggestions from mail already exchanged, the display name kept on the server (seen from a
// second browser), and a forward's quoted Date written for people.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { rawMessage } from './test-kit.js';
import { launchBrowser, noChromium } from '../../test/browser-kit.js';

describe('webmail: suggestions, display name, forward date (issue 21)', { skip: noChromium }, () => {
  let server: TestServer;
  let browser: Browser;
  let base: string;
  let alice: number;
  const problems: string[] = [];
  const contexts: BrowserContext[] = [];

  before(async () => {
    server = await startTestServer();
    base = `http://127.0.0.1:${server.port('http')}`;
    alice = await server.addUser('alice@example.com', 'alice-password');
    await server.addUser('bob@example.com', 'bob-password');
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** A fresh browser (its own cookies and storage), logged in. */
  async function login(address: string, password: string): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, locale: 'en-GB', timezoneId: 'UTC' });
    contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await page.goto(base);
    await page.getByLabel('Address').fill(address);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('navigation', { name: 'Mailboxes' }).waitFor();
    return page;
  }
  const newest = async (address: string, mailbox: string) => {
    const user = (await server.store.getUser(address))!;
    const metas = await server.store.listMessages((await server.store.getMailbox(user.id, mailbox))!.id);
    return simpleParser((await server.store.getBlob(metas.at(-1)!.blobHash))!);
  };

  it('suggests Bob Builder after bob mailed alice: keyboard and mouse pick, Enter and Escape never send or close', async () => {
    await server.store.deliver(
      rawMessage(['From: Bob Builder <bob@example.com>', 'To: alice@example.com', 'Subject: Bricks', 'Date: Mon, 7 Dec 2026 09:30:00 +0000', 'Message-ID: <bricks@example.com>', '', 'How many bricks?']),
      [{ userId: alice }],
    );
    const page = await login('alice@example.com', 'alice-password');
    const compose = page.getByRole('dialog', { name: 'New message' });
    await page.getByRole('navigation', { name: 'Mailboxes' }).getByRole('button', { name: 'Compose' }).click();
    const to = compose.getByRole('combobox', { name: 'To', exact: true });
    await to.pressSequentially('bo');
    const option = compose.getByRole('listbox', { name: 'Suggestions for To' }).getByRole('option', { name: 'Bob Builder <bob@example.com>' });
    await option.waitFor();
    assert.equal(await option.getAttribute('aria-selected'), 'true', 'the first is ready for Enter');
    await to.press('Enter');
    await compose.getByRole('listbox').waitFor({ state: 'detached' });
    assert.equal(await to.inputValue(), 'Bob Builder <bob@example.com>, ');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? document.activeElement?.closest('label')?.textContent?.trim()), 'To', 'Enter picked, and stayed in To');

    // Escape closes the list, not the message; a click picks too (in Cc).
    const cc = compose.getByRole('combobox', { name: 'Cc', exact: true });
    await cc.pressSequentially('build');
    await compose.getByRole('listbox', { name: 'Suggestions for Cc' }).waitFor();
    await cc.press('Escape');
    await compose.getByRole('listbox').waitFor({ state: 'detached' });
    assert.equal(await compose.count(), 1, 'compose still open');
    await cc.fill('');
    await cc.pressSequentially('bo');
    await compose.getByRole('listbox', { name: 'Suggestions for Cc' }).getByRole('option', { name: 'Bob Builder <bob@example.com>' }).click();
    assert.equal(await cc.inputValue(), 'Bob Builder <bob@example.com>, ');
    // Nothing typed matches: no list, and Enter moves on as before.
    await compose.getByRole('combobox', { name: 'Bcc' }).pressSequentially('zed');
    await compose.getByLabel('Subject').fill('Bricks, answered');
    assert.equal(await compose.getByRole('listbox').count(), 0);
    await compose.getByLabel('Subject').press('Enter');
    await page.waitForFunction(() => document.activeElement?.getAttribute('aria-label') === 'Message');
    assert.equal((await server.store.listMessages((await server.store.getMailbox((await server.store.getUser('bob@example.com'))!.id, 'INBOX'))!.id)).length, 0, 'nothing sent');
    await compose.getByRole('combobox', { name: 'Bcc' }).fill('');
    await compose.getByRole('button', { name: 'Send' }).click();
    await page.getByRole('status').filter({ hasText: 'Sent.' }).waitFor();
    const sent = await newest('bob@example.com', 'INBOX');
    const list = (field: typeof sent.to) => (Array.isArray(field) ? field : field ? [field] : []).flatMap((f) => f.value.map((a) => `${a.name} <${a.address}>`));
    assert.deepEqual(list(sent.to), ['Bob Builder <bob@example.com>']);
    assert.deepEqual(list(sent.cc), ['Bob Builder <bob@example.com>']);
  });

  it('keeps the display name on the server: a second browser shows it and sends with it', async () => {
    const first = await login('alice@example.com', 'alice-password');
    await first.getByRole('button', { name: 'Settings' }).click();
    await first.getByLabel(/Display name/).fill('Alice Liddell');
    await first.getByRole('dialog', { name: 'Settings' }).getByRole('button', { name: 'Save' }).click();
    await first.getByRole('dialog', { name: 'Settings' }).waitFor({ state: 'detached' });

    const second = await login('alice@example.com', 'alice-password');
    await second.getByRole('button', { name: 'Settings' }).click();
    assert.equal(await second.getByLabel(/Display name/).inputValue(), 'Alice Liddell');
    await second.getByRole('dialog', { name: 'Settings' }).getByRole('button', { name: 'Close' }).click();
    await second.getByRole('navigation', { name: 'Mailboxes' }).getByRole('button', { name: 'Compose' }).click();
    const compose = second.getByRole('dialog', { name: 'New message' });
    await compose.getByRole('combobox', { name: 'To', exact: true }).fill('bob@example.com');
    await compose.getByLabel('Subject').fill('From the second browser');
    await compose.getByLabel('Message').fill('hello');
    await compose.getByRole('button', { name: 'Send' }).click();
    await second.getByRole('status').filter({ hasText: 'Sent.' }).waitFor();
    const sent = await newest('bob@example.com', 'INBOX');
    assert.equal(sent.subject, 'From the second browser');
    assert.deepEqual(sent.from?.value.map((a) => [a.name, a.address]), [['Alice Liddell', 'alice@example.com']]);
  });

  it("writes a forward's Date for people, not as raw ISO", async () => {
    const page = await login('alice@example.com', 'alice-password');
    await page.getByRole('button', { name: /Bricks/ }).first().click();
    await page.getByRole('heading', { level: 2, name: 'Bricks' }).waitFor();
    await page.getByRole('button', { name: 'Forward' }).click();
    const text = await page.getByRole('dialog', { name: 'New message' }).getByLabel('Message').inputValue();
    const date = /^Date: (.*)$/m.exec(text)?.[1];
    assert.ok(date, text);
    assert.doesNotMatch(date, /\d{4}-\d\d-\d\dT|Z$/, 'not ISO 8601');
    assert.match(date, /^Mon,? 7 Dec 2026,? 09:30$/, 'weekday, day, month, year and time in the reader’s locale and zone');
    assert.deepEqual(problems, []);
  });
});
