// Time sales (타임세일), on a server with test payments on. A shopper waits
// out the countdown, orders with a coupon and points (the preview says what
// they will pay; a lost answer is retried with the same Idempotency-Key and
// orders once), pays, and finds the order paid and the coupon used; another
// shopper watches the stock move and is told in words that it sold out. A
// page follows a sale's stock, status and end over its live stream alone. An
// admin creates a sale through the form (after it refuses a bad one),
// watches its orders by status move, is told why the stock cannot go below
// what is ordered, and pauses it. A shopper asks to be told when a sale
// opens, and the inbox says so in words.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ADMIN, adminToken, apiCall, contrastFailures, createCampaign, newPage, shot, serverAndBrowser } from './harness.mjs';

const env = serverAndBrowser({ FLASHCOUPON_TEST_PAYMENTS: 'true' });

async function signUp(page, email) {
  await page.goto(env.server.base + '/');
  await page.locator('#email').fill(email);
  await page.locator('#password').fill('password-123');
  await page.locator('button[data-action="signup"]').click();
  await page.getByTestId('who').filter({ hasText: email }).waitFor();
}

function session(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem('fc.session.shop')));
}

async function createSale(base, token, overrides = {}) {
  const now = Date.now();
  const body = {
    name: '오늘만 특가',
    product: { sku: 'SKU-1', name: '무선 이어폰', list_price: 59000 },
    sale_price: 39000,
    total_quantity: 2,
    per_user_limit: 1,
    starts_at: new Date(now - 60_000).toISOString(),
    ends_at: new Date(now + 3_600_000).toISOString(),
    ...overrides,
  };
  const r = await apiCall(base, 'POST', '/api/v1/sales', token, body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

/** `count` shoppers made by the admin in one call, with their tokens. */
async function shoppers(base, token, prefix, count) {
  const r = await apiCall(base, 'POST', '/api/v1/admin/users/bulk', token, { count, email_prefix: prefix, password: 'password-123' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.users;
}

/** `datetime-local` text for a moment, in the browser's (and this process's) zone. */
function localInput(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

test('a shopper orders at the opening with a coupon and points, pays, and sees it paid; another is told it sold out', async () => {
  const base = env.server.base;
  const admin = await adminToken(base);
  const first = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });
  const second = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });
  await signUp(first, `buyer-${Date.now()}@example.com`);
  await signUp(second, `late-${Date.now()}@example.com`);
  const buyer = await session(first);

  // The buyer holds two coupons: 3,000 off (usable), and 10% off orders of
  // 100,000+ (not on a 39,000 unit); and 5,000 points.
  const fixed = await createCampaign(base, admin, { name: '타임세일 3,000원 쿠폰', min_order_amount: 0, total_quantity: 10,
    discount: { type: 'fixed', amount: 3000 } });
  const big = await createCampaign(base, admin, { name: '10만원 이상 10% 쿠폰', total_quantity: 10, min_order_amount: 100000,
    discount: { type: 'percent', percent: 10, max_amount: 5000 } });
  const fixedCoupon = await apiCall(base, 'POST', `/api/v1/campaigns/${fixed.id}/issue`, buyer.token);
  assert.equal(fixedCoupon.status, 201);
  assert.equal((await apiCall(base, 'POST', `/api/v1/campaigns/${big.id}/issue`, buyer.token)).status, 201);
  const earned = await apiCall(base, 'POST', `/api/v1/users/${buyer.userId}/points/earn`, admin,
    { amount: 5000, reference: 'welcome', reason: '가입 축하' });
  assert.equal(earned.status, 201);

  // Two units, opening in 6 s.
  const opensAt = Date.now() + 6_000;
  const sale = await createSale(base, admin, { starts_at: new Date(opensAt).toISOString() });
  await first.locator('a[data-tab="sales"]').click();
  await second.locator('a[data-tab="sales"]').click();

  const card = first.locator(`[data-sale="${sale.id}"]`);
  await card.getByTestId('sale-countdown').filter({ hasText: '판매 시작까지' }).waitFor();
  assert.equal(await card.getByTestId('sale-status').textContent(), '오픈 예정');
  assert.equal(await card.locator('h2').textContent(), '오늘만 특가');
  assert.equal(await card.getByTestId('sale-product').textContent(), '무선 이어폰');
  assert.equal(await card.getByTestId('list-price').textContent(), '59,000원');
  assert.equal(await card.locator('del[data-testid="list-price"]').count(), 1, 'the list price is struck through');
  assert.equal(await card.getByTestId('sale-price').textContent(), '39,000원');
  assert.equal(await card.getByTestId('sale-off').textContent(), '33% 할인');
  assert.equal(await card.getByTestId('sale-stock').textContent(), '남은 수량 2 / 2');
  const buy = card.getByTestId('buy');
  assert.equal(await buy.isDisabled(), true, 'no buying before the opening');
  assert.equal(await buy.textContent(), '판매 시작 전');

  // The coupon choices: the usable one with its discount on the sale price,
  // the other disabled with the reason.
  const select = card.getByTestId('sale-coupon');
  const usable = select.locator(`option[value="${fixedCoupon.body.id}"]`);
  await usable.waitFor({ state: 'attached' });
  assert.equal(await usable.textContent(), '타임세일 3,000원 쿠폰 · 3,000원 할인 (-3,000원)');
  const blocked = select.locator('option[disabled]');
  assert.equal(await blocked.count(), 1);
  assert.match(await blocked.textContent(), /10만원 이상 10% 쿠폰 .*사용 불가, 100,000원 이상 주문 시 사용 가능/);
  await card.getByTestId('points-note').filter({ hasText: '보유 5,000 P · 이 주문에 최대 5,000 P까지 사용 가능' }).waitFor();

  // The preview follows the choice: 39,000 − 3,000 − 1,000.
  await select.selectOption(fixedCoupon.body.id);
  const points = card.getByTestId('sale-points');
  await points.fill('40000');
  await card.getByTestId('points-error').filter({ hasText: '1 P부터 36,000 P까지' }).waitFor();
  assert.equal(await points.getAttribute('aria-invalid'), 'true');
  await points.fill('6000');
  await card.getByTestId('points-error').filter({ hasText: '보유 적립금(5,000 P)보다 많이' }).waitFor();
  await points.fill('1000');
  await card.getByTestId('payable').filter({ hasText: /^35,000원$/ }).waitFor();
  assert.equal(await card.getByTestId('points-error').textContent(), '');
  assert.equal(await card.getByTestId('bill-price').textContent(), '39,000원');
  assert.equal(await card.getByTestId('bill-coupon').textContent(), '-3,000원');
  assert.equal(await card.getByTestId('bill-points').textContent(), '-1,000 P');
  await shot(first, 'sales-countdown');
  assert.deepEqual(await contrastFailures(first), [], 'readable contrast on the sales page');

  // The button comes alive with the opening, not before.
  await first.waitForFunction((id) => !document.querySelector(`[data-sale="${id}"] [data-testid="buy"]`).disabled,
    sale.id, { timeout: 20_000 });
  assert.ok(Date.now() >= opensAt - 1_000, 'the button opened with the sale');
  await card.getByTestId('sale-countdown').filter({ hasText: '판매 종료까지' }).waitFor();

  // The first answer is lost: the page tries again with the same key, and
  // the server places one order.
  const sent = [];
  first.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith(`/api/v1/sales/${sale.id}/orders`)) {
      sent.push({ key: r.headers()['idempotency-key'], body: r.postDataJSON() });
    }
  });
  let lost = false;
  await first.route(`**/api/v1/sales/${sale.id}/orders`, async (route) => {
    if (lost) return route.continue();
    lost = true;
    // Delivered, but the answer never arrives.
    await route.fetch();
    await route.abort('connectionreset');
  });
  await buy.click();
  await card.getByTestId('order-result').filter({ hasText: '주문 완료! 선착순 1번째입니다.' }).waitFor();
  assert.equal(sent.length, 2, 'one retry after the lost answer');
  assert.ok(sent[0].key && sent[0].key.length >= 16, `an Idempotency-Key is sent: ${sent[0].key}`);
  assert.equal(sent[1].key, sent[0].key, 'the retry reuses the key');
  assert.deepEqual(sent[0].body, { coupon_id: fixedCoupon.body.id, points: 1000 });
  const mine = await apiCall(base, 'GET', '/api/v1/me/orders', buyer.token);
  assert.equal(mine.body.orders.length, 1, 'one order for the two requests');
  const placed = mine.body.orders[0];
  assert.equal(placed.payable_amount, 35000);
  assert.equal(placed.coupon_discount, 3000);
  assert.equal(placed.points_used, 1000);

  // My orders: awaiting payment, what to pay, and a deadline ticking down.
  const order = first.locator(`[data-order="${placed.id}"]`);
  await order.getByTestId('order-status').filter({ hasText: '결제 대기' }).waitFor();
  assert.equal(await order.getByTestId('order-sale').textContent(), '오늘만 특가');
  assert.equal(await order.getByTestId('order-payable').textContent(), '결제 금액 35,000원');
  assert.equal(await order.getByTestId('order-breakdown').textContent(), '판매가 39,000원 · 쿠폰 -3,000원 · 적립금 -1,000 P · 선착순 1번');
  assert.match(await order.getByTestId('order-expires').textContent(), /^결제 기한까지 00:(09|10):\d\d$/);
  // One per person: no second order, so no order form; the coupon is held
  // for the order and the points are out of the balance.
  await buy.filter({ hasText: '구매 한도 도달 (1/1)' }).waitFor();
  assert.equal(await buy.isDisabled(), true);
  assert.equal(await card.getByTestId('sale-preview').isVisible(), false);
  await card.getByTestId('points-note').filter({ hasText: '보유 4,000 P' }).waitFor({ state: 'attached' });
  assert.equal(await select.locator(`option[value="${fixedCoupon.body.id}"]`).count(), 0);
  await card.getByTestId('sale-stock').filter({ hasText: '남은 수량 1 / 2' }).waitFor();

  // The other shopper saw the stock move without a reload.
  const other = second.locator(`[data-sale="${sale.id}"]`);
  await other.getByTestId('sale-stock').filter({ hasText: '남은 수량 1 / 2' }).waitFor();
  assert.equal(await other.getByTestId('buy').isDisabled(), false);

  // Pay (test payments): paid, and the coupon is used.
  await order.getByTestId('order-pay').click();
  await order.getByTestId('order-status').filter({ hasText: '결제 완료' }).waitFor();
  assert.equal(await order.getByTestId('order-settle-result').textContent(), '결제가 완료되었습니다 (35,000원).');
  assert.equal(await order.getByTestId('order-pay').isVisible(), false, 'nothing more to pay');
  assert.equal(await order.getByTestId('order-expires').isVisible(), false);
  assert.equal(await card.getByTestId('order-result').textContent(), '', '"pay by" is old news');
  await shot(first, 'sales-paid');
  assert.deepEqual(await contrastFailures(first), [], 'readable contrast with an order');
  const coupon = await apiCall(base, 'GET', `/api/v1/coupons/${fixedCoupon.body.id}`, buyer.token);
  assert.equal(coupon.body.status, 'used');
  assert.equal(coupon.body.order_id, placed.id);
  await first.locator('a[data-tab="wallet"]').click();
  const used = first.locator(`[data-coupon="${fixedCoupon.body.id}"]`);
  await used.getByTestId('coupon-status').filter({ hasText: '사용 완료' }).waitFor();
  await first.getByTestId('points-balance').filter({ hasText: /^4,000 P$/ }).waitFor();

  // The last unit goes to a third shopper while the second one's page still
  // shows it (its stream is down, and its last read answered just before):
  // pressing Buy says, in words, that it sold out.
  const stale = (await apiCall(base, 'GET', '/api/v1/sales')).body;
  assert.equal(stale.sales.find((s) => s.id === sale.id).remaining_quantity, 1);
  await second.route('**/api/v1/sales', (route) => route.fulfill({ json: stale }));
  await second.route('**/api/v1/sales/*/live', (route) => route.abort());
  // Away and back: the sale's stream closes, and cannot open again.
  await second.locator('a[data-tab="drops"]').click();
  await second.locator('a[data-tab="sales"]').click();
  await other.getByTestId('buy').filter({ hasText: '구매하기' }).waitFor();
  const [third] = await shoppers(base, admin, 'third', 1);
  assert.equal((await apiCall(base, 'POST', `/api/v1/sales/${sale.id}/orders`, third.token, {})).status, 201);
  await other.getByTestId('buy').click();
  const refused = other.getByTestId('order-result');
  await refused.filter({ hasText: '품절되었습니다. 준비된 수량이 모두 주문되어 주문하지 못했습니다.' }).waitFor();
  assert.equal(await refused.getAttribute('class'), 'result bad');
  await second.unroute('**/api/v1/sales');
  await second.unroute('**/api/v1/sales/*/live');
  await other.getByTestId('sale-status').filter({ hasText: '품절' }).waitFor();
  await other.getByTestId('sale-stock').filter({ hasText: '남은 수량 0 / 2' }).waitFor();
  await other.getByTestId('buy').filter({ hasText: '품절' }).waitFor();
  assert.equal(await other.getByTestId('buy').isDisabled(), true);
  const lateOrders = await apiCall(base, 'GET', '/api/v1/me/orders', (await session(second)).token);
  assert.equal(lateOrders.body.orders.length, 0, 'the refused shopper has no order');
  await shot(second, 'sales-sold-out');

  // In English too.
  await second.getByTestId('lang').click();
  await refused.filter({ hasText: 'Sold out: every unit has been ordered' }).waitFor();
  assert.equal(await other.getByTestId('sale-status').textContent(), 'Sold out');

  assert.deepEqual(first.errors, []);
  assert.deepEqual(second.errors, []);
});

