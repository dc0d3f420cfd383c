// A sale card's order form: a coupon choice (its discount on the sale price,
// unusable ones disabled with the reason), points against the balance, a
// live bill, and Buy with an Idempotency-Key reused after a lost answer;
// every refusal in words.

import {
  api, currentLang, dateTime, discountText, h, newId, num, points, serverNow, setText, showResult, t, won,
} from '../common.js';
import { campaignName } from './drops.js';
import { loadOrders, ordersHeld, showOrder } from './orders.js';
import { askToLogIn, onSignOut, onViewChange, session, signOut } from './page.js';
import { loadSales } from './sales-feed.js';
import { saleById, saleCardOf, updateSaleCard, updateSaleCards } from './sales.js';

/** Per sale, the order being placed: its fields, the Idempotency-Key sent
 * with them (null once answered), whether it is in flight, and its last
 * result ({ok, text()}: re-rendered in the chosen language). Pressing again
 * with the same fields after no answer reuses the key, so the server places
 * the order once; other fields, or a press after an answer, get a new key. */
const buying = new Map();
/** What the form offers: my available coupons (with their campaign's
 * name) and my points; null until read. `gen` counts sessions, so an answer
 * read for a session since ended is dropped. */
const extras = { coupons: null, points: null, gen: 0 };

onSignOut(() => {
  Object.assign(extras, { coupons: null, points: null, gen: extras.gen + 1 });
  buying.clear();
  updateSaleCards();
});

onViewChange((view) => {
  if (view === 'sales' && session.signedIn) loadShopperExtras();
});

/** The form's elements for sale `id`; `label(node, key)` names a label to re-translate. */
export function orderForm(id, label) {
  const fid = (name) => `sale-${id}-${name}`;
  const el = {
    coupon: h('select', { id: fid('coupon'), 'aria-describedby': fid('coupon-note'), 'data-testid': 'sale-coupon', onchange: () => updateSaleCard(id) }),
    couponNote: h('p', { class: 'muted small', id: fid('coupon-note'), 'data-testid': 'coupon-note' }),
    points: h('input', {
      id: fid('points'), type: 'number', min: 1, step: 1, inputmode: 'numeric', autocomplete: 'off',
      'aria-describedby': `${fid('points-note')} ${fid('points-error')}`, 'data-testid': 'sale-points',
      oninput: () => updateSaleCard(id),
    }),
    pointsNote: h('p', { class: 'muted small', id: fid('points-note'), 'data-testid': 'points-note' }),
    pointsError: h('p', { class: 'field-error', id: fid('points-error'), 'aria-live': 'polite', 'data-testid': 'points-error' }),
    billPrice: h('dd', { 'data-testid': 'bill-price' }),
    billCoupon: h('dd', { 'data-testid': 'bill-coupon' }),
    billPoints: h('dd', { 'data-testid': 'bill-points' }),
    payable: h('dd', { class: 'total', 'data-testid': 'payable' }),
    buy: h('button', { type: 'submit', class: 'claim', 'data-testid': 'buy' }),
    login: h('button', { type: 'button', class: 'claim', 'data-testid': 'sale-login', onclick: askToLogIn }),
    result: h('p', { class: 'result', role: 'status', 'aria-live': 'polite', 'data-testid': 'order-result' }),
    couponKey: null,
  };
  el.loginRow = h('div', { class: 'row' }, el.login);
  el.fields = h('div', { class: 'order-fields' },
    label(h('label', { for: fid('coupon') }), 'sale.coupon'), el.coupon, el.couponNote,
    label(h('label', { for: fid('points') }), 'sale.points'), el.points, el.pointsNote, el.pointsError,
    h('dl', { class: 'bill', 'data-testid': 'sale-preview' },
      label(h('dt', {}), 'sale.bill.price'), el.billPrice,
      label(h('dt', {}), 'sale.bill.coupon'), el.billCoupon,
      label(h('dt', {}), 'sale.bill.points'), el.billPoints,
      label(h('dt', { class: 'total' }), 'sale.bill.payable'), el.payable));
  el.form = h('form', { class: 'order-form', method: 'post', action: '/', novalidate: true, onsubmit: (e) => {
    e.preventDefault();
    placeOrder(id);
  } }, el.fields, h('div', { class: 'row' }, el.buy));
  return el;
}

/** A coupon's discount on `price`, as the server computes it: fixed (never
 * above the price), or percent rounded down and capped at its max. */
function couponDiscount(c, price) {
  const d = c.discount;
  const raw = d.type === 'fixed' ? d.amount : Math.min(Math.floor((price * d.percent) / 100), d.max_amount ?? Infinity);
  return Math.max(0, Math.min(raw, price));
}

