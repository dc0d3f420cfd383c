// The admin console: log in, create a campaign through the form (after the
// form refuses a bad one, sending nothing), open its dashboard and watch the
// numbers move while a small load claims, export the winners, pause. Codes:
// a unique-codes campaign made through the form, a code job followed to the
// end, its CSV; a shopper redeems one of its codes in the wallet's code box.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ADMIN, adminToken, apiCall, contrastFailures, createCampaign, newPage, shot, serverAndBrowser } from './harness.mjs';

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

test('an admin makes a unique-codes campaign and 30 codes in the console; a shopper redeems one, and once is all', async () => {
  const base = env.server.base;
  const token = await adminToken(base);
  // Made through the API: a shared code the form will find taken, and a
  // campaign that issues by itself on sign-up.
  await createCampaign(base, token, { name: '공유 코드 1,000원', total_quantity: 10, issuance: 'shared_code', code: 'E2E-SHARED' });
  await createCampaign(base, token, { name: '가입 축하 3,000원', total_quantity: 10, trigger: 'signup' });

  const page = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });
  await page.goto(base + '/admin');
  await page.locator('#email').fill(ADMIN.email);
  await page.locator('#password').fill(ADMIN.password);
  await page.locator('#auth-form button[type="submit"]').click();
  await page.getByTestId('who').filter({ hasText: ADMIN.email }).waitFor();

  // The shared code's box and the trigger follow the issuance.
  await page.getByTestId('new-campaign').click();
  const form = page.getByTestId('campaign-form');
  await form.locator('#f-trigger').waitFor();
  assert.equal(await form.locator('#f-code').isVisible(), false, 'no shared code for the claim button');
  await form.locator('#f-trigger').selectOption('custom');
  await form.locator('#f-trigger-name').waitFor();
  await form.locator('#f-issuance').selectOption('shared_code');
  await form.locator('#f-code').waitFor();
  assert.equal(await form.locator('#f-trigger').isVisible(), false, 'a trigger only with the claim button');
  assert.equal(await form.locator('#f-trigger-name').isVisible(), false);

  // Checked here first (nothing sent), then by the API, said at the field.
  let posted = 0;
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith('/api/v1/campaigns')) posted++;
  });
  const now = Date.now();
  await form.locator('#f-name').fill('코드 전용 2,000원');
  await form.locator('#f-amount').fill('2000');
  await form.locator('#f-total').fill('100');
  await form.locator('#f-starts').fill(localInput(now - 60_000));
  await form.locator('#f-ends').fill(localInput(now + 3_600_000));
  await form.locator('#f-code').fill('AB');
  await page.getByTestId('save-campaign').click();
  await form.locator('#f-code-error').filter({ hasText: '4~32자' }).waitFor();
  assert.equal(posted, 0, 'a bad shared code sends nothing');
  await form.locator('#f-code').fill('e2e-shared');
  await page.getByTestId('save-campaign').click();
  await form.locator('#f-code-error').filter({ hasText: '이미 쓰는 코드' }).waitFor();
  assert.equal(posted, 1);
  assert.equal(await form.locator('#f-code').getAttribute('aria-invalid'), 'true');
  await shot(page, 'admin-code-taken');

  // A unique-codes campaign.
  await form.locator('#f-issuance').selectOption('codes');
  await page.getByTestId('save-campaign').click();
  const row = page.getByTestId('campaign-row').filter({ hasText: '코드 전용 2,000원' });
  await row.waitFor();
  assert.equal(posted, 2);
  assert.equal(await row.getByTestId('issuance').textContent(), '고유 코드');
  await page.getByTestId('campaign-row').filter({ hasText: '공유 코드 1,000원' }).getByTestId('issuance').filter({ hasText: 'E2E-SHARED' }).waitFor();
  await page.getByTestId('campaign-row').filter({ hasText: '가입 축하' }).getByTestId('issuance').filter({ hasText: '회원가입 시' }).waitFor();

  await row.getByTestId('open-codes').click();
  const panel = page.getByTestId('codes-panel');
  await panel.waitFor();
  const campaignId = page.url().match(/\/campaign\/([\w-]+)\/codes$/)[1];
  // Too few random symbols: refused here, nothing sent.
  let jobs = 0;
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith(`/campaigns/${campaignId}/codes`)) jobs++;
  });
  await panel.getByTestId('codes-count').fill('30');
  await panel.getByTestId('codes-pattern').fill('FC-####-####');
  await panel.getByTestId('codes-generate').click();
  await panel.locator('#codes-pattern-error').filter({ hasText: '10개 이상' }).waitFor();
  // More codes than coupons: the API's answer, at the field.
  await panel.getByTestId('codes-pattern').fill('fc-#####-#####');
  await panel.getByTestId('codes-count').fill('101');
  await panel.getByTestId('codes-generate').click();
  await panel.locator('#codes-count-error').filter({ hasText: '100 이하' }).waitFor();
  assert.equal(jobs, 0, 'nothing sent while the form is wrong');

  await panel.getByTestId('codes-count').fill('30');
  await panel.getByTestId('codes-generate').click();
  // The bar runs to the end, polled; done / total said in words too.
  await panel.locator('[data-testid="codes-job"][data-status="done"]').waitFor({ timeout: 30_000 });
  assert.equal(jobs, 1);
  assert.equal(await panel.getByTestId('codes-numbers').textContent(), '30 / 30개');
  assert.equal(await panel.getByTestId('codes-status').textContent(), '생성 완료');
  assert.equal(await panel.getByTestId('codes-progress').evaluate((p) => p.value === p.max && p.max === 30), true);
  await shot(page, 'admin-codes-done');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast in the codes panel');

  const [download] = await Promise.all([page.waitForEvent('download'), panel.getByTestId('codes-csv').click()]);
  assert.equal(download.suggestedFilename(), `codes-${campaignId}.csv`);
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\n');
  assert.equal(csv.length, 31, 'a header and 30 codes');
  assert.equal(csv[0], 'code,state,coupon_id,user_id,redeemed_at');
  const codes = csv.slice(1).map((l) => l.split(','));
  for (const [code, state] of codes) {
    assert.match(code, /^FC-[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{5}-[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{5}$/);
    assert.equal(state, 'unused');
  }
  assert.equal(new Set(codes.map(([c]) => c)).size, 30, 'no code twice');
  const code = codes[0][0];

  // The job is in the record: the dashboard shows it again after a reload
  // (from GET /admin/campaigns/{id}/jobs, so in any browser).
  await page.reload();
  await page.locator('[data-testid="codes-job"][data-status="done"]').waitFor();

  // A shopper: no claim button on a drop that codes or a trigger issue.
  const shop = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });
  await shop.goto(base + '/');
  const email = `coder-${Date.now()}@example.com`;
  await shop.locator('#email').fill(email);
  await shop.locator('#password').fill('password-123');
  await shop.locator('button[data-action="signup"]').click();
  await shop.getByTestId('who').filter({ hasText: email }).waitFor();
  const card = shop.locator(`[data-campaign="${campaignId}"]`);
  await card.getByTestId('by-code').filter({ hasText: '코드로 받기' }).waitFor();
  assert.equal(await card.getByTestId('claim').isVisible(), false, 'no claim button for a codes drop');
  const auto = shop.getByTestId('drop').filter({ hasText: '가입 축하' });
  await auto.getByTestId('auto').filter({ hasText: '자동 지급' }).waitFor();
  assert.match(await auto.getByTestId('how').textContent(), /회원가입하면/);
  assert.equal(await auto.getByTestId('claim').isVisible(), false, 'no claim button for a triggered drop');
  await shot(shop, 'shop-code-drops');
  assert.deepEqual(await contrastFailures(shop), [], 'readable contrast on drops without the button');

  // To the wallet's code box; any letter case will do.
  await card.getByTestId('by-code').click();
  const box = shop.getByTestId('redeem-form');
  await box.waitFor();
  await shop.waitForFunction(() => document.activeElement?.id === 'redeem-code');
  await box.getByTestId('redeem-code').fill(` ${code.toLowerCase()} `);
  await box.getByTestId('redeem-submit').click();
  await shop.getByTestId('toast').filter({ hasText: '코드가 등록되었습니다' }).first().waitFor();
  await box.getByTestId('redeem-result').filter({ hasText: '코드 전용 2,000원' }).waitFor();
  const coupon = shop.getByTestId('coupon').filter({ hasText: '코드 전용 2,000원' });
  await coupon.getByTestId('coupon-status').filter({ hasText: '사용 가능' }).waitFor();
  assert.equal(await box.getByTestId('redeem-code').inputValue(), '', 'the box is cleared for the next code');
  await shot(shop, 'shop-code-redeemed');
  assert.deepEqual(await contrastFailures(shop), [], 'readable contrast in the code box');

  // Once is all; an unknown code is told apart.
  await box.getByTestId('redeem-code').fill(code);
  await box.getByTestId('redeem-submit').click();
  await box.getByTestId('redeem-result').filter({ hasText: '이미 사용된 코드입니다' }).waitFor();
  assert.equal(await box.getByTestId('redeem-code').getAttribute('aria-invalid'), 'true');
  await box.getByTestId('redeem-code').fill('FC-22222-22222');
  await box.getByTestId('redeem-submit').click();
  await box.getByTestId('redeem-result').filter({ hasText: '없는 코드입니다' }).waitFor();
  assert.equal(await shop.getByTestId('coupon').filter({ hasText: '코드 전용 2,000원' }).count(), 1, 'still one coupon');

  // The shared code works in the same box.
  await box.getByTestId('redeem-code').fill('e2e-shared');
  await box.getByTestId('redeem-submit').click();
  await shop.getByTestId('coupon').filter({ hasText: '공유 코드 1,000원' }).waitFor();

  // The export now says which code went to whom.
  const after = await fetch(`${base}/api/v1/admin/campaigns/${campaignId}/codes.csv`, { headers: { authorization: `Bearer ${token}` } });
  const line = (await after.text()).split('\n').find((l) => l.startsWith(`${code},`));
  const shopperId = await shop.evaluate(() => JSON.parse(localStorage.getItem('fc.session.shop')).userId);
  assert.match(line, new RegExp(`^${code},redeemed,[\\w-]+,${shopperId},\\S+$`));

  // Guessing runs out: the box says how long to wait, and waits.
  const shopperToken = await shop.evaluate(() => JSON.parse(localStorage.getItem('fc.session.shop')).token);
  let limited = false;
  for (let i = 0; i < 30 && !limited; i++) {
    const r = await apiCall(base, 'POST', '/api/v1/codes/redeem', shopperToken, { code: `FC-NOPE${i}-22222` });
    limited = r.status === 429;
  }
  assert.ok(limited, 'failed guesses are limited');
  await box.getByTestId('redeem-code').fill('FC-33333-33333');
  await box.getByTestId('redeem-submit').click();
  await box.getByTestId('redeem-result').filter({ hasText: /\d+초 후에 다시 시도하세요/ }).waitFor();
  assert.equal(await box.getByTestId('redeem-submit').isDisabled(), true, 'no retry before the wait is over');

  assert.deepEqual(page.errors, []);
  assert.deepEqual(shop.errors, []);
});

