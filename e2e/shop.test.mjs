// A drop from the shoppers' side, in two browsers: the first shopper signs
// up, waits out the countdown, claims (the button is disabled while the claim
// is in flight), hears the toast, finds the coupon in the wallet, previews
// and spends it; the second watches the stock run out live.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adminToken, apiCall, contrastFailures, createCampaign, newPage, shot, serverAndBrowser } from './harness.mjs';

const env = serverAndBrowser();

async function signUp(page, email) {
  await page.goto(env.server.base + '/');
  await page.locator('#email').fill(email);
  await page.locator('#password').fill('password-123');
  await page.locator('button[data-action="signup"]').click();
  await page.getByTestId('who').filter({ hasText: email }).waitFor();
}

test('a shopper claims at the opening, gets the toast and the coupon, and spends it; another sees it sell out live', async () => {
  const first = await newPage(env.browser);
  const second = await newPage(env.browser);
  await signUp(first, `first-${Date.now()}@example.com`);
  await signUp(second, `second-${Date.now()}@example.com`);

  // Opens in 8 s; both pages reload (still signed in) to list it.
  const admin = await adminToken(env.server.base);
  const opensAt = Date.now() + 8_000;
  const campaign = await createCampaign(env.server.base, admin, {
    name: '오픈 기념 5,000원 할인',
    total_quantity: 1,
    issue_starts_at: new Date(opensAt).toISOString(),
  });
  await Promise.all([first.reload(), second.reload()]);

  const card = first.locator(`[data-campaign="${campaign.id}"]`);
  const claim = card.getByTestId('claim');
  // Before the opening: a countdown and a disabled button.
  await card.getByTestId('countdown').filter({ hasText: '오픈까지' }).waitFor();
  assert.equal(await claim.isDisabled(), true, 'claim is disabled before the opening');
  assert.equal(await card.getByTestId('drop-status').textContent(), '오픈 예정');
  assert.match(await card.getByTestId('stock').textContent(), /남은 수량 1 \/ 1/);
  await shot(first, 'shop-countdown');

  // The second shopper asks to be told when it opens.
  const other = second.locator(`[data-campaign="${campaign.id}"]`);
  await other.getByTestId('notify').click();
  await other.locator('[data-testid="notify"][aria-pressed="true"]').waitFor();
  const secondToken = await second.evaluate(() => JSON.parse(localStorage.getItem('fc.session.shop')).token);
  const sub = await apiCall(env.server.base, 'GET', `/api/v1/campaigns/${campaign.id}/subscription`, secondToken);
  assert.equal(sub.body.subscribed, true);

  // The countdown ends and the button comes alive by itself.
  await claim.waitFor({ state: 'visible' });
  await first.waitForFunction((id) => {
    const b = document.querySelector(`[data-campaign="${id}"] [data-testid="claim"]`);
    return b && !b.disabled;
  }, campaign.id, { timeout: 20_000 });
  assert.ok(Date.now() >= opensAt - 1_000, 'the button opened with the drop, not before');

  // Hold the claim's answer until the in-flight state has been checked.
  let release;
  const held = new Promise((r) => (release = r));
  await first.route('**/issue', async (route) => {
    await held;
    await route.continue();
  });
  await claim.focus();
  await first.keyboard.press('Enter');
  await card.getByTestId('claim').filter({ hasText: '발급 중…' }).waitFor();
  assert.equal(await claim.isDisabled(), true, 'disabled while the claim is in flight');
  release();

  await card.getByTestId('claim-result').filter({ hasText: '발급 완료' }).waitFor();
  assert.match(await card.getByTestId('claim-result').textContent(), /선착순 1번째/);
  // The socket's toast.
  await first.getByTestId('toast').filter({ hasText: '쿠폰이 발급되었습니다' }).first().waitFor();
  assert.equal(await claim.isDisabled(), true, 'one per person: no second claim');
  // The live stream brings the claimer's own card to sold out as well.
  await card.getByTestId('drop-status').filter({ hasText: '품절' }).waitFor();
  await shot(first, 'shop-claimed');
  assert.deepEqual(await contrastFailures(first), [], 'readable contrast on the drop page');

  // The second shopper saw it sell out without reloading.
  await other.getByTestId('drop-status').filter({ hasText: '품절' }).waitFor();
  assert.match(await other.getByTestId('stock').textContent(), /남은 수량 0 \/ 1/);
  assert.equal(await other.getByTestId('claim').isDisabled(), true);
  await shot(second, 'shop-sold-out');
  // As a subscriber, they were also told it sold out (pushed, and kept in
  // the inbox). (Not "opened": the drop sold out before the scheduler's next
  // pass, and nobody is told to hurry for a drop that is gone.)
  await second.locator('a[data-tab="inbox"]').click();
  await second.getByTestId('notification').filter({ hasText: '품절되었습니다' }).waitFor();

  // The wallet, the preview and the spend.
  await first.locator('a[data-tab="wallet"]').click();
  const coupon = first.getByTestId('coupon').first();
  await coupon.getByTestId('coupon-status').filter({ hasText: '사용 가능' }).waitFor();
  await coupon.getByTestId('order-amount').fill('29000');
  await coupon.getByTestId('preview').click();
  await coupon.getByTestId('checkout-result').filter({ hasText: '최소 주문 금액' }).waitFor();
  await coupon.getByTestId('order-amount').fill('42000');
  await coupon.getByTestId('preview').click();
  await coupon.getByTestId('checkout-result').filter({ hasText: '할인 5,000원 → 결제 금액 37,000원' }).waitFor();
  await shot(first, 'shop-wallet-preview');
  assert.deepEqual(await contrastFailures(first), [], 'readable contrast in the wallet');
  await coupon.getByTestId('pay').click();
  await first.getByTestId('toast').filter({ hasText: '결제 완료' }).first().waitFor();
  await first.getByTestId('coupon-status').filter({ hasText: '사용 완료' }).waitFor();
  // Its use was also pushed, and everything is in the inbox.
  await first.locator('a[data-tab="inbox"]').click();
  await first.getByTestId('notification').filter({ hasText: '쿠폰이 발급되었습니다' }).waitFor();
  await first.getByTestId('notification').filter({ hasText: '쿠폰을 사용했습니다' }).waitFor();

  // English, on request.
  await first.getByTestId('lang').click();
  await first.locator('a[data-tab="drops"]').filter({ hasText: 'Drops' }).waitFor();
  assert.equal(await first.locator('html').getAttribute('lang'), 'en');
  await first.locator('a[data-tab="drops"]').click();
  await first.locator(`[data-campaign="${campaign.id}"] [data-testid="drop-status"]`).filter({ hasText: 'Sold out' }).waitFor();

  assert.deepEqual(first.errors, []);
  assert.deepEqual(second.errors, []);
});

