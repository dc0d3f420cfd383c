// What every browser test needs: a real flashcoupon server on a free port
// over a fresh data directory, headless Chromium (Debian's), the admin's
// token, and a place for screenshots.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = join(here, 'artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

export const ADMIN = { email: 'admin@e2e.example.com', password: 'e2e-admin-password' };
const BINARY = process.env.FLASHCOUPON_BIN ?? join(here, '..', 'target', 'debug', 'flashcoupon');

/**
 * Start `flashcoupon serve` and resolve once it prints its URL. `env` adds
 * to (or overrides) its environment, e.g. `{ FLASHCOUPON_TEST_PAYMENTS:
 * 'true' }` for a server whose buyers can pay their own orders.
 */
export async function startServer(env = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'flashcoupon-e2e-'));
  const child = spawn(BINARY, ['serve'], {
    env: {
      ...process.env,
      FLASHCOUPON_LISTEN: '127.0.0.1:0',
      FLASHCOUPON_DATA_DIR: dataDir,
      FLASHCOUPON_ADMIN_EMAIL: ADMIN.email,
      FLASHCOUPON_ADMIN_PASSWORD: ADMIN.password,
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const base = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      const m = line.match(/^flashcoupon listening on (http:\/\/\S+)$/);
      if (m) resolve(m[1]);
      else reject(new Error(`unexpected first line: ${line}`));
    });
    child.once('exit', (code) => reject(new Error(`flashcoupon exited early with ${code}`)));
  });
  return {
    base,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    // Without the background-networking flags Chromium keeps dialling
    // Google's hosts, which this closed network refuses.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * One server and one browser for a test file: started before its tests,
 * stopped after. Read `env.server` and `env.browser` inside the tests.
 * `serverEnv` goes to `startServer`.
 */
export function serverAndBrowser(serverEnv = {}) {
  const env = {};
  before(async () => {
    env.server = await startServer(serverEnv);
    env.browser = await launchBrowser();
  });
  after(async () => {
    await env.browser?.close();
    await env.server?.stop();
  });
  return env;
}

/** JSON API calls from the test itself (setting up, and the small load). */
export async function apiCall(base, method, path, token, body) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

export async function adminToken(base) {
  const r = await apiCall(base, 'POST', '/api/v1/auth/login', null, ADMIN);
  if (r.status !== 200) throw new Error(`admin login: ${r.status}`);
  return r.body.token;
}

export async function createCampaign(base, token, overrides = {}) {
  const now = Date.now();
  const body = {
    name: '블랙프라이데이 5,000원 할인',
    discount: { type: 'fixed', amount: 5000 },
    min_order_amount: 30000,
    total_quantity: 1,
    per_user_limit: 1,
    issue_starts_at: new Date(now - 60_000).toISOString(),
    issue_ends_at: new Date(now + 3_600_000).toISOString(),
    valid_days: 30,
    ...overrides,
  };
  const r = await apiCall(base, 'POST', '/api/v1/campaigns', token, body);
  if (r.status !== 201) throw new Error(`create campaign: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export function shot(page, name) {
  return page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** A page that fails the test on any script error in the browser. */
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({ acceptDownloads: true, ...options });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  // Refused 4xx answers are logged by Chromium too; a policy violation is a bug.
  page.on('console', (m) => {
    if (m.type() === 'error' && m.text().includes('Content Security Policy')) page.errors.push(m.text());
  });
  return page;
}

/**
 * Visible text whose colour contrast against its background is below WCAG
 * AA (4.5:1, or 3:1 for large text), computed in the page from the styles
 * the browser applied. Returns a description of each failure.
 */
export function contrastFailures(page) {
  return page.evaluate(() => {
    const parse = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return { r, g, b, a };
    };
    const luminance = ({ r, g, b }) => {
      const f = (v) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0.5) return c;
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const failures = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const el = node.parentElement;
      if (!node.textContent.trim() || !el || !el.checkVisibility({ opacityProperty: true, visibilityProperty: true })) continue;
      const style = getComputedStyle(el);
      const fg = parse(style.color);
      if (!fg) continue;
      const bg = background(el);
      const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) failures.push(`${ratio.toFixed(2)}:1 "${node.textContent.trim().slice(0, 40)}" (${style.color} on rgb(${bg.r}, ${bg.g}, ${bg.b}))`);
    }
    return failures;
  });
}