test("a sale on screen moves live over its own stream: orders by others, a pause and a later end show without a reload, and the stream closes with the view (and the drops' stream with theirs)", async () => {
  const base = env.server.base;
  const admin = await adminToken(base);
  const sale = await createSale(base, admin, { name: '실시간 특가', total_quantity: 3,
    product: { sku: 'SKU-L', name: '라이브 상품', list_price: 20000 }, sale_price: 10000 });
  await createCampaign(base, admin, { name: '함께 보는 쿠폰' });
  const page = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });
  // The page's event streams, so the test can see which are open.
  await page.addInitScript(() => {
    const Native = window.EventSource;
    window.openStreams = new Set();
    window.EventSource = class extends Native {
      constructor(...args) {
        super(...args);
        window.openStreams.add(this);
      }

      close() {
        window.openStreams.delete(this);
        super.close();
      }
    };
  });
  const streaming = (path, open) => page.waitForFunction(([p, o]) => [...window.openStreams]
    .some((s) => s.readyState === EventSource.OPEN && new URL(s.url).pathname === p) === o, [path, open]);
  const stream = `/api/v1/sales/${sale.id}/live`;
  const drops = '/api/v1/live';

  await page.goto(base + '/#sales');
  const card = page.locator(`[data-sale="${sale.id}"]`);
  await card.getByTestId('sale-stock').filter({ hasText: '남은 수량 3 / 3' }).waitFor();
  await card.getByTestId('sale-countdown').filter({ hasText: /^판매 종료까지 00:5\d:\d\d$/ }).waitFor();
  await streaming(stream, true);
  await streaming(drops, false);
  // From here on the list cannot be read: what moves came over the stream.
  await page.route('**/api/v1/sales', (route) => route.abort());

  // Another shopper orders through the API: one fewer, on this page.
  const buyers = await shoppers(base, admin, 'live', 3);
  const order = async (who) => assert.equal((await apiCall(base, 'POST', `/api/v1/sales/${sale.id}/orders`, who.token, {})).status, 201);
  await order(buyers[0]);
  await card.getByTestId('sale-stock').filter({ hasText: '남은 수량 2 / 3' }).waitFor();
  assert.equal(await card.getByTestId('sale-status').textContent(), '진행 중');

  // The admin pauses it, resumes it, and gives it an hour more: each shows.
  const patch = async (body) => assert.equal((await apiCall(base, 'PATCH', `/api/v1/sales/${sale.id}`, admin, body)).status, 200);
  await patch({ paused: true });
  await card.getByTestId('sale-status').filter({ hasText: '일시 중지' }).waitFor();
  await patch({ paused: false });
  await card.getByTestId('sale-status').filter({ hasText: '진행 중' }).waitFor();
  await patch({ ends_at: new Date(Date.parse(sale.ends_at) + 3_600_000).toISOString() });
  await card.getByTestId('sale-countdown').filter({ hasText: /^판매 종료까지 01:5\d:\d\d$/ }).waitFor();

  // The last two units go: sold out, said on the card.
  await order(buyers[1]);
  await order(buyers[2]);
  await card.getByTestId('sale-stock').filter({ hasText: '남은 수량 0 / 3' }).waitFor();
  await card.getByTestId('sale-status').filter({ hasText: '품절' }).waitFor();
  await page.unroute('**/api/v1/sales');

  // A stream only while the sale is on screen: the drops' view closes it
  // (and streams the drops instead), and coming back opens it again.
  await page.locator('a[data-tab="drops"]').click();
  await streaming(stream, false);
  await streaming(drops, true);
  await page.locator('a[data-tab="sales"]').click();
  await streaming(stream, true);
  await streaming(drops, false);
  assert.deepEqual(page.errors, []);
});