/** Why a coupon cannot pay for a unit at `price`, in words; null if it can. */
function couponBlock(c, price, now) {
  if (c.min_order_amount > price) return t('sale.coupon_min', { amount: won(c.min_order_amount) });
  if (Date.parse(c.valid_from) > now) return t('sale.coupon_not_yet', { date: dateTime(c.valid_from) });
  if (Date.parse(c.valid_until) <= now) return t('coupon.expired');
  return null;
}

/** The coupon choices for one sale, rebuilt only when they change (a poll
 * must not close an open list); the choice is kept while it is offered. */
function renderCouponOptions(el, s) {
  const coupons = extras.coupons ?? [];
  const now = serverNow();
  const blocked = coupons.map((c) => couponBlock(c, s.sale_price, now));
  const key = JSON.stringify([currentLang(), s.sale_price, coupons.map((c) => c.id), blocked]);
  if (el.couponKey === key) return;
  el.couponKey = key;
  const was = el.coupon.value;
  const options = [h('option', { value: '' }, t('sale.no_coupon'))];
  coupons.forEach((c, i) => {
    const vars = { name: c.name, discount: discountText(c.discount) };
    options.push(blocked[i]
      ? h('option', { value: c.id, disabled: true }, t('sale.coupon_unusable', { ...vars, reason: blocked[i] }))
      : h('option', { value: c.id }, t('sale.coupon_option', { ...vars, amount: won(couponDiscount(c, s.sale_price)) })));
  });
  el.coupon.replaceChildren(...options);
  el.coupon.value = options.some((o) => o.value === was && !o.disabled) ? was : '';
  const usable = blocked.filter((b) => !b).length;
  setText(el.couponNote, extras.coupons === null ? ''
    : usable === 0 ? t('sale.coupons_none')
      : usable < coupons.length ? t('sale.coupons_some', { usable: num(usable), total: num(coupons.length) }) : '');
}

/** What the shopper would pay with the chosen coupon and points, and what
 * is wrong with the points typed (null if nothing). */
function quote(s, el) {
  const coupon = (extras.coupons ?? []).find((c) => c.id === el.coupon.value) ?? null;
  const discount = coupon ? couponDiscount(coupon, s.sale_price) : 0;
  const afterCoupon = s.sale_price - discount;
  const balance = extras.points?.balance ?? 0;
  const most = Math.max(0, Math.min(afterCoupon, balance));
  // No points to use (none held, or nothing left to pay): the field is off.
  const raw = most < 1 ? '' : el.points.value.trim();
  let used = 0;
  let error = null;
  if (raw !== '' || (most >= 1 && el.points.validity.badInput)) {
    const n = Number(raw);
    if (raw === '' || !Number.isInteger(n) || n < 1 || n > afterCoupon) {
      error = afterCoupon < 1 ? t('sale.v.points_free') : t('sale.v.points', { max: points(afterCoupon) });
    } else if (n > balance) {
      error = t('sale.v.points_balance', { balance: points(balance) });
    } else {
      used = n;
    }
  }
  return { coupon, discount, points: used, error, most, payable: afterCoupon - used };
}

/** The form's part of a sale card, for `status` as of now. */
export function updateOrderForm(el, s, status) {
  const b = buying.get(s.id);
  showResult(el.result, b?.result);
  const live = status === 'open' || status === 'upcoming';
  el.form.hidden = !session.signedIn;
  el.loginRow.hidden = session.signedIn || !live;
  setText(el.login, t('sale.login_to_buy'));
  if (!session.signedIn) return;

  // The form, while there is something to order.
  const held = ordersHeld(s.id);
  el.fields.hidden = !live || held >= s.per_user_limit;
  renderCouponOptions(el, s);
  const q = quote(s, el);
  const balance = extras.points?.balance;
  el.points.disabled = q.most < 1;
  el.points.max = String(q.most);
  setText(el.pointsNote, balance === undefined ? ''
    : q.most < 1 ? t(balance < 1 ? 'sale.points_none' : 'sale.points_free') : t('sale.points_note', { balance: points(balance), max: points(q.most) }));
  setText(el.pointsError, q.error ?? '');
  if (q.error) el.points.setAttribute('aria-invalid', 'true');
  else el.points.removeAttribute('aria-invalid');
  setText(el.billPrice, won(s.sale_price));
  setText(el.billCoupon, q.discount ? `-${won(q.discount)}` : won(0));
  setText(el.billPoints, q.points ? `-${points(q.points)}` : points(0));
  setText(el.payable, won(q.payable));

  let text = t('sale.buy');
  let enabled = false;
  if (b?.busy) text = t('sale.buying');
  else if (held >= s.per_user_limit) text = t('sale.limit_held', { held: num(held), limit: num(s.per_user_limit) });
  else if (status === 'open') enabled = true;
  else if (status === 'upcoming') text = t('sale.not_yet');
  else text = t(`status.${status}`);
  setText(el.buy, text);
  el.buy.disabled = !enabled;
  el.buy.setAttribute('aria-busy', b?.busy ? 'true' : 'false');
}