test('an admin finds a shopper by e-mail, adjusts their points once (a lost answer retried, a double click), and is told when taking more than the balance', async () => {
  const base = env.server.base;
  const token = await adminToken(base);
  const email = `points-${Date.now()}@example.com`;
  const signup = await apiCall(base, 'POST', '/api/v1/auth/signup', null, { email, password: 'password-123' });
  assert.equal(signup.status, 201);
  const userId = signup.body.user_id;
  const earned = await apiCall(base, 'POST', `/api/v1/users/${userId}/points/earn`, token,
    { amount: 3800, reference: 'welcome', reason: '가입 축하 적립' });
  assert.equal(earned.status, 201);

  const page = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });
  await page.goto(base + '/admin#/points');
  await page.locator('#email').fill(ADMIN.email);
  await page.locator('#password').fill(ADMIN.password);
  await page.locator('#auth-form button[type="submit"]').click();
  const lookupError = page.getByTestId('points-lookup-error');

  // An address nobody has: said so, and nobody's points shown.
  await page.getByTestId('points-email').fill('nobody@example.com');
  await page.getByTestId('points-find').click();
  await lookupError.filter({ hasText: 'nobody@example.com 계정이 없습니다' }).waitFor();
  assert.equal(await page.getByTestId('points-member').isHidden(), true);

  await page.getByTestId('points-email').fill(email);
  await page.getByTestId('points-find').click();
  await page.getByTestId('points-who').filter({ hasText: email }).waitFor();
  assert.equal(await lookupError.textContent(), '');
  assert.equal(await page.getByTestId('points-balance').textContent(), '3,800 P');
  assert.equal(await page.getByTestId('points-held').textContent(), '0 P');
  assert.match(await page.getByTestId('points-expiry').first().textContent(), /^3,800 P \d{4}-\d{2}-\d{2} 소멸 예정$/);
  const rows = page.getByTestId('points-row');
  assert.equal(await rows.count(), 1);
  assert.equal(await rows.first().getAttribute('data-kind'), 'earn');

  // Checked here first: nothing is sent for a zero or a missing reason.
  const sent = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith(`/users/${userId}/points/adjust`)) sent.push(r.postDataJSON());
  });
  const form = page.getByTestId('adjust-form');
  await form.getByTestId('adjust-amount').fill('0');
  await form.getByTestId('adjust-submit').click();
  await form.locator('#adjust-amount-error').filter({ hasText: '0이 아닌 정수' }).waitFor();
  assert.equal(await form.locator('#adjust-reason-error').textContent(), '필수 항목입니다.');
  assert.equal(await form.getByTestId('adjust-amount').getAttribute('aria-invalid'), 'true');
  assert.equal(sent.length, 0, 'an invalid adjustment sends nothing');

  // The first answer is lost after the server applied it: the form tries
  // again with the same reference, and the server answers the first entry.
  // The double click's second click finds the button disabled.
  let lost = false;
  await page.route(`**/users/${userId}/points/adjust`, async (route) => {
    if (lost) return route.continue();
    lost = true;
    await route.fetch();
    return route.abort('connectionreset');
  });
  await form.getByTestId('adjust-amount').fill('-100');
  await form.getByTestId('adjust-reason').fill('고객 문의: 중복 적립 정정');
  await form.getByTestId('adjust-submit').dblclick();
  await form.getByTestId('adjust-result').filter({ hasText: '-100 P 조정했습니다. 잔액 3,700 P' }).waitFor();
  await page.getByTestId('points-balance').filter({ hasText: /^3,700 P$/ }).waitFor();
  await page.unroute(`**/users/${userId}/points/adjust`);
  assert.equal(sent.length, 2, 'the lost try and its retry, nothing for the second click');
  assert.match(sent[0].reference, /^adj-\d+-[0-9a-f]{8}$/);
  assert.equal(sent[1].reference, sent[0].reference, 'the retry reuses the reference');
  assert.deepEqual({ ...sent[0], reference: undefined }, { amount: -100, reason: '고객 문의: 중복 적립 정정', reference: undefined });
  const history = await apiCall(base, 'GET', `/api/v1/users/${userId}/points/history`, token);
  assert.deepEqual(history.body.entries.map((e) => [e.kind, e.amount, e.balance_after]), [['adjust', -100, 3700], ['earn', 3800, 3800]],
    'adjusted once');
  await rows.nth(1).waitFor();
  const adjusted = rows.first();
  assert.equal(await adjusted.getAttribute('data-kind'), 'adjust');
  assert.equal(await adjusted.locator('.badge').textContent(), '관리자 조정');
  assert.equal(await adjusted.locator('td.amount').textContent(), '-100 P');
  assert.match(await adjusted.textContent(), /고객 문의: 중복 적립 정정/);
  assert.equal(await form.getByTestId('adjust-amount').inputValue(), '', 'the form is cleared for the next one');

  // Taking more than there is: refused by the server, said in words; nothing changes.
  await form.getByTestId('adjust-amount').fill('-5000');
  await form.getByTestId('adjust-reason').fill('잘못된 차감 시도');
  await form.getByTestId('adjust-submit').click();
  await form.getByTestId('adjust-error').filter({ hasText: '잔액(3,700 P)보다 많이 차감할 수 없습니다' }).waitFor();
  assert.equal(sent.length, 3);
  assert.notEqual(sent[2].reference, sent[0].reference, 'a new adjustment, a new reference');
  assert.equal(await page.getByTestId('points-balance').textContent(), '3,700 P');
  assert.equal(await rows.count(), 2);
  assert.equal(await form.getByTestId('adjust-amount').inputValue(), '-5000', 'the refused amount stays to correct');

  // Adding, for a few days: the new points lead the expiries, marked as soon.
  await form.getByTestId('adjust-amount').fill('50');
  await form.getByTestId('adjust-valid-days').fill('5');
  await form.getByTestId('adjust-reason').fill('배송 지연 보상');
  await form.getByTestId('adjust-submit').click();
  await page.getByTestId('points-balance').filter({ hasText: /^3,750 P$/ }).waitFor();
  assert.equal(await form.getByTestId('adjust-error').textContent(), '');
  assert.equal(sent[3].valid_days, 5);
  const first = page.getByTestId('points-expiry').first();
  assert.match(await first.textContent(), /^50 P \d{4}-\d{2}-\d{2} 소멸 예정 7일 이내$/);
  assert.equal(await first.getAttribute('class'), 'soon');
  assert.equal(await rows.first().locator('td.amount').textContent(), '+50 P');
  await shot(page, 'admin-points');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast in the points view');

  // English labels here too.
  await page.getByTestId('lang').click();
  await rows.first().locator('.badge').filter({ hasText: 'Adjusted' }).waitFor();
  await form.getByTestId('adjust-submit').filter({ hasText: 'Adjust' }).waitFor();
  assert.deepEqual(page.errors, []);
});
