// Browser-test helpers: Debian's Chromium (headless, no download) through
// playwright-core, and a Person who uses the web client as people do:
// typing, clicking, reading what the page shows.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

export const BASE = process.env.MISSIVE_URL || 'http://127.0.0.1:8080';
export const SMS = process.env.MISSIVE_SMS_FILE;
export const ARTIFACTS = process.env.MISSIVE_ARTIFACTS || 'test-results';
const WAIT = Number(process.env.MISSIVE_BROWSER_WAIT_MS || 20_000);

export function log(...parts) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...parts);
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** The newest code the SMS sink wrote for `phone` after `after` lines. */
async function codeFor(phone, after) {
  for (let i = 0; i < 100; i++) {
    const lines = smsText().split('\n').filter(Boolean).slice(after);
    const line = lines.map((l) => JSON.parse(l)).filter((l) => l.to === phone).at(-1);
    if (line) return line.code;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no code was sent to ${phone}`);
}

/** What the server's SMS sink wrote so far (it creates the file with the first code). */
function smsText() {
  try {
    return readFileSync(SMS, 'utf8');
  } catch {
    return '';
  }
}

function smsLines() {
  return smsText().split('\n').filter(Boolean).length;
}

export class Person {
  constructor(browser, name, phone, options = {}) {
    this.browser = browser;
    this.name = name;
    this.phone = phone;
    this.options = options;
    this.errors = [];
    track(this);
  }

  async open() {
    this.context = await this.browser.newContext({ viewport: this.options.viewport || { width: 1200, height: 800 } });
    this.page = await this.context.newPage();
    this.page.setDefaultTimeout(WAIT);
    this.page.on('pageerror', (error) => {
      this.errors.push(error.message);
      log(`${this.name} page error:`, error.message);
    });
    this.page.on('console', (msg) => {
      if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) log(`${this.name} console:`, msg.text());
    });
    // 421 (another gateway serves this user) and 404 (a chat not on the server yet) are expected answers.
    this.page.on('response', (r) => r.status() >= 400 && ![404, 421].includes(r.status()) && log(`${this.name} http ${r.status()} ${r.url()}`));
    this.page.on('requestfailed', (r) => log(`${this.name} request failed: ${r.url()} ${r.failure()?.errorText}`));
    await this.page.goto(BASE);
    return this;
  }

  async register() {
    const page = this.page;
    const before = smsLines();
    await page.getByLabel('Your phone number').fill(this.phone);
    await page.getByRole('button', { name: 'Send me a code' }).click();
    const code = await codeFor(this.phone, before);
    await page.getByLabel('Code').fill(code);
    await page.getByLabel('Name this device').fill(`${this.name}'s browser`);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByTestId('chat-list').waitFor();
    this.user = await page.evaluate(() => window.missive.client.me);
    await this.online();
    return this;
  }

  /** Waits until the page says it is connected. */
  async online() {
    await this.page.getByTestId('chat-list').waitFor();
    await this.page.waitForFunction(() => !document.querySelector('[data-testid=banner]'));
  }

  async setName(displayName) {
    await this.page.getByRole('button', { name: 'Settings' }).click();
    await this.page.getByLabel('Name', { exact: true }).fill(displayName);
    await this.page.getByTestId('profile-form').getByRole('button', { name: 'Save' }).click();
    await this.page.getByText('Profile saved').waitFor();
    await this.page.getByRole('button', { name: 'Close' }).click();
  }

  async startChat(phone) {
    await this.page.getByTestId('new-chat').click();
    await this.page.getByTestId('new-chat-form').locator('textarea').fill(phone);
    await this.page.getByRole('button', { name: 'Find on Missive' }).click();
    await this.page.getByTestId('conversation').waitFor();
  }

  async openChat(name) {
    const title = this.page.locator('.chat-name').getByText(name, { exact: true });
    await this.page.getByTestId('chat-row').filter({ has: title }).click();
    await this.page.getByTestId('conversation').waitFor();
  }

  async send(text) {
    await this.page.getByTestId('composer').fill(text);
    await this.page.getByTestId('composer').press('Enter');
  }

  message(text) {
    return this.page.getByTestId('message').filter({ has: this.page.getByTestId('text').getByText(text, { exact: true }) });
  }

  async sees(text) {
    await this.message(text).first().waitFor();
  }

  async ticks(text, wanted) {
    const ticks = this.message(text).getByTestId('ticks');
    await ticks.and(this.page.locator(`[data-ticks=${wanted}]`)).waitFor();
  }

  async texts() {
    return this.page.getByTestId('text').allTextContents();
  }

  async screenshot(name) {
    mkdirSync(ARTIFACTS, { recursive: true });
    const path = join(ARTIFACTS, `${name}.png`);
    // Passing notices ("Profile saved") go in 2.5 s; a shot shows the screen itself.
    if (!name.startsWith('FAILED')) await this.page.locator('.notice.info').first().waitFor({ state: 'detached', timeout: 3000 }).catch(() => {});
    await this.page.screenshot({ path });
    log('screenshot', path);
    return path;
  }

  async close() {
    await this.context.close();
    check(this.errors.length === 0, `${this.name}'s page threw: ${this.errors.join('; ')}`);
  }
}

/** Runs `missive chat` (the terminal client) with a profile; its JSON lines. */
export function missiveChat(profile, args) {
  const bin = process.env.MISSIVE_BIN;
  check(bin, 'MISSIVE_BIN names the missive binary');
  const result = spawnSync(bin, ['chat', '--server', BASE, '--profile', profile, ...args], { encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`missive chat ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

const people = [];

/** Runs a scenario with a browser; on failure saves each person's screen and state before failing. */
export async function scenario(body) {
  const browser = await launch();
  try {
    await body(browser);
  } catch (error) {
    for (const person of people) {
      try {
        await person.screenshot(`FAILED-${person.name}`);
        const state = await person.page.evaluate(() => {
          const c = window.missive.client;
          return c && { status: c.status, notices: c.notices, outbox: c.outbox.length, open: c.openChatId };
        });
        log(`${person.name} at failure:`, JSON.stringify(state));
      } catch {
        // the page may be gone
      }
    }
    throw error;
  } finally {
    await browser.close();
  }
}

export function track(person) {
  people.push(person);
  return person;
}