/** "Pay by …" is old news once the order is paid or cancelled. */
export function forgetOrdered(saleId) {
  const b = buying.get(saleId);
  if (b?.result?.ok) b.result = null;
}

/** The words for an order the server refused. */
function orderFailure(err, s) {
  switch (err.code) {
    case 'limit_reached': return () => t('sale.err.limit_reached', { limit: num(s.per_user_limit) });
    case 'insufficient_points': return () => t('sale.err.insufficient_points', { balance: points(extras.points?.balance ?? 0) });
    case 'rate_limited': return () => t('sale.err.rate_limited', { seconds: num(err.retryAfter ?? 1) });
    case 'invalid_input':
      if (err.field === 'points') return () => t('sale.err.points');
      return () => err.text;
    default: {
      const key = `sale.err.${err.code}`;
      return () => (t(key) === key ? err.text : t(key));
    }
  }
}

async function placeOrder(id) {
  const s = saleById(id);
  const el = saleCardOf(id);
  if (!s || !el) return;
  if (!session.signedIn) {
    askToLogIn();
    return;
  }
  const prev = buying.get(id);
  if (prev?.busy) return;
  const q = quote(s, el);
  if (q.error) {
    el.points.focus();
    return;
  }
  const body = {};
  if (q.coupon) body.coupon_id = q.coupon.id;
  if (q.points > 0) body.points = q.points;
  const fields = JSON.stringify(body);
  const attempt = prev?.key && prev.fields === fields ? prev : { fields, key: newId() };
  attempt.busy = true;
  attempt.result = null;
  buying.set(id, attempt);
  updateSaleCard(id);
  const started = serverNow();
  let lost = false;
  try {
    let order;
    // One retry after no answer, with the same key: one order either way.
    for (let round = 0; ; round++) {
      try {
        order = await api(session, 'POST', `/api/v1/sales/${id}/orders`, body, { 'Idempotency-Key': attempt.key });
        break;
      } catch (err) {
        // After a lost answer the first request may have placed the order,
        // and the server checks the coupon and points before it replays a
        // key: the retry is then refused for what that order holds. Look.
        const mine = lost && ['reserved', 'insufficient_points'].includes(err.code) ? await lostOrder(id, body, started) : null;
        if (mine) {
          order = mine;
          break;
        }
        if (err.code !== 'network' || round >= 1) throw err;
        lost = true;
      }
    }
    attempt.key = null;
    attempt.result = {
      ok: true,
      text: () => t('sale.ordered', { seq: num(order.seq), payable: won(order.payable_amount), until: dateTime(order.expires_at) }),
    };
    showOrder(order);
    el.coupon.value = '';
    el.points.value = '';
    // The coupon is reserved and the points held now: the form follows.
    loadShopperExtras();
    loadSales();
  } catch (err) {
    if (err.code === 'unauthorized') {
      signOut();
      return;
    }
    // An answer refuses this attempt: the next press is a new one. No answer
    // (network, 5xx) or 429 (nothing taken): the same key again.
    if (err.code !== 'network' && err.code !== 'rate_limited' && err.status < 500) attempt.key = null;
    attempt.result = { ok: false, text: orderFailure(err, s) };
    if (['sold_out', 'not_open', 'ended', 'paused', 'not_found'].includes(err.code)) loadSales();
    if (err.code === 'limit_reached') loadOrders();
    if (['reserved', 'already_used', 'expired', 'not_yet_valid', 'below_min_order', 'not_found', 'insufficient_points'].includes(err.code)) {
      loadShopperExtras();
    }
  } finally {
    attempt.busy = false;
    updateSaleCard(id);
  }
}

/** The pending order of this sale that a request whose answer was lost
 * placed: the one holding its coupon, or its points placed since it started. */
async function lostOrder(saleId, body, since) {
  let r;
  try {
    r = await api(session, 'GET', '/api/v1/me/orders?limit=20');
  } catch {
    return null;
  }
  return r.orders.find((o) => o.sale_id === saleId && o.status === 'pending_payment'
    && (body.coupon_id ? o.coupon_id === body.coupon_id
      : o.points_used === body.points && Date.parse(o.created_at) >= since - 60_000)) ?? null;
}

/** My available coupons and my points, for the form. */
export async function loadShopperExtras() {
  if (!session.signedIn) return;
  const gen = extras.gen;
  let wallet;
  let view;
  try {
    [wallet, view] = await Promise.all([
      api(session, 'GET', '/api/v1/me/coupons?status=available&limit=200'),
      api(session, 'GET', '/api/v1/me/points'),
    ]);
  } catch (err) {
    if (err.code === 'unauthorized') signOut();
    return;
  }
  const coupons = [];
  for (const c of wallet.coupons) coupons.push({ ...c, name: await campaignName(c.campaign_id) });
  if (gen !== extras.gen) return;
  extras.coupons = coupons;
  extras.points = view;
  updateSaleCards();
}
