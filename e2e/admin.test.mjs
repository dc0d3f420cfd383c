// The admin console: log in, create a campaign through the form (after the
// form refuses a bad one, sending nothing), open its dashboard and watch the
// numbers move while a small load claims, export the winners, pause.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ADMIN, adminToken, apiCall, contrastFailures, newPage, shot, serverAndBrowser } from './harness.mjs';

const env = serverAndBrowser();

/** `datetime-local` text for a moment, in the browser's (and this process's) zone. */
function localInput(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `users` shoppers claim, a few at a time: the dashboard's small load. */
async function smallLoad(campaignId, users) {
  const token = await adminToken(env.server.base);
  const bulk = await apiCall(env.server.base, 'POST', '/api/v1/admin/users/bulk', token,
    { count: users, email_prefix: 'load', password: 'password-123' });
  assert.equal(bulk.status, 201);
  const statuses = [];
  const tokens = bulk.body.users.map((u) => u.token);
  for (let i = 0; i < tokens.length; i += 5) {
    const wave = tokens.slice(i, i + 5).map((t) => apiCall(env.server.base, 'POST', `/api/v1/campaigns/${campaignId}/issue`, t));
    for (const r of await Promise.all(wave)) statuses.push(r.status);
    await new Promise((r) => setTimeout(r, 100));
  }
  return statuses;
}

test('an admin creates a campaign, watches its dashboard move under load, exports winners and pauses it', async () => {
  const page = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });
  await page.goto(env.server.base + '/admin');

  // A shopper account is not an admin.
  const shopper = await apiCall(env.server.base, 'POST', '/api/v1/auth/signup', null, { email: 'not-admin@example.com', password: 'password-123' });
  assert.equal(shopper.status, 201);
  await page.locator('#email').fill('not-admin@example.com');
  await page.locator('#password').fill('password-123');
  await page.locator('#auth-form button[type="submit"]').click();
  await page.locator('#auth-error').filter({ hasText: '관리자 계정이 아닙니다' }).waitFor();

  await page.locator('#email').fill(ADMIN.email);
  await page.locator('#password').fill(ADMIN.password);
  await page.locator('#auth-form button[type="submit"]').click();
  await page.getByTestId('who').filter({ hasText: ADMIN.email }).waitFor();

  // The form mirrors the API's rules: nothing is sent while it is wrong.
  await page.getByTestId('new-campaign').click();
  const form = page.getByTestId('campaign-form');
  await form.locator('#f-name').fill('   ');
  await form.locator('#f-total').fill('0');
  await form.locator('#f-per-user').fill('1001');
  const now = Date.now();
  await form.locator('#f-starts').fill(localInput(now - 60_000));
  await form.locator('#f-ends').fill(localInput(now - 120_000));
  let posted = 0;
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith('/api/v1/campaigns')) posted++;
  });
  await page.getByTestId('save-campaign').click();
  await form.locator('#f-name-error').filter({ hasText: '1~200자' }).waitFor();
  assert.match(await form.locator('#f-total-error').textContent(), /1 이상/);
  assert.match(await form.locator('#f-per-user-error').textContent(), /1,000 이하/);
  assert.match(await form.locator('#f-ends-error').textContent(), /발급 시작보다 뒤/);
  assert.equal(await form.locator('#f-name').getAttribute('aria-invalid'), 'true');
  assert.equal(posted, 0, 'an invalid form sends nothing');
  await shot(page, 'admin-form-errors');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast in the form, errors included');

  await form.locator('#f-name').fill('주말 특가 3,000원');
  await form.locator('#f-amount').fill('3000');
  await form.locator('#f-total').fill('30');
  await form.locator('#f-per-user').fill('1');
  await form.locator('#f-ends').fill(localInput(now + 3_600_000));
  await page.getByTestId('save-campaign').click();
  const row = page.getByTestId('campaign-row').filter({ hasText: '주말 특가 3,000원' });
  await row.waitFor();
  assert.equal(posted, 1);
  assert.match(await row.textContent(), /0 \/ 30/);
  await shot(page, 'admin-campaigns');

  await row.getByTestId('open-dashboard').click();
  await page.getByTestId('kpi-remaining').filter({ hasText: /^30$/ }).waitFor();
  assert.equal(await page.getByTestId('kpi-issued').textContent(), '0');
  const campaignId = page.url().split('/campaign/')[1];

  // 40 shoppers for 30 coupons.
  const load = smallLoad(campaignId, 40);
  // The count moves while the load runs, without a reload.
  await page.waitForFunction(() => {
    const n = Number(document.querySelector('[data-testid="kpi-issued"]').textContent.replace(/,/g, ''));
    return n > 0;
  }, null, { timeout: 20_000 });
  const statuses = await load;
  assert.equal(statuses.filter((s) => s === 201).length, 30);
  assert.equal(statuses.filter((s) => s === 409).length, 10);

  await page.getByTestId('kpi-issued').filter({ hasText: /^30$/ }).waitFor();
  await page.getByTestId('kpi-remaining').filter({ hasText: /^0$/ }).waitFor();
  await page.getByTestId('dash-status').filter({ hasText: '품절' }).waitFor();
  const outcomes = page.getByTestId('outcomes');
  await outcomes.locator('tr[data-outcome="issued"] td').filter({ hasText: /^30$/ }).waitFor();
  await outcomes.locator('tr[data-outcome="sold_out"] td').filter({ hasText: /^10$/ }).waitFor();
  assert.match(await page.getByTestId('kpi-p99').textContent(), /ms$/);
  assert.ok(await page.locator('[data-testid="chart"] rect').count() > 0, 'the chart has bars');
  // Winners, in seq order, appear without a reload.
  await page.locator('[data-testid="winners"] tr[data-seq="30"]').waitFor();
  const seqs = await page.locator('[data-testid="winners"] tr').evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));
  assert.deepEqual(seqs, Array.from({ length: 30 }, (_, i) => i + 1));
  await shot(page, 'admin-dashboard');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast on the dashboard');

  // At phone width the dashboard folds: nothing scrolls the page sideways
  // (the winners table scrolls inside its own box).
  await page.setViewportSize({ width: 375, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at 375 px (overflow ${overflow}px)`);
  await shot(page, 'admin-dashboard-phone');
  await page.setViewportSize({ width: 1280, height: 900 });

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('csv').click()]);
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\n');
  assert.equal(csv[0], 'seq,coupon_id,user_id,email,issued_at,status,used_at,order_id');
  assert.equal(csv.length, 31);
  assert.deepEqual(csv.slice(1).map((l) => Number(l.split(',')[0])), seqs);
  assert.ok(csv.slice(1).every((l) => l.split(',')[3].startsWith('load')), 'each winner with their email');

  await page.getByTestId('dash-pause').click();
  await page.getByTestId('dash-status').filter({ hasText: '일시 중지' }).waitFor();
  const view = await apiCall(env.server.base, 'GET', `/api/v1/campaigns/${campaignId}`);
  assert.equal(view.body.paused, true);

  // English labels on the dashboard too.
  await page.getByTestId('lang').click();
  await page.getByTestId('dash-status').filter({ hasText: 'Paused' }).waitFor();
  await page.locator('[data-testid="winners"] tr[data-seq="1"]').filter({ hasText: 'Available' }).waitFor();
  assert.equal(await page.locator('[data-testid="winners"] tr').count(), 30, 'the rows were redrawn, not added');
  await shot(page, 'admin-dashboard-en');
  assert.deepEqual(page.errors, []);
});

test('an admin creates a service key, sees it once, and deletes it: the key is refused at once', async () => {
  const page = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });
  await page.goto(env.server.base + '/admin#/keys');
  await page.locator('#email').fill(ADMIN.email);
  await page.locator('#password').fill(ADMIN.password);
  await page.locator('#auth-form button[type="submit"]').click();
  await page.getByTestId('key-rows').filter({ hasText: '서비스 키가 없습니다' }).waitFor();

  // Nothing is sent for an empty name.
  await page.getByTestId('key-create').click();
  await page.locator('#key-error').filter({ hasText: '1~100자' }).waitFor();

  await page.getByTestId('key-name').fill('주문 서비스');
  await page.getByTestId('key-create').click();
  await page.getByTestId('key-once').waitFor();
  const key = (await page.getByTestId('key-value').textContent()).trim();
  assert.match(key, /^fck_[0-9a-f]{64}$/);
  await page.locator('[data-testid="key-rows"] tr').filter({ hasText: '주문 서비스' }).waitFor();
  await shot(page, 'admin-service-keys');

  // The key works for a shop action (past authentication: no such coupon).
  const probe = () => apiCall(env.server.base, 'POST', '/api/v1/coupons/01930000-0000-7000-8000-000000000000/cancel-use', key, { order_id: 'o-1' });
  assert.equal((await probe()).status, 404);
  // Listed afterwards without the key: shown once.
  await page.reload();
  await page.locator('[data-testid="key-rows"] tr').filter({ hasText: '주문 서비스' }).waitFor();
  assert.equal(await page.getByTestId('key-once').isHidden(), true);
  assert.equal((await page.content()).includes(key), false, 'the key is not on the page any more');

  page.once('dialog', (d) => d.accept());
  await page.getByTestId('key-delete').click();
  await page.getByTestId('key-rows').filter({ hasText: '서비스 키가 없습니다' }).waitFor();
  assert.equal((await probe()).status, 401, 'a deleted key is refused');
  assert.deepEqual(page.errors, []);
});