/** A moment's day in this process's zone (the browser's too): `2026-12-12`. */
function localDay(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

test('a shopper sees their points: the balance, what expires soon, the history, live and page by page', async () => {
  const base = env.server.base;
  const admin = await adminToken(base);
  const page = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });
  const email = `points-${Date.now()}@example.com`;
  await signUp(page, email);
  const userId = await page.evaluate(() => JSON.parse(localStorage.getItem('fc.session.shop')).userId);
  const earn = (body) => apiCall(base, 'POST', `/api/v1/users/${userId}/points/earn`, admin, body);

  // Nothing yet.
  await page.locator('a[data-tab="wallet"]').click();
  const panel = page.getByTestId('points');
  await panel.getByTestId('points-balance').filter({ hasText: /^0 P$/ }).waitFor();
  await panel.getByTestId('points-history').filter({ hasText: '적립금 내역이 없습니다' }).waitFor();
  assert.equal(await panel.getByTestId('points-expiry').count(), 0);

  // The shop gives points while the wallet is open: it follows without a reload.
  await page.locator('#live-dot.on').waitFor();
  const soon = await earn({ amount: 30, reference: 'review-1', reason: '리뷰 작성', valid_days: 3 });
  assert.equal(soon.status, 201);
  const later = await earn({ amount: 3770, reference: 'order-1', reason: '구매 적립' });
  assert.equal(later.status, 201);
  await panel.getByTestId('points-balance').filter({ hasText: /^3,800 P$/ }).waitFor();
  await page.getByTestId('toast').filter({ hasText: '적립금이 적립되었습니다: 3,770 P · 구매 적립' }).first().waitFor();
  // The server warns of the 30 P within a second (they expire within the week).
  await page.getByTestId('toast').filter({ hasText: `곧 소멸되는 적립금이 있습니다: 30 P (${localDay(soon.body.expires_at)})` }).first().waitFor();
  assert.equal(await panel.getByTestId('points-held').isHidden(), true, 'nothing held, no held line');

  // Expiries, soonest first; the one within a week is marked.
  const expiries = panel.getByTestId('points-expiry');
  await expiries.nth(1).waitFor();
  assert.equal(await expiries.count(), 2);
  assert.match(await expiries.nth(0).textContent(), new RegExp(`^30 P ${localDay(soon.body.expires_at)} 소멸 예정 7일 이내$`));
  assert.equal(await expiries.nth(0).getAttribute('class'), 'soon');
  assert.equal(await expiries.nth(1).textContent(), `3,770 P ${localDay(later.body.expires_at)} 소멸 예정`);
  assert.equal(await expiries.nth(1).getAttribute('class'), null);

  // The history, newest first, with the kind in words and signed amounts.
  const entries = panel.getByTestId('points-entry');
  await panel.locator('[data-testid="points-entry"][data-kind="earn"]').nth(1).waitFor();
  assert.equal(await entries.count(), 2);
  assert.equal(await entries.nth(0).locator('.badge').textContent(), '적립');
  assert.equal(await entries.nth(0).locator('.amount').textContent(), '+3,770 P');
  assert.match(await entries.nth(0).textContent(), /구매 적립/);
  assert.equal(await entries.nth(1).locator('.amount').textContent(), '+30 P');
  assert.match(await entries.nth(1).textContent(), /리뷰 작성/);
  await shot(page, 'shop-points');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast in the points panel');

  // 20 small spends, so the history runs past one page; then points held for
  // an order (no event: seen on the next load): out of the balance, said
  // apart, the hold's server-written note giving way to the order. Both take
  // the soonest points first: all of the 30 P, then 490 of the 3,770.
  const spend = (i) => apiCall(base, 'POST', `/api/v1/users/${userId}/points/spend`, admin,
    { amount: 1, reference: `shop-${i}`, reason: `포인트 상점 ${i + 1}` });
  for (let i = 0; i < 20; i++) assert.equal((await spend(i)).status, 201);
  const hold = await apiCall(base, 'POST', `/api/v1/users/${userId}/points/holds`, admin, { order_id: 'ORD-PTS-1', amount: 500 });
  assert.equal(hold.status, 201);
  await page.reload();
  await panel.getByTestId('points-balance').filter({ hasText: /^3,280 P$/ }).waitFor();
  assert.equal(await panel.getByTestId('points-held').textContent(), '주문 결제 대기 중 500 P');
  assert.equal(await expiries.count(), 1, 'the 30 P are gone from the expiries');
  assert.equal(await expiries.nth(0).textContent(), `3,280 P ${localDay(later.body.expires_at)} 소멸 예정`);
  const held = entries.nth(0);
  assert.equal(await held.getAttribute('data-kind'), 'hold');
  assert.equal(await held.locator('.badge').textContent(), '결제 대기');
  assert.equal(await held.locator('.amount').textContent(), '-500 P');
  assert.match(await held.textContent(), /주문 ORD-PTS-1/);
  assert.doesNotMatch(await held.textContent(), /held for an order/);
  assert.equal(await entries.count(), 20, 'one page');
  assert.equal(await entries.nth(1).locator('.amount').textContent(), '-1 P');
  assert.equal(await entries.nth(1).locator('.badge').textContent(), '사용');
  await panel.getByTestId('points-more').click();
  await entries.nth(22).waitFor();
  assert.equal(await entries.count(), 23, 'all of it, each once');
  assert.match(await entries.nth(22).textContent(), /리뷰 작성/);
  await panel.getByTestId('points-more').waitFor({ state: 'hidden' });

  // Both kinds of points news are in the inbox in words (the 30 P expire within
  // the week the server warns ahead).
  await page.locator('a[data-tab="inbox"]').click();
  await page.getByTestId('notification').filter({ hasText: '적립금이 적립되었습니다: 30 P · 리뷰 작성' }).waitFor();
  await page.getByTestId('notification').filter({ hasText: `곧 소멸되는 적립금이 있습니다: 30 P (${localDay(soon.body.expires_at)})` }).waitFor();

  // English, on request.
  await page.getByTestId('lang').click();
  await page.locator('a[data-tab="wallet"]').click();
  await panel.getByTestId('points-held').filter({ hasText: '500 P held for orders in progress' }).waitFor();
  await panel.getByTestId('points-expiry').first().filter({ hasText: `3,280 P expire on ${localDay(later.body.expires_at)}` }).waitFor();
  await panel.locator('[data-testid="points-entry"][data-kind="hold"] .badge').filter({ hasText: 'Held for order' }).waitFor();
  assert.deepEqual(page.errors, []);
});

