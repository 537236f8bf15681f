// The README's webmail screenshots: a server with a little demo mail, then the inbox, a
// conversation and compose, on a desktop and on a phone, into docs/screenshots/.
//   npx vite build --config src/web/app/vite.config.ts && node --import tsx scripts/screenshots.ts
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startTestServer } from '../test/helpers.js';

const OUT = 'docs/screenshots';
const CHROMIUM = process.env.QUILL_CHROMIUM ?? '/usr/bin/chromium';

function message(lines: string[]): Buffer {
  return Buffer.from(lines.join('\r\n') + '\r\n');
}

const server = await startTestServer();
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
try {
  const una = await server.addUser('una@example.com', 'una-password');
  const day = (d: number, h: number) => new Date(Date.UTC(2026, 11, 7 - d, h, 12)).toUTCString().replace('GMT', '+0000');
  const thread = ['<p1@example.org>', '<p2@example.org>', '<p3@example.org>'];
  const mail: { lines: string[]; flags?: string[] }[] = [
    { lines: ['From: Ana Lima <ana@example.org>', 'To: una@example.com', 'Subject: Quarterly numbers', `Date: ${day(6, 9)}`, '', 'Here are the numbers for the quarter; the summary is on page two.'], flags: ['\\Seen'] },
    { lines: ['From: Build bot <ci@example.org>', 'To: una@example.com', 'Subject: Nightly build passed', `Date: ${day(2, 4)}`, '', 'All 412 tests passed in 9 minutes.'], flags: ['\\Seen'] },
    ...thread.map((id, i) => ({
      lines: [
        `From: ${i % 2 ? 'Una <una@example.com>' : 'Dee Park <dee@example.org>'}`,
        'To: una@example.com',
        `Subject: ${i ? 'Re: ' : ''}Garden party on Saturday`,
        `Message-ID: ${id}`,
        ...(i ? [`In-Reply-To: ${thread[i - 1]}`, `References: ${thread.slice(0, i).join(' ')}`] : []),
        `Date: ${day(1 - Math.min(i, 1), 8 + i)}`,
        '',
        ['Shall we move the garden party to Saturday? The forecast says sun all day.', 'Saturday works. I can bring the lemonade and some chairs.', 'Great, see you at three. Directions: https://example.org/map'][i]!,
      ],
      flags: i < 2 ? ['\\Seen'] : [],
    })),
    { lines: ['From: Carl Mendes <carl@example.org>', 'To: una@example.com', 'Subject: Lunch next week?', `Date: ${day(0, 11)}`, '', 'Are you free for lunch on Tuesday or Wednesday?'] },
  ];
  for (const m of mail) await server.store.deliver(message(m.lines), [{ userId: una, flags: m.flags }]);
  mkdirSync(OUT, { recursive: true });
  const base = `http://127.0.0.1:${server.port('http')}`;
  for (const [name, viewport] of [
    ['desktop', { width: 1100, height: 640 }],
    ['phone', { width: 390, height: 720 }],
  ] as const) {
    const page = await browser.newPage({ viewport, deviceScaleFactor: 1, colorScheme: 'light' });
    await page.goto(base);
    await page.getByLabel('Address').fill('una@example.com');
    await page.getByLabel('Password').fill('una-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('button', { name: /Garden party/ }).waitFor();
    await page.screenshot({ path: `${OUT}/inbox-${name}.png` });
    await page.getByRole('button', { name: /Garden party/ }).click();
    await page.getByRole('list', { name: 'Conversation' }).waitFor();
    await page.screenshot({ path: `${OUT}/conversation-${name}.png` });
    await page.keyboard.press('r');
    await page.getByRole('dialog', { name: 'New message' }).waitFor();
    await page.keyboard.type('Looking forward to it!');
    await page.screenshot({ path: `${OUT}/compose-${name}.png` });
    await page.close();
  }
} finally {
  await browser.close();
  await server.stop();
}