test('a shopper cancels an order: the coupon and points come back, and the unit is back on sale', async () => {
  const base = env.server.base;
  const admin = await adminToken(base);
  const page = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });
  await signUp(page, `canceller-${Date.now()}@example.com`);
  const me = await session(page);
  const campaign = await createCampaign(base, admin, { name: '취소 테스트 쿠폰', min_order_amount: 0, total_quantity: 5,
    discount: { type: 'percent', percent: 10, max_amount: 2000 } });
  const coupon = await apiCall(base, 'POST', `/api/v1/campaigns/${campaign.id}/issue`, me.token);
  assert.equal(coupon.status, 201);
  assert.equal((await apiCall(base, 'POST', `/api/v1/users/${me.userId}/points/earn`, admin,
    { amount: 700, reference: 'r-1', reason: '리뷰' })).status, 201);
  const sale = await createSale(base, admin, { name: '취소해 보는 특가', total_quantity: 1,
    product: { sku: 'SKU-2', name: '보조배터리', list_price: 25000 }, sale_price: 15000 });

  await page.locator('a[data-tab="sales"]').click();
  const card = page.locator(`[data-sale="${sale.id}"]`);
  const option = card.locator(`[data-testid="sale-coupon"] option[value="${coupon.body.id}"]`);
  await option.waitFor({ state: 'attached' });
  // 10% of 15,000 is 1,500 (under its 2,000 cap), computed on the sale price.
  assert.equal(await option.textContent(), '취소 테스트 쿠폰 · 10% 할인 (최대 2,000원) (-1,500원)');
  await card.getByTestId('sale-coupon').selectOption(coupon.body.id);
  await card.getByTestId('sale-points').fill('700');
  await card.getByTestId('payable').filter({ hasText: /^12,800원$/ }).waitFor();
  await card.getByTestId('buy').click();
  const order = page.getByTestId('order').first();
  await order.getByTestId('order-status').filter({ hasText: '결제 대기' }).waitFor();
  await card.getByTestId('sale-status').filter({ hasText: '품절' }).waitFor();
  assert.equal(await card.getByTestId('sale-coupon').inputValue(), '', 'the form is cleared for a next order');

  page.once('dialog', (d) => d.accept());
  await order.getByTestId('order-cancel').click();
  await order.getByTestId('order-status').filter({ hasText: '취소됨' }).waitFor();
  assert.equal(await order.getByTestId('order-settle-result').textContent(), '주문을 취소했습니다. 쿠폰과 적립금은 돌려드렸습니다.');
  // The coupon and the points are offered again, and the unit is back.
  await option.waitFor({ state: 'attached' });
  await card.getByTestId('points-note').filter({ hasText: '보유 700 P' }).waitFor();
  await card.getByTestId('sale-stock').filter({ hasText: '남은 수량 1 / 1' }).waitFor();
  await card.getByTestId('sale-status').filter({ hasText: '진행 중' }).waitFor();
  assert.equal(await card.getByTestId('buy').isDisabled(), false, 'a cancelled order frees the place in the limit');
  const back = await apiCall(base, 'GET', `/api/v1/coupons/${coupon.body.id}`, me.token);
  assert.equal(back.body.status, 'available');
  assert.deepEqual(page.errors, []);
});

