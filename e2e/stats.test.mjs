// The console's statistics against what the test itself did: shoppers claim
// (one too many times, and some after it sold out) and spend coupons; the
// campaign's summary panel shows the coupons by status, use rate, totals and
// claim answers the test counted (the claim counts reach the record a few
// seconds late: polled, never slept for), claims per second across the
// cluster move when late shoppers try again, a coupon spent while the
// dashboard is open turns used in the winners without a reload, a winner's
// e-mail opens their member page, and the overview lists the campaign and
// a sale with their numbers.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ADMIN, adminToken, apiCall, contrastFailures, createCampaign, newPage, shot, serverAndBrowser } from './harness.mjs';

const env = serverAndBrowser();

/** The claim counts reach every instance's shared record a few seconds late. */
const LAG = { timeout: 15_000 };

async function claim(campaignId, who) {
  const r = await apiCall(env.server.base, 'POST', `/api/v1/campaigns/${campaignId}/issue`, who.token);
  return { status: r.status, code: r.status === 201 ? 'issued' : r.body?.error?.code, coupon: r.status === 201 ? r.body : null };
}

async function use(who, coupon, orderId, amount) {
  const r = await apiCall(env.server.base, 'POST', `/api/v1/coupons/${coupon.id}/use`, who.token, { order_id: orderId, order_amount: amount });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

test('the summary, the member page and the overview show what the shoppers did', async () => {
  const base = env.server.base;
  const token = await adminToken(base);
  const campaign = await createCampaign(base, token, { name: '통계 확인 5,000원', total_quantity: 5, per_user_limit: 1 });
  const bulk = await apiCall(base, 'POST', '/api/v1/admin/users/bulk', token, { count: 8, email_prefix: 'stats', password: 'password-123' });
  assert.equal(bulk.status, 201);
  const users = bulk.body.users;

  // The first shopper claims twice (the second is over the limit), then
  // the rest: five coupons for eight shoppers.
  const answers = [];
  answers.push(await claim(campaign.id, users[0]));
  answers.push(await claim(campaign.id, users[0]));
  for (const u of users.slice(1)) answers.push(await claim(campaign.id, u));
  const count = (code) => answers.filter((a) => a.code === code).length;
  assert.deepEqual([count('issued'), count('limit_reached'), count('sold_out')], [5, 1, 3], JSON.stringify(answers.map((a) => a.code)));
  const couponOf = new Map(answers.filter((a) => a.coupon).map((a) => [a.coupon.user_id, a.coupon]));
  const first = await use(users[1], couponOf.get(users[1].user_id), 'stats-order-1', 40_000);
  assert.equal(first.discount_amount, 5000);

  // A sale with two orders waiting for payment, for the overview.
  const sale = await apiCall(base, 'POST', '/api/v1/sales', token, {
    name: '통계 특가', product: { sku: 'ST-1', name: '머그컵', list_price: 20000 }, sale_price: 15000,
    total_quantity: 3, per_user_limit: 1,
    starts_at: new Date(Date.now() - 60_000).toISOString(), ends_at: new Date(Date.now() + 3_600_000).toISOString(),
  });
  assert.equal(sale.status, 201, JSON.stringify(sale.body));
  for (const u of users.slice(6, 8)) assert.equal((await apiCall(base, 'POST', `/api/v1/sales/${sale.body.id}/orders`, u.token, {})).status, 201);

  const page = await newPage(env.browser, { viewport: { width: 1280, height: 900 } });
  await page.goto(`${base}/admin#/campaign/${campaign.id}`);
  await page.locator('#email').fill(ADMIN.email);
  await page.locator('#password').fill(ADMIN.password);
  await page.locator('#auth-form button[type="submit"]').click();
  await page.getByTestId('who').filter({ hasText: ADMIN.email }).waitFor();

  // The summary: coupons from the record, claim answers from every instance.
  const panel = page.getByTestId('csum');
  await panel.getByTestId('csum-issued').filter({ hasText: /^5 \/ 5$/ }).waitFor();
  assert.equal(await panel.getByTestId('csum-used').textContent(), '1');
  assert.equal(await panel.getByTestId('csum-available').textContent(), '4');
  assert.equal(await panel.getByTestId('csum-reserved').textContent(), '0');
  assert.equal(await panel.getByTestId('csum-use-rate').textContent(), '20%');
  assert.equal(await panel.getByTestId('csum-discount').textContent(), '5,000원');
  assert.equal(await panel.getByTestId('csum-orders').textContent(), '40,000원');
  assert.notEqual(await panel.getByTestId('csum-sold-out').textContent(), '아직 품절 전', 'it sold out');
  const claims = panel.getByTestId('csum-claims');
  const claimed = (outcome) => claims.locator(`li[data-key="${outcome}"] [data-testid="bar-count"]`);
  await claimed('issued').filter({ hasText: new RegExp(`^${count('issued')}$`) }).waitFor(LAG);
  await claimed('sold_out').filter({ hasText: new RegExp(`^${count('sold_out')}$`) }).waitFor(LAG);
  await claimed('limit_reached').filter({ hasText: new RegExp(`^${count('limit_reached')}$`) }).waitFor(LAG);
  assert.equal(await claimed('replayed').textContent(), '0');
  assert.ok(await panel.locator('[data-testid="csum-issued-chart"] rect').count() > 0, 'the issue curve has bars');
  assert.ok(await panel.locator('[data-testid="csum-used-chart"] rect').count() > 0, 'uses per day has a bar');
  // Claims per second across the cluster, from successive readings of the
  // totals: nothing while nobody claims, then more than nothing when the
  // late shoppers try again.
  await panel.getByTestId('csum-rate').filter({ hasText: /^0$/ }).waitFor(LAG);
  await panel.locator('[data-testid="csum-rate-chart"] svg').waitFor(LAG);
  for (const u of users.slice(5)) answers.push(await claim(campaign.id, u));
  assert.equal(count('sold_out'), 6);
  await panel.getByTestId('csum-rate').filter({ hasText: /^0[.,]\d|^[1-9]/ }).waitFor(LAG);
  await claimed('sold_out').filter({ hasText: /^6$/ }).waitFor(LAG);
  assert.ok(await panel.locator('[data-testid="csum-rate-chart"] rect.o-sold_out').count() > 0, 'the sold-out answers in the chart');

  // A coupon spent while the dashboard is open: the winners on screen and
  // the summary follow without a reload.
  const second = couponOf.get(users[2].user_id);
  const row = page.locator(`[data-testid="winners"] tr[data-seq="${second.seq}"]`);
  await row.getByTestId('winner-status').filter({ hasText: '사용 가능' }).waitFor();
  await row.scrollIntoViewIfNeeded();
  await use(users[2], second, 'stats-order-2', 50_000);
  await row.getByTestId('winner-status').filter({ hasText: '사용 완료' }).waitFor(LAG);
  await panel.getByTestId('csum-used').filter({ hasText: /^2$/ }).waitFor(LAG);
  assert.equal(await panel.getByTestId('csum-use-rate').textContent(), '40%');
  assert.equal(await panel.getByTestId('csum-orders').textContent(), '90,000원');
  await shot(page, 'admin-campaign-summary');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast in the summary');

  // A winner's e-mail opens their page: the coupon used, nothing else.
  await page.locator(`[data-testid="winners"] tr[data-seq="${couponOf.get(users[1].user_id).seq}"]`).getByTestId('winner-user').click();
  await page.getByTestId('user-who').filter({ hasText: users[1].email }).waitFor();
  assert.equal(page.url(), `${base}/admin#/user/${users[1].user_id}`);
  assert.equal(await page.getByTestId('ucoupon-used').textContent(), '1');
  assert.equal(await page.getByTestId('ucoupon-available').textContent(), '0');
  assert.equal(await page.getByTestId('ucoupon-reserved').textContent(), '0');
  assert.equal(await page.getByTestId('upoints-balance').textContent(), '0 P');
  const coupons = page.getByTestId('user-coupon');
  await coupons.first().filter({ hasText: '통계 확인 5,000원' }).waitFor();
  assert.equal(await coupons.count(), 1);
  assert.equal(await coupons.first().getAttribute('data-status'), 'used');
  assert.match(await coupons.first().textContent(), /stats-order-1/);

  // Found by e-mail too; an unknown address is said so.
  await page.getByTestId('nav-users').click();
  await page.getByTestId('user-email').fill('nobody@example.com');
  await page.getByTestId('user-find').click();
  await page.getByTestId('user-lookup-error').filter({ hasText: 'nobody@example.com 계정이 없습니다' }).waitFor();
  await page.getByTestId('user-email').fill(users[6].email);
  await page.getByTestId('user-find').click();
  await page.getByTestId('user-who').filter({ hasText: users[6].email }).waitFor();
  // Shopper 6 came after the sell-out, and ordered from the sale.
  assert.equal(await page.getByTestId('ucoupon-available').textContent(), '0');
  assert.equal(await page.getByTestId('user-orders').locator('li[data-key="pending_payment"] [data-testid="bar-count"]').textContent(), '1');
  await page.getByTestId('user-coupons').filter({ hasText: '받은 쿠폰이 없습니다' }).waitFor();
  await shot(page, 'admin-user');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast on the member page');

  // The overview: the campaign and the sale with their numbers.
  await page.getByTestId('nav-overview').click();
  const ovCampaign = page.getByTestId('ov-campaign').filter({ hasText: '통계 확인 5,000원' });
  await ovCampaign.waitFor();
  assert.equal(await ovCampaign.getByTestId('ov-issued-total').textContent(), '5 / 5');
  assert.equal(await ovCampaign.getByTestId('ov-remaining').textContent(), '0');
  await ovCampaign.locator('td[data-outcome="issued"]').filter({ hasText: /^5$/ }).waitFor(LAG);
  await ovCampaign.locator('td[data-outcome="sold_out"]').filter({ hasText: /^6$/ }).waitFor(LAG);
  const ovSale = page.getByTestId('ov-sale').filter({ hasText: '통계 특가' });
  await ovSale.locator('td[data-order="pending_payment"]').filter({ hasText: /^2$/ }).waitFor();
  assert.match(await ovSale.textContent(), /2 \/ 3/);
  await page.getByTestId('ov-claims').locator('li[data-key="limit_reached"]').waitFor();
  await shot(page, 'admin-overview');
  assert.deepEqual(await contrastFailures(page), [], 'readable contrast on the overview');

  // The sale's page draws its orders per minute.
  await ovSale.locator('a').click();
  await page.locator('[data-testid="sale-curve"] rect').first().waitFor();

  // English labels here too.
  await page.getByTestId('nav-overview').click();
  await page.getByTestId('lang').click();
  await page.getByTestId('ov-claims').locator('li[data-key="sold_out"]').filter({ hasText: 'sold out' }).waitFor();
  await page.locator('#overview-view h1').filter({ hasText: 'Overview' }).waitFor();
  assert.deepEqual(page.errors, []);
});
