// The web app in a real browser (playwright-core driving Debian's chromium): log in, see mail
// sent by SMTP appear live, read it without its scripts running, reply, forward with the
// attachment, search, delete, log out; sign up on a phone-sized screen.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import type { Browser, Page } from 'playwright-core';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { launchBrowser, noChromium } from '../../test/browser-kit.js';

// Each payload sets a marker if it ever runs.
const XSS_SUBJECT = 'Hello <img src=x onerror="window.top.__xss=1">';
const XSS_FILENAME = '<img src=x onerror="window.top.__xss=6">.txt';
const XSS_HTML = [
  '<p>Dear Una,</p><p>please <b>read</b> this.</p>',
  '<script>window.top.__xss = 2</script>',
  '<img src="x" onerror="window.top.__xss = 3">',
  '<a href="javascript:window.top.__xss = 4">link</a>',
  '<svg onload="window.top.__xss = 5"></svg>',
].join('\n');

describe('web app in a browser', { skip: noChromium }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let base: string;
  const problems: string[] = [];

  before(async () => {
    server = await startTestServer();
    base = `http://127.0.0.1:${server.port('http')}`;
    await server.addUser('una@example.com', 'una-password');
    await server.addUser('vic@example.com', 'vic-password');
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) problems.push(`console: ${message.text()}`);
    });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const xssMarker = () => page.evaluate(() => (window as unknown as { __xss?: number }).__xss);

  it('logs in, shows mail arriving by SMTP live, and reads it without running its scripts', async () => {
    await page.goto(base);
    await page.getByLabel('Address').fill('una@example.com');
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'wrong address or password' }).waitFor();
    await page.getByLabel('Password').fill('una-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('No messages in INBOX.').waitFor();

    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: server.port('smtp'), secure: false, ignoreTLS: true });
    await transport.sendMail({
      from: 'Vic <vic@example.com>',
      to: 'una@example.com',
      subject: XSS_SUBJECT,
      html: XSS_HTML,
      text: 'Dear Una, please read this.',
      attachments: [{ filename: XSS_FILENAME, content: 'attached text' }],
    });
    transport.close();

    const row = page.getByRole('button', { name: /Hello <img src=x/ });
    await row.waitFor({ timeout: 10_000 }); // arrives through the event stream, no reload
    await row.click();
    const frame = page.frameLocator('iframe[title="Message body"]');
    await frame.getByText('please read this.').waitFor();
    assert.equal(await page.getByRole('heading', { level: 2 }).textContent(), XSS_SUBJECT, 'the subject shows as text');
    assert.equal(await frame.locator('a[href^="javascript"]').count(), 0);
    await frame.getByText('link').click(); // what is left of the javascript: link does nothing
    assert.equal(await xssMarker(), undefined, 'no payload ran');
    assert.equal(await frame.locator('script').count(), 0);
    assert.equal(await page.getByRole('list', { name: 'Attachments' }).getByRole('link').textContent(), XSS_FILENAME);
  });

  it('replies, and the reply reaches the sender with a Sent copy', async () => {
    await page.getByRole('button', { name: 'Reply', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'New message' });
    assert.equal(await dialog.getByLabel('To').inputValue(), 'Vic <vic@example.com>');
    // The cursor starts in the text, above the quote.
    await page.waitForFunction(() => document.activeElement?.getAttribute('aria-label') === 'Message');
    await page.keyboard.type('Thanks, read it.');
    await dialog.getByRole('button', { name: 'Send' }).click();
    await page.getByRole('status').filter({ hasText: 'Sent.' }).waitFor();
    const vic = (await server.store.getUser('vic@example.com'))!;
    const inbox = (await server.store.getMailbox(vic.id, 'INBOX'))!;
    const [reply] = await server.store.listMessages(inbox.id);
    const parsed = await simpleParser((await server.store.getBlob(reply!.blobHash))!);
    assert.equal(parsed.subject, `Re: ${XSS_SUBJECT}`);
    assert.match(parsed.inReplyTo ?? '', /^<.+>$/);
    assert.match(parsed.text ?? '', /^Thanks, read it\./);
    assert.match(parsed.text ?? '', /^> Dear Una, please read this\./m);
    const una = (await server.store.getUser('una@example.com'))!;
    assert.equal((await server.store.mailboxStatus((await server.store.getMailbox(una.id, 'Sent'))!.id)).messages, 1);
  });

  it('forwards with the attachment, and finds the message by search', async () => {
    await page.getByRole('button', { name: 'Forward' }).click();
    const dialog = page.getByRole('dialog', { name: 'New message' });
    await dialog.getByText('1 attachment of the original message go along.').waitFor();
    await dialog.getByLabel('To').fill('vic@example.com');
    await dialog.getByRole('button', { name: 'Send' }).click();
    await page.getByRole('status').filter({ hasText: 'Sent.' }).waitFor();
    const vic = (await server.store.getUser('vic@example.com'))!;
    const inbox = (await server.store.getMailbox(vic.id, 'INBOX'))!;
    const forwarded = (await server.store.listMessages(inbox.id)).at(-1)!;
    const parsed = await simpleParser((await server.store.getBlob(forwarded.blobHash))!);
    assert.equal(parsed.subject, `Fwd: ${XSS_SUBJECT}`);
    assert.equal(parsed.attachments[0]?.filename, XSS_FILENAME);
    assert.equal(parsed.attachments[0]?.content.toString(), 'attached text');

    const search = page.getByRole('searchbox');
    await search.fill('nothing like it');
    await search.press('Enter');
    await page.getByText('Nothing in INBOX matches').waitFor();
    await search.fill('vic@example');
    await search.press('Enter');
    await page.getByRole('button', { name: /Hello <img src=x/ }).waitFor();
  });

  it('deletes to Trash and logs out', async () => {
    await page.getByRole('button', { name: /Hello <img src=x/ }).click();
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Moved to Trash.' }).waitFor();
    await page.getByText('Nothing in INBOX matches').waitFor();
    await page.getByRole('navigation', { name: 'Mailboxes' }).getByRole('link', { name: /^Trash/ }).click();
    await page.getByRole('button', { name: /Hello <img src=x/ }).waitFor();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    await page.reload();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    assert.equal(await xssMarker(), undefined);
    assert.deepEqual(problems, [], 'no script errors or policy violations');
  });

  it('signs up where sign-up is open', async () => {
    const open = await startTestServer({ overrides: { web: { signup: 'open' } } });
    const signupPage = await browser.newPage({ viewport: { width: 390, height: 800 } }); // a phone
    try {
      await signupPage.goto(`http://127.0.0.1:${open.port('http')}/`);
      await signupPage.getByRole('button', { name: 'New here? Create an account' }).click();
      await signupPage.getByLabel('Address').fill('wes@example.com');
      await signupPage.getByLabel('Password').fill('a-long-password');
      await signupPage.getByRole('button', { name: 'Create account' }).click();
      await signupPage.getByText('No messages in INBOX.').waitFor();
      assert.ok(await open.store.getUser('wes@example.com'));
    } finally {
      await signupPage.close();
      await open.stop();
    }
  });
});