test('an admin creates a sale through the form, watches its orders by status, is told why the stock cannot go lower, and pauses it', async () => {
  const base = env.server.base;
  const page = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });
  await page.goto(base + '/admin#/sales');
  await page.locator('#email').fill(ADMIN.email);
  await page.locator('#password').fill(ADMIN.password);
  await page.locator('#auth-form button[type="submit"]').click();
  await page.getByTestId('who').filter({ hasText: ADMIN.email }).waitFor();
  await page.getByTestId('new-sale').waitFor();

  // Wrong fields are named where they are; nothing is sent.
  let posted = 0;
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith('/api/v1/sales')) posted++;
  });
  await page.getByTestId('new-sale').click();
  const form = page.getByTestId('sale-form');
  const now = Date.now();
  await form.locator('#s-name').fill('관리자 특가');
  await form.locator('#s-product').fill('블루투스 스피커');
  await form.locator('#s-list-price').fill('80000');
  await form.locator('#s-sale-price').fill('90000');
  await form.locator('#s-total').fill('3');
  await form.locator('#s-ttl').fill('0');
  await form.locator('#s-starts').fill(localInput(now - 60_000));
  await form.locator('#s-ends').fill(localInput(now - 120_000));
  await page.getByTestId('save-sale').click();
  await form.locator('#s-sku-error').filter({ hasText: '필수 항목입니다.' }).waitFor();
  assert.equal(await form.locator('#s-sale-price-error').textContent(), '0원부터 정가(80,000원)까지 입력하세요.');
  assert.equal(await form.locator('#s-ends-error').textContent(), '판매 종료는 판매 시작보다 뒤여야 합니다.');
  assert.match(await form.locator('#s-ttl-error').textContent(), /1 이상 86,400 이하/);
  assert.equal(await form.locator('#s-sale-price').getAttribute('aria-invalid'), 'true');
  assert.equal(await form.locator('#s-name-error').textContent(), '');
  assert.equal(posted, 0, 'an invalid form sends nothing');
  await shot(page, 'admin-sale-form-errors');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast in the sale form');

  await form.locator('#s-sku').fill('SPK-01');
  await form.locator('#s-sale-price').fill('49000');
  await form.locator('#s-ttl').fill('300');
  await form.locator('#s-ends').fill(localInput(now + 3_600_000));
  await page.getByTestId('save-sale').click();
  const row = page.getByTestId('sale-row').filter({ hasText: '관리자 특가' });
  await row.waitFor();
  assert.equal(posted, 1);
  assert.equal(await form.count(), 0, 'the form closes once saved');
  assert.equal(await row.getByTestId('sale-row-status').textContent(), '진행 중');
  assert.equal(await row.getByTestId('sale-row-sold').textContent(), '0 / 3');
  assert.equal(await row.getByTestId('sale-row-remaining').textContent(), '3');
  const saleId = await row.getAttribute('data-sale');
  const created = (await apiCall(base, 'GET', `/api/v1/sales/${saleId}`)).body;
  assert.deepEqual(created.product, { sku: 'SPK-01', name: '블루투스 스피커', list_price: 80000 });
  assert.equal(created.sale_price, 49000);
  assert.equal(created.payment_ttl_secs, 300);
  assert.equal(created.per_user_limit, 1);

  // Orders arrive: one paid (with points), one waiting, one cancelled. The
  // list follows without a reload.
  const admin = await adminToken(base);
  const [a, b, c, d] = await shoppers(base, admin, 'sale-admin', 4);
  assert.equal((await apiCall(base, 'POST', `/api/v1/users/${a.user_id}/points/earn`, admin,
    { amount: 2000, reference: 'p-1', reason: '테스트' })).status, 201);
  const order = async (who, body = {}) => {
    const r = await apiCall(base, 'POST', `/api/v1/sales/${saleId}/orders`, who.token, body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  const paid = await order(a, { points: 2000 });
  assert.equal((await apiCall(base, 'POST', `/api/v1/orders/${paid.id}/pay`, a.token)).body.status, 'paid');
  await order(b);
  const cancelled = await order(c);
  assert.equal((await apiCall(base, 'POST', `/api/v1/orders/${cancelled.id}/cancel`, c.token)).body.status, 'cancelled');
  await row.getByTestId('sale-row-sold').filter({ hasText: /^2 \/ 3$/ }).waitFor();
  assert.equal(await row.getByTestId('sale-row-remaining').textContent(), '1');
  await shot(page, 'admin-sales');

  // The sale's page: its numbers, and its orders by status as bars.
  await row.getByTestId('open-sale').click();
  await page.getByTestId('sale-title').filter({ hasText: '관리자 특가' }).waitFor();
  assert.match(await page.getByTestId('sale-product').textContent(), /블루투스 스피커 · SKU SPK-01 · 정가 80,000원 → 판매가 49,000원/);
  const bars = page.getByTestId('sale-chart');
  const count = (status) => bars.locator(`[data-status="${status}"] [data-testid="sale-chart-count"]`);
  await count('paid').filter({ hasText: /^1$/ }).waitFor();
  assert.equal(await count('pending_payment').textContent(), '1');
  assert.equal(await count('cancelled').textContent(), '1');
  assert.equal(await count('expired').textContent(), '0');
  assert.equal(await count('refunded').textContent(), '0');
  assert.equal(await bars.locator('[data-status="paid"]').textContent(), '결제 완료1');
  assert.equal(await page.getByTestId('skpi-ordered').textContent(), '2 / 3');
  assert.equal(await page.getByTestId('skpi-remaining').textContent(), '1');
  assert.equal(await page.getByTestId('skpi-sold').textContent(), '1');
  assert.equal(await page.getByTestId('skpi-revenue').textContent(), '47,000원');
  assert.equal(await page.getByTestId('skpi-points').textContent(), '2,000 P');
  assert.equal(await page.getByTestId('skpi-discount').textContent(), '0원');
  const width = (status) => bars.locator(`[data-status="${status}"] .fill`).evaluate((el) => el.getBoundingClientRect().width);
  assert.ok(await width('paid') > 0, 'the paid bar shows');
  assert.equal(await width('expired'), 0, 'no bar for none');

  // A new order shows up by itself: the last unit, so it sells out.
  await order(d);
  await count('pending_payment').filter({ hasText: /^2$/ }).waitFor({ timeout: 10_000 });
  await page.getByTestId('sale-status').filter({ hasText: '품절' }).waitFor();
  assert.notEqual(await page.getByTestId('skpi-sold-out').textContent(), '아직 품절 전');
  await shot(page, 'admin-sale-summary');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast on the sale page');

  // Below what is ordered: refused by the server, said at the field.
  await page.getByTestId('sale-edit-total').fill('2');
  await page.getByTestId('sale-edit-save').click();
  await page.getByTestId('sale-edit-total-error').filter({ hasText: '이미 주문된 3개(결제 대기 포함)보다 적게 줄일 수 없습니다.' }).waitFor();
  assert.equal(await page.getByTestId('sale-edit-total').getAttribute('aria-invalid'), 'true');
  assert.equal((await apiCall(base, 'GET', `/api/v1/sales/${saleId}`)).body.total_quantity, 3, 'nothing changed');
  await page.getByTestId('sale-edit-total').fill('5');
  await page.getByTestId('sale-edit-save').click();
  await page.getByTestId('sale-edit-result').filter({ hasText: '변경되었습니다.' }).waitFor();
  assert.equal(await page.getByTestId('skpi-ordered').textContent(), '3 / 5');
  assert.equal(await page.getByTestId('sale-edit-total-error').textContent(), '');
  await page.getByTestId('sale-status').filter({ hasText: '진행 중' }).waitFor();

  // Paused: shoppers are refused until it resumes.
  await page.getByTestId('sale-pause').click();
  await page.getByTestId('sale-status').filter({ hasText: '일시 중지' }).waitFor();
  assert.equal(await page.getByTestId('sale-pause').textContent(), '재개');
  const [e] = await shoppers(base, admin, 'sale-paused', 1);
  const refused = await apiCall(base, 'POST', `/api/v1/sales/${saleId}/orders`, e.token, {});
  assert.equal(refused.status, 409);
  assert.equal(refused.body.error.code, 'paused');
  await page.getByTestId('sale-pause').click();
  await page.getByTestId('sale-status').filter({ hasText: '진행 중' }).waitFor();

  // Back to the list: the stock and status as they are now.
  await page.locator('a[href="#/sales"]').first().click();
  await row.getByTestId('sale-row-sold').filter({ hasText: /^3 \/ 5$/ }).waitFor();
  assert.equal(await row.getByTestId('sale-row-status').textContent(), '진행 중');

  // In English too.
  await page.getByTestId('lang').click();
  await row.getByTestId('sale-row-status').filter({ hasText: 'Open' }).waitFor();
  assert.deepEqual(page.errors, []);
});

