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
