// A group with 5,000 messages: opening it loads one page, scrolling up
// pages history in and keeps at most a window of messages in the page, and
// "jump to the newest" comes back. Reports the time to open the chat and
// each page's time. (The history is seeded by the Rust test, plaintext, on
// a server that allows it: a device registered after messages were sent
// holds no key for them, as in WhatsApp.)
import { check, log, Person, scenario } from './harness.mjs';

const TOTAL = Number(process.env.SCROLL_TOTAL || 5000);

await scenario(async (browser) => {
  const reader = await new Person(browser, 'reader', process.env.READER_PHONE).open();
  await reader.register();
  const page = reader.page;
  const row = page.getByTestId('chat-row').filter({ hasText: 'Long history' });
  await row.waitFor();
  const opened = Date.now();
  await row.click();
  await page.getByTestId('text').getByText(`m${TOTAL - 1}`, { exact: true }).waitFor();
  const openMs = Date.now() - opened;
  const state = () =>
    page.evaluate(() => {
      const chat = window.missive.client.chats.get(window.missive.client.openChatId);
      const rows = [...document.querySelectorAll('[data-testid=message]')].map((r) => Number(r.dataset.seq));
      return { loaded: chat.messages.length, rendered: rows.length, first: Math.min(...rows), last: Math.max(...rows) };
    });
  const start = await state();
  log('opened', JSON.stringify(start), `${openMs} ms`);
  check(start.loaded <= 60, `one page loaded at open, not ${start.loaded}`);
  const box = page.getByTestId('messages');
  const pageTimes = [];
  let seen = start;
  for (let i = 0; i < 30; i++) {
    const began = Date.now();
    await box.evaluate((el) => (el.scrollTop = 0));
    await page.waitForFunction((before) => {
      const rows = [...document.querySelectorAll('[data-testid=message]')].map((r) => Number(r.dataset.seq));
      return Math.min(...rows) < before;
    }, seen.first);
    pageTimes.push(Date.now() - began);
    seen = await state();
    check(seen.rendered <= 120, `at most 120 messages in the page, not ${seen.rendered}`);
  }
  log('after scrolling up', JSON.stringify(seen));
  check(seen.loaded < TOTAL / 4, `history is paged: ${seen.loaded} of ${TOTAL} loaded`);
  check(seen.first < start.first - 600, `scrolled far back: from ${start.first} to ${seen.first}`);
  await reader.screenshot('21-long-history');
  await page.getByRole('button', { name: 'Jump to the newest message' }).click();
  await page.getByTestId('text').getByText(`m${TOTAL - 1}`, { exact: true }).waitFor();
  const back = await state();
  check(back.rendered <= 120, `the window again: ${back.rendered}`);
  await reader.close();
  pageTimes.sort((a, b) => a - b);
  console.log(JSON.stringify({ open_ms: openMs, page_ms_median: pageTimes[pageTimes.length >> 1], page_ms_max: pageTimes.at(-1), loaded: seen.loaded, rendered_max: 120 }));
});
