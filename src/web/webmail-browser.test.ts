// Issue 21 in a real browser (playwright-core driving Debian's chromium): compose never loses
// work, `Name <address>` recipients, human errors, URLs that survive reload and Back,
// conversations as one row, and undo of a delete.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { simpleParser } from 'mailparser';
import type { Browser, Page } from 'playwright-core';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { rawMessage } from './test-kit.js';
import { launchBrowser, noChromium } from '../../test/browser-kit.js';

describe('webmail a person would choose (issue 21)', { skip: noChromium }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let base: string;
  let una: number;
  const problems: string[] = [];

  before(async () => {
    server = await startTestServer();
    base = `http://127.0.0.1:${server.port('http')}`;
    una = await server.addUser('una@example.com', 'una-password');
    await server.addUser('bob@example.com', 'bob-password');
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await page.goto(base);
    await page.getByLabel('Address').fill('una@example.com');
    await page.getByLabel('Password').fill('una-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('No messages in INBOX.').waitFor();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const mailboxOf = async (address: string, name: string) => {
    const user = (await server.store.getUser(address))!;
    return (await server.store.getMailbox(user.id, name))!;
  };
  const messagesIn = async (address: string, name: string) => {
    const mailbox = await mailboxOf(address, name);
    return Promise.all((await server.store.listMessages(mailbox.id)).map(async (m) => simpleParser((await server.store.getBlob(m.blobHash))!)));
  };
  const compose = () => page.getByRole('dialog', { name: 'New message' });

  it('keeps a draft when Escape closes compose, and Enter in Subject does not send', async () => {
    await page.getByRole('navigation', { name: 'Mailboxes' }).getByRole('button', { name: 'Compose' }).click();
    await compose().getByLabel('To').fill('bob@example.com');
    await compose().getByLabel('Subject').fill('Plans for Friday');
    await compose().getByLabel('Subject').press('Enter');
    // Enter moved on to the next field instead of sending.
    await page.waitForFunction(() => document.activeElement?.getAttribute('aria-label') === 'Message');
    await page.keyboard.type('Half a thought that must not be lost');
    // Saved while typing, once typing pauses; the window stays open.
    await compose().getByRole('status').filter({ hasText: /^Draft saved at/ }).waitFor();
    await page.keyboard.type(', and this too');
    await page.keyboard.press('Escape');
    await compose().waitFor({ state: 'detached' });
    await page.getByRole('status').filter({ hasText: 'Draft saved in Drafts.' }).waitFor();
    assert.equal((await messagesIn('bob@example.com', 'INBOX')).length, 0, 'nothing was sent');
    const drafts = await messagesIn('una@example.com', 'Drafts');
    assert.equal(drafts.length, 1, 'one draft, however often it was saved');
    assert.equal(drafts[0]!.subject, 'Plans for Friday');
    assert.match(drafts[0]!.text ?? '', /Half a thought that must not be lost, and this too/, 'Escape saved the last words too');

    // It opens again from Drafts, showing whom it is for.
    await page.getByRole('navigation', { name: 'Mailboxes' }).getByRole('link', { name: /^Drafts/ }).click();
    await page.getByRole('button', { name: /To: bob@example.com.*Plans for Friday/ }).click();
    await page.getByRole('button', { name: 'Edit draft' }).click();
    assert.equal((await compose().getByLabel('Message').inputValue()).trimEnd(), 'Half a thought that must not be lost, and this too');
    // Ctrl+Enter sends, and the draft goes.
    await compose().getByLabel('Message').press('Control+Enter');
    await page.getByRole('status').filter({ hasText: 'Sent.' }).waitFor();
    assert.equal((await messagesIn('bob@example.com', 'INBOX')).length, 1);
    assert.equal((await messagesIn('una@example.com', 'Drafts')).length, 0);
  });

  it('sends to `Bob Builder <bob@example.com>` with the display name, and explains a bad address in words', async () => {
    // The sender's own display name, from Settings.
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.getByLabel(/Display name/).fill('Una Ulm');
    await page.getByRole('dialog', { name: 'Settings' }).getByRole('button', { name: 'Save' }).click();
    await page.getByRole('navigation', { name: 'Mailboxes' }).getByRole('button', { name: 'Compose' }).click();
    await compose().getByLabel('To').fill('Bob Builder <bob@example.com>, not an address');
    await compose().getByLabel('Subject').fill('Named');
    await compose().getByRole('button', { name: 'Send' }).click();
    const alert = compose().getByRole('alert');
    await alert.filter({ hasText: '“not an address” is not an email address.' }).waitFor();
    assert.doesNotMatch((await alert.textContent()) ?? '', /must match|body\//);
    await compose().getByLabel('To').fill('Bob Builder <bob@example.com>, "Builder, Wendy" <una@example.com>');
    await compose().getByRole('button', { name: 'Send' }).click();
    await page.getByRole('status').filter({ hasText: 'Sent.' }).waitFor();
    const delivered = (await messagesIn('bob@example.com', 'INBOX')).find((m) => m.subject === 'Named')!;
    assert.deepEqual(delivered.from?.value.map((a) => [a.name, a.address]), [['Una Ulm', 'una@example.com']]);
    const to = Array.isArray(delivered.to) ? delivered.to[0]! : delivered.to!;
    assert.deepEqual(
      to.value.map((a) => [a.name, a.address]),
      [
        ['Bob Builder', 'bob@example.com'],
        ['Builder, Wendy', 'una@example.com'],
      ],
    );
    // The API itself answers a bad address with a sentence, not the schema's words.
    const answer = await page.evaluate(async () => {
      const me = await (await fetch('/api/me')).json();
      const r = await fetch('/api/send', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrfToken }, body: JSON.stringify({ to: ['bob@@x'], subject: 's' }) });
      return (await r.json()).error as string;
    });
    assert.equal(answer, '“bob@@x” in To is not an email address. Write it as name@example.com or Name <name@example.com>.');
  });

  it('gives a message a URL: reload shows it again, Back returns to the list', async () => {
    await server.store.deliver(rawMessage(['From: Carl <carl@example.org>', 'To: una@example.com', 'Subject: Routed', 'Message-ID: <routed@example.org>', '', 'See https://example.org/a?b=1, then reply.']), [{ userId: una }]);
    await page.getByRole('navigation', { name: 'Mailboxes' }).getByRole('link', { name: /^INBOX/ }).click();
    await page.getByRole('button', { name: /Routed/ }).click();
    await page.getByRole('heading', { level: 2, name: 'Routed' }).waitFor();
    const url = page.url();
    assert.match(url, /#\/mail\/INBOX\/\d+$/);
    // The plain-text link is a safe link.
    const link = page.locator('pre.body a');
    assert.equal(await link.getAttribute('href'), 'https://example.org/a?b=1');
    assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
    // Opening marked it read, and the button says so.
    await page.getByRole('button', { name: 'Mark unread' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { level: 2, name: 'Routed' }).waitFor();
    assert.equal(page.url(), url);
    await page.goBack();
    await page.waitForURL(/#\/mail\/INBOX$/);
    await page.getByRole('button', { name: /Routed/ }).waitFor();
    assert.equal(await page.getByRole('heading', { level: 2 }).count(), 0, 'no message open');
  });

  it('shows a five-message thread as one row, and undoes a delete', async () => {
    const ids = ['<t1@example.org>', '<t2@example.org>', '<t3@example.org>', '<t4@example.org>', '<t5@example.org>'];
    for (let i = 0; i < ids.length; i++) {
      const refs = ids.slice(0, i);
      await server.store.deliver(
        rawMessage([
          `From: ${i % 2 ? 'Una <una@example.com>' : 'Dee <dee@example.org>'}`,
          'To: una@example.com',
          `Subject: ${i ? 'Re: ' : ''}Garden party`,
          `Message-ID: ${ids[i]}`,
          ...(i ? [`In-Reply-To: ${refs.at(-1)}`, `References: ${refs.join(' ')}`] : []),
          `Date: Mon, 7 Dec 2026 0${i}:00:00 +0000`,
          '',
          `Message number ${i + 1} of the party thread`,
        ]),
        [{ userId: una }],
      );
    }
    const rows = page.getByRole('list').filter({ has: page.getByRole('button', { name: /Garden party/ }) }).getByRole('button', { name: /Garden party/ });
    await page.getByRole('button', { name: /Garden party.*Message number 5/ }).waitFor(); // the live list caught up
    assert.equal(await rows.count(), 1, 'one row for the conversation');
    assert.match((await rows.textContent()) ?? '', /Dee, Una 5/, 'its people and message count');
    assert.match((await rows.textContent()) ?? '', /Message number 5 of the party thread/, 'with the newest preview line');

    await rows.click();
    await page.getByRole('list', { name: 'Conversation' }).getByRole('listitem').nth(3).waitFor();
    assert.match(page.url(), /#\/mail\/INBOX\/t\/\d+$/);
    await page.getByText('Message number 5 of the party thread').first().waitFor();

    // Select it and delete the whole conversation; Undo brings all five back.
    await page.goBack();
    await page.getByRole('checkbox', { name: 'Select Garden party' }).check();
    await page.getByRole('button', { name: 'Delete selected' }).click();
    const toast = page.getByRole('status').filter({ hasText: '5 messages moved to Trash.' });
    await toast.waitFor();
    await page.getByRole('button', { name: /Garden party/ }).waitFor({ state: 'detached' });
    assert.equal((await server.store.listMessages((await mailboxOf('una@example.com', 'Trash')).id)).length, 5);
    await toast.getByRole('button', { name: 'Undo' }).click();
    await page.getByRole('status').filter({ hasText: 'Delete undone.' }).waitFor();
    await page.getByRole('button', { name: /Garden party/ }).waitFor();
    assert.equal((await server.store.listMessages((await mailboxOf('una@example.com', 'Trash')).id)).length, 0);
    assert.equal(await page.title(), '(5) Inbox — Quillmail', 'the tab shows the unread count');
  });

  it('finds a message by a word of its body, in the webmail and over IMAP', async () => {
    const html = ['<p>The <b>aubergine</b> harvest was late.</p>'].join('');
    await server.store.deliver(
      rawMessage(['From: Gil <gil@example.org>', 'To: una@example.com', 'Subject: Farm news', 'Content-Type: text/html; charset=utf-8', '', html]),
      [{ userId: una }],
    );
    await page.getByRole('button', { name: /Farm news/ }).waitFor();
    const search = page.getByRole('searchbox');
    await search.fill('aubergine');
    await search.press('Enter');
    // The unfiltered list shows "Farm news" too: wait for the search's list, not for the row.
    await page.waitForFunction(() => document.querySelectorAll('ul.conversations > li').length === 1, undefined, { timeout: 10_000 }).catch(() => undefined);
    await page.getByRole('button', { name: /Farm news/ }).waitFor();
    assert.equal(await page.locator('ul.conversations > li').count(), 1, 'only the message with the word');
    await search.fill('harv');
    await search.press('Enter');
    await page.getByRole('button', { name: /Farm news/ }).waitFor(); // a word's start is enough
    await search.fill('zucchini');
    await search.press('Enter');
    await page.getByText('Nothing in INBOX matches “zucchini”.').waitFor();

    const imap = new ImapFlow({ host: '127.0.0.1', port: server.port('imap'), secure: false, auth: { user: 'una@example.com', pass: 'una-password' }, logger: false, tls: { rejectUnauthorized: false } });
    await imap.connect();
    try {
      await imap.mailboxOpen('INBOX');
      const found = (await imap.search({ body: 'aubergine' }, { uid: true })) || [];
      assert.equal(found.length, 1);
      const fetched = await imap.fetchOne(String(found[0]), { envelope: true }, { uid: true });
      assert.equal(fetched && fetched.envelope?.subject, 'Farm news');
      assert.deepEqual((await imap.search({ text: 'aubergine harvest' }, { uid: true })) || [], [], 'TEXT is one string: these words are not next to each other');
      assert.deepEqual((await imap.search({ text: 'harvest was late' }, { uid: true })) || [], found);
      assert.deepEqual((await imap.search({ body: 'zucchini' }, { uid: true })) || [], []);
    } finally {
      await imap.logout();
    }
    assert.deepEqual(problems, []);
  });
});