test('the sales page fits a phone and its order form works from the keyboard', async () => {
  const base = env.server.base;
  const admin = await adminToken(base);
  const sale = await createSale(base, admin, { name: '모바일 특가', total_quantity: 50,
    product: { sku: 'SKU-M', name: '휴대폰 거치대', list_price: 12000 }, sale_price: 9900 });
  const page = await newPage(env.browser, { viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });
  await signUp(page, `phone-${Date.now()}@example.com`);
  const me = await session(page);
  assert.equal((await apiCall(base, 'POST', `/api/v1/users/${me.userId}/points/earn`, admin,
    { amount: 500, reference: 'phone-1', reason: '앱 설치' })).status, 201);
  await page.locator('a[data-tab="sales"]').click();
  const card = page.locator(`[data-sale="${sale.id}"]`);
  await card.getByTestId('buy').filter({ hasText: '구매하기' }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at 375 px (overflow ${overflow}px)`);
  await shot(page, 'sales-phone');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast at phone width');

  // From the coupon choice, Tab reaches the points and the Buy button; Enter orders.
  await card.getByTestId('sale-coupon').focus();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'sale-points');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'buy');
  await page.keyboard.press('Enter');
  await card.getByTestId('order-result').filter({ hasText: '주문 완료!' }).waitFor();
  await page.getByTestId('order').first().getByTestId('order-status').filter({ hasText: '결제 대기' }).waitFor();
  assert.deepEqual(page.errors, []);
});

/** Read the inbox again (away and back) until a notification says `text`;
 * the scheduler's news arrives on its own clock, so poll, boundedly. */
async function inboxSays(page, text, timeoutMs = 45_000) {
  const deadline = Date.now() + timeoutMs;
  const item = page.getByTestId('notification').filter({ hasText: text });
  for (;;) {
    await page.locator('a[data-tab="inbox"]').click();
    try {
      await item.waitFor({ timeout: 1_000 });
      return item;
    } catch {
      if (Date.now() > deadline) throw new Error(`the inbox never said "${text}" within ${timeoutMs} ms`);
    }
    await page.locator('a[data-tab="drops"]').click();
  }
}

test('a shopper asks to be told when an upcoming sale opens: the button keeps its state after a reload, and the inbox says it opens soon and opened, in words', async () => {
  const base = env.server.base;
  const admin = await adminToken(base);
  // Opening soon enough for the test to see it open (and inside the lead of
  // sale.opening_soon), late enough to subscribe before; another far off,
  // and one open already.
  const soon = await createSale(base, admin, { name: '알림 받는 특가', starts_at: new Date(Date.now() + 30_000).toISOString() });
  const later = await createSale(base, admin, { name: '나중 특가',
    starts_at: new Date(Date.now() + 7_200_000).toISOString(), ends_at: new Date(Date.now() + 10_800_000).toISOString() });
  const open = await createSale(base, admin, { name: '이미 진행 중인 특가' });
  const page = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });

  // Signed out: upcoming, but nobody to tell.
  await page.goto(base + '/#sales');
  const card = page.locator(`[data-sale="${soon.id}"]`);
  const notify = card.getByTestId('sale-notify');
  await card.getByTestId('sale-countdown').filter({ hasText: '판매 시작까지' }).waitFor();
  assert.equal(await notify.isVisible(), false, 'no "notify me" for a shopper who is not signed in');

  await signUp(page, `notify-${Date.now()}@example.com`);
  const me = await session(page);
  await page.locator('a[data-tab="sales"]').click();
  await notify.filter({ hasText: '판매 시작 알림 받기' }).waitFor();
  assert.equal(await notify.getAttribute('aria-pressed'), 'false');
  assert.equal(await page.locator(`[data-sale="${open.id}"] [data-testid="sale-notify"]`).isVisible(), false,
    'no "notify me" on a sale that is already open');
  await notify.click();
  await card.locator('[data-testid="sale-notify"][aria-pressed="true"]').filter({ hasText: '🔔 알림 신청됨 (해제)' }).waitFor();
  const asked = await apiCall(base, 'GET', `/api/v1/sales/${soon.id}/subscription`, me.token);
  assert.equal(asked.body.subscribed, true, 'the server has the subscription');
  await shot(page, 'sales-notify');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast with "notify me"');

  // A reload reads the state back from the server.
  await page.reload();
  await card.locator('[data-testid="sale-notify"][aria-pressed="true"]').waitFor();
  assert.equal(await notify.textContent(), '🔔 알림 신청됨 (해제)');

  // Pressed twice: on, then off again, on the server too.
  const other = page.locator(`[data-sale="${later.id}"] [data-testid="sale-notify"]`);
  await other.filter({ hasText: '판매 시작 알림 받기' }).click();
  await page.locator(`[data-sale="${later.id}"] [data-testid="sale-notify"][aria-pressed="true"]`).waitFor();
  await other.click();
  await page.locator(`[data-sale="${later.id}"] [data-testid="sale-notify"][aria-pressed="false"]`).waitFor();
  assert.equal(await other.textContent(), '판매 시작 알림 받기');
  const undone = await apiCall(base, 'GET', `/api/v1/sales/${later.id}/subscription`, me.token);
  assert.equal(undone.body.subscribed, false, 'undone on the server');

  // The scheduler tells the subscriber it opens soon (at once: it is inside
  // the lead), then that it opened; the inbox says both in words.
  await inboxSays(page, '타임세일이 곧 시작합니다: 알림 받는 특가 (');
  await inboxSays(page, '타임세일이 시작되었습니다! 알림 받는 특가');
  const words = await page.locator('#inbox-list').textContent();
  assert.doesNotMatch(words, /event\.|sale\.opened|나중 특가/, 'no label keys, and nothing of the sale undone');
  await shot(page, 'inbox-sale');

  await page.getByTestId('lang').click();
  await page.getByTestId('notification').filter({ hasText: 'Time sale on now! 알림 받는 특가' }).waitFor();
  await page.getByTestId('notification').filter({ hasText: 'Time sale starting soon: 알림 받는 특가 (starts ' }).waitFor();
  // Open now: nothing left to be told of, so no button.
  await page.locator('a[data-tab="sales"]').click();
  await card.getByTestId('sale-status').filter({ hasText: 'Open' }).waitFor();
  assert.equal(await notify.isVisible(), false);
  assert.deepEqual(page.errors, []);
});