test('the drop page fits a phone and works from the keyboard', async () => {
  const admin = await adminToken(env.server.base);
  await createCampaign(env.server.base, admin, { name: '모바일 전용 10% 할인', total_quantity: 10,
    discount: { type: 'percent', percent: 10, max_amount: 3000 } });
  const page = await newPage(env.browser, { viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });
  await page.goto(env.server.base + '/');
  await page.getByTestId('drop').first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at 375 px (overflow ${overflow}px)`);
  await shot(page, 'shop-phone');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast at phone width');

  // Tab order reaches the sign-up form fields and buttons.
  const reached = new Set();
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab');
    reached.add(await page.evaluate(() => document.activeElement?.id || document.activeElement?.dataset.action || ''));
  }
  for (const want of ['email', 'password', 'login', 'signup']) assert.ok(reached.has(want), `Tab reaches ${want}: ${[...reached]}`);
  assert.deepEqual(page.errors, []);
});

test('the contrast check itself catches grey on white and passes dark text', async () => {
  const page = await newPage(env.browser);
  await page.setContent('<body style="background:#fff"><p style="color:#aaa">too light</p><p style="color:#333">fine</p>'
    + '<p style="color:#777;font-size:30px">large enough at 4.48:1</p></body>');
  const failures = await contrastFailures(page);
  assert.equal(failures.length, 1, failures.join('\n'));
  assert.match(failures[0], /too light/);
});
