// The admin console in a real browser (playwright-core driving Debian's chromium): an admin
// drains and undrains the node from the Cluster page and sees its state change live; a
// non-admin sees no console and gets 403 from the admin API; a raw message view shows the
// stored bytes as text and appears in the audit log.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import type { Browser, Page } from 'playwright-core';
import { startTestServer, type TestServer } from '../../test/helpers.js';
import { hashPassword } from '../util/password.js';
import { launchBrowser, noChromium } from '../../test/browser-kit.js';

const NODE = 'node-a';

async function logIn(page: Page, base: string, address: string, password: string): Promise<void> {
  await page.goto(base);
  await page.getByLabel('Address').fill(address);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('No messages in INBOX.').or(page.getByRole('button', { name: /^INBOX/ })).first().waitFor();
}

describe('admin console in a browser', { skip: noChromium }, () => {
  let server: TestServer;
  let browser: Browser;
  let base: string;
  const problems: string[] = [];

  const newPage = async (width = 1200): Promise<Page> => {
    const context = await browser.newContext({ viewport: { width, height: 800 } });
    const page = await context.newPage();
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) problems.push(`console: ${message.text()}`);
    });
    return page;
  };

  before(async () => {
    // No queue worker: a message to a remote domain stays in the queue for the Queue page.
    server = await startTestServer({ nodeId: NODE, overrides: { outbound: { enabled: false } } });
    base = `http://127.0.0.1:${server.port('http')}`;
    await server.store.addUser({ address: 'ada@example.com', passwordHash: await hashPassword('ada-password'), isAdmin: true });
    await server.addUser('bob@example.com', 'bob-password');
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('an admin drains and undrains a node and sees its state change without reloading', async () => {
    const page = await newPage();
    await logIn(page, base, 'ada@example.com', 'ada-password');
    await page.getByRole('navigation', { name: 'Parts' }).getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Cluster' }).click();
    await page.getByRole('heading', { name: 'Cluster', level: 2 }).waitFor();
    await page.evaluate(() => ((window as unknown as { __same?: number }).__same = 1)); // gone after a reload

    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: NODE, exact: true }) });
    await row.getByText('active', { exact: true }).waitFor();
    await row.getByText('alive', { exact: true }).waitFor();
    await row.getByText(/^\d+ s ago$/).waitFor();
    await page.getByRole('region', { name: 'Store' }).getByText('SQLite', { exact: true }).waitFor();

    // Stop asks first; Cancel leaves the node alone.
    await row.getByRole('button', { name: `Stop ${NODE}` }).click();
    await row.getByRole('group', { name: `Stop ${NODE}?` }).getByRole('button', { name: 'Cancel' }).click();
    await row.getByRole('button', { name: `Stop ${NODE}` }).waitFor();

    await row.getByRole('button', { name: `Drain ${NODE}` }).click();
    await page.getByRole('status').filter({ hasText: `${NODE} asked to drain.` }).waitFor();
    await row.getByText('draining', { exact: true }).waitFor({ timeout: 10_000 }); // the node obeys at its next beat; the page polls
    assert.equal(server.membership.state, 'draining');

    await row.getByRole('button', { name: `Undrain ${NODE}` }).click();
    await row.getByText('active', { exact: true }).waitFor({ timeout: 10_000 });
    assert.equal(server.membership.state, 'active');
    assert.equal(await page.evaluate(() => (window as unknown as { __same?: number }).__same), 1, 'the page never reloaded');
    await page.context().close();
  });

  it('shows PostgreSQL groups with each host role and replay lag, and dead members', async () => {
    // The cluster answer of a PostgreSQL deployment, served in place of the SQLite test server's.
    const beat = new Date(Date.now() - 60_000).toISOString();
    const answer = {
      members: [
        {
          id: 'gw-1',
          kind: 'gateway',
          state: 'active',
          requestedState: null,
          version: '9.9.9',
          addresses: { smtp: '10.0.0.1:25' },
          load: { connections: { smtp: 7, imap: 2 }, eventLoopDelayMs: 1.5, cpuPercent: 2.5, rssBytes: 50 << 20 },
          startedAt: beat,
          beatAt: beat,
          alive: false,
        },
      ],
      store: {
        kind: 'postgres',
        groups: [
          {
            name: 'g1',
            hosts: [
              { host: 'db1:5432', role: 'primary', lagBytes: null },
              { host: 'db2:5432', role: 'standby', lagBytes: 2048 },
            ],
          },
        ],
      },
    };
    const page = await newPage();
    await page.route('**/api/admin/cluster', (route) => route.fulfill({ json: answer }));
    await logIn(page, base, 'ada@example.com', 'ada-password');
    await page.goto(`${base}/#/admin/cluster`);
    const groups = page.getByRole('table', { name: 'Store groups' });
    await groups.getByRole('row').filter({ hasText: 'db2:5432' }).getByText('standby').waitFor();
    assert.match(await groups.getByRole('row').filter({ hasText: 'db2:5432' }).innerText(), /g1\s+db2:5432\s+standby\s+2\.0 KiB/);
    assert.match(await groups.getByRole('row').filter({ hasText: 'db1:5432' }).innerText(), /primary/);
    const gateway = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'gw-1', exact: true }) });
    assert.match(await gateway.innerText(), /gateway\s+active\s+dead\s+9\.9\.9\s+smtp 7, imap 2/);
    await gateway.getByText('1 min ago').waitFor();
    assert.equal(await gateway.getByRole('button', { name: 'Drain gw-1' }).count(), 0, 'only nodes drain');
    // A gateway obeys stop and restart like a node; this one is dead, so there is nothing to ask.
    assert.equal(await gateway.getByRole('button', { name: 'Stop gw-1' }).isDisabled(), true);
    assert.equal(await gateway.getByRole('button', { name: 'Restart gw-1' }).isDisabled(), true);
    await page.context().close();
  });

  it('a non-admin sees no console and gets 403 from the admin API', async () => {
    const page = await newPage(390); // a phone
    await logIn(page, base, 'bob@example.com', 'bob-password');
    const parts = page.getByRole('navigation', { name: 'Parts' });
    await parts.getByRole('link', { name: 'Mail' }).waitFor();
    assert.equal(await parts.getByRole('link', { name: 'Admin' }).count(), 0, 'no Admin link');

    await page.goto(`${base}/#/admin/cluster`);
    await page.getByText('No messages in INBOX.').waitFor();
    assert.equal(await page.getByRole('heading', { name: 'Admin console' }).count(), 0);
    assert.equal(await page.getByRole('button', { name: `Drain ${NODE}` }).count(), 0);

    const answers = await page.evaluate(async () => {
      const out: [number, string][] = [];
      for (const url of ['/api/admin/cluster', '/api/admin/users', '/api/admin/audit']) {
        const response = await fetch(url, { credentials: 'same-origin' });
        out.push([response.status, ((await response.json()) as { error?: string }).error ?? '']);
      }
      return out;
    });
    assert.deepEqual(answers, Array(3).fill([403, 'administrators only']));
    await page.context().close();
  });

  it('a raw message view shows the stored bytes as text and is in the audit log', async () => {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: server.port('smtp'), secure: false, ignoreTLS: true });
    await transport.sendMail({ from: 'ada@example.com', to: 'bob@example.com', subject: 'Raw <b>bold</b> test', text: 'Body <i>line</i>.' });
    transport.close();

    const page = await newPage();
    await logIn(page, base, 'ada@example.com', 'ada-password');
    await page.goto(`${base}/#/admin/raw`);
    await page.getByRole('heading', { name: 'Raw data' }).waitFor();
    await page.getByLabel('User address').fill('bob@example.com');
    await page.getByRole('button', { name: 'Show mailboxes' }).click();
    await page.getByRole('button', { name: 'Open mailbox INBOX' }).click();
    await page.getByRole('button', { name: 'View message 1' }).click();
    const raw = page.getByLabel('Stored bytes of message 1');
    await raw.waitFor();
    const text = await raw.innerText();
    assert.match(text, /^Subject: Raw <b>bold<\/b> test$/m);
    assert.match(text, /Body <i>line<\/i>\./);
    assert.equal(await raw.locator('b, i').count(), 0, 'shown as text, not HTML');
    await page.getByRole('button', { name: 'Show drive objects' }).click();
    await page.getByRole('heading', { name: 'Drive of bob@example.com' }).waitFor();
    await page.getByText('No drive objects.').waitFor();

    await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    const newest = page.getByRole('row').nth(1); // the first row after the header: newest first (the drive view)
    await newest.getByRole('cell', { name: 'view', exact: true }).waitFor();
    assert.match(await newest.innerText(), /ada@example\.com\s+view\s+bob@example\.com\s+what: drive, objects: 0/);
    assert.match(await page.getByRole('row').nth(2).innerText(), /ada@example\.com\s+view\s+bob@example\.com\s+what: message, mailbox: INBOX, mailboxId: \d+, uid: 1/);
    assert.ok((await page.getByRole('row').filter({ hasText: 'node.drain' }).count()) >= 1, 'the drain of the first test is there too');
    await page.context().close();
  });

  it('an admin creates, finds and disables a user, and sees the error when a move is refused', async () => {
    const page = await newPage(390); // a phone
    await logIn(page, base, 'ada@example.com', 'ada-password');
    await page.goto(`${base}/#/admin/users`);
    const create = page.getByRole('form', { name: 'Create user' });
    await create.getByLabel('New address').fill('cid@example.com');
    await create.getByLabel('New password').fill('cid-password');
    await create.getByLabel('Quota in MiB').fill('5');
    await create.getByRole('button', { name: 'Create user' }).click();
    await page.getByRole('status').filter({ hasText: 'Created cid@example.com.' }).waitFor();

    await page.getByRole('searchbox', { name: 'Search users' }).fill('cid');
    await page.getByRole('searchbox', { name: 'Search users' }).press('Enter');
    await page.getByText('Users 1–1 of 1 matching “cid”').waitFor();
    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'cid@example.com', exact: true }) });
    await row.getByText('5.0 MiB').waitFor();
    await row.getByRole('button', { name: 'Disable cid@example.com' }).click();
    await row.getByText('disabled', { exact: true }).waitFor();
    assert.equal((await server.store.getUser('cid@example.com'))?.disabled, true);

    // A store without groups cannot move users between them: the console does not offer it.
    await row.getByRole('button', { name: 'Manage cid@example.com' }).click();
    await page.getByLabel('Quota of cid@example.com in MiB (0 = unlimited)').waitFor();
    assert.equal(await page.getByLabel('Store group for cid@example.com').count(), 0);
    assert.equal(await page.getByRole('group', { name: 'Manage cid@example.com' }).getByRole('button', { name: 'Move', exact: true }).count(), 0);
    await page.context().close();
  });

  it('pages through the audit log, newest first', async () => {
    for (let i = 1; i <= 60; i++) await server.store.addAudit({ actor: 'cli:root', action: 'test.entry', target: `target-${i}`, detail: { i }, node: null });
    const page = await newPage();
    await logIn(page, base, 'ada@example.com', 'ada-password');
    await page.goto(`${base}/#/admin/audit`);
    const rows = page.getByRole('table').getByRole('row');
    await rows.nth(1).getByText('target-60', { exact: true }).waitFor();
    assert.equal(await rows.count(), 51, 'a header and 50 entries');
    await page.getByRole('button', { name: 'Older entries' }).click();
    await page.getByText('Older entries, page 2').waitFor();
    await rows.nth(1).getByText('target-10', { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Newer entries' }).click();
    await rows.nth(1).getByText('target-60', { exact: true }).waitFor();
    await page.context().close();
  });

  it('an admin shows, holds, releases and deletes a queued message', async () => {
    const submission = nodemailer.createTransport({
      host: '127.0.0.1',
      port: server.port('submission'),
      secure: false,
      ignoreTLS: true,
      auth: { user: 'bob@example.com', pass: 'bob-password' },
    });
    await submission.sendMail({ from: 'bob@example.com', to: 'far@remote.test', subject: 'Out', text: 'out' });
    submission.close();
    const [queued] = await server.store.listOutbound();
    assert.ok(queued, 'the message is queued');
    const id = queued.id;

    const page = await newPage();
    await logIn(page, base, 'ada@example.com', 'ada-password');
    await page.goto(`${base}/#/admin/queue`);
    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: String(id), exact: true }) });
    await row.getByText('far@remote.test').waitFor();
    await row.getByRole('button', { name: `Show entry ${id}` }).click();
    await page.getByRole('heading', { name: `Queue entry ${id}` }).waitFor();

    await row.getByRole('button', { name: `Hold entry ${id}` }).click();
    await row.getByText('held', { exact: true }).waitFor();
    assert.equal((await server.store.getOutbound(id))?.status, 'held');
    await row.getByRole('button', { name: `Release entry ${id}` }).click();
    await row.getByText('queued', { exact: true }).waitFor();

    await row.getByRole('button', { name: `Delete entry ${id}` }).click();
    await row.getByRole('button', { name: `Yes, delete entry ${id}` }).click();
    await page.getByRole('status').filter({ hasText: `Entry ${id} is deleted.` }).waitFor();
    await page.getByText('The queue is empty.').waitFor();
    assert.equal(await server.store.getOutbound(id), undefined);
    await page.context().close();
    assert.deepEqual(problems, [], 'no script errors or policy violations');
  });
});
