// My orders (내 주문) under the sales: each with its amount and what paid
// it, a countdown to its payment deadline, and Pay (test payments) and
// Cancel; after either, the wallet, points and stock follow.

import { $, api, countdown, dateTime, h, num, points, serverNow, setText, showResult, t, won } from '../common.js';
import { forgetOrdered, loadShopperExtras } from './order-form.js';
import { currentView, onSignOut, onViewChange, session, signOut } from './page.js';
import { loadSales } from './sales-feed.js';
import { saleById, updateSaleCards } from './sales.js';
import { loadWallet } from './wallet.js';

/** My orders (newest first); null until read. `gen` counts sessions, so an
 * answer read for a session since ended is dropped. */
const mine = { orders: null, gen: 0 };
/** Per order shown, its elements; orders being paid or cancelled; the last
 * pay or cancel result shown on each. */
const orderItems = new Map();
const orderBusy = new Map();
const orderResults = new Map();
/** The server answered `test_payments_off`: no Pay buttons from then on. */
let testPaymentsOff = false;

onSignOut(() => {
  Object.assign(mine, { orders: null, gen: mine.gen + 1 });
  orderResults.clear();
  orderItems.clear();
  $('order-list').replaceChildren();
  renderOrders();
});

onViewChange((view) => {
  if (view === 'sales' && session.signedIn) loadOrders();
});

/** How many of my orders of this sale count towards its limit (pending or paid). */
export function ordersHeld(saleId) {
  return (mine.orders ?? []).filter((o) => o.sale_id === saleId && ['pending_payment', 'paid'].includes(o.status)).length;
}

export function hasPendingOrder() {
  return (mine.orders ?? []).some((o) => o.status === 'pending_payment');
}

export async function loadOrders() {
  if (!session.signedIn) return;
  const gen = mine.gen;
  let r;
  try {
    r = await api(session, 'GET', '/api/v1/me/orders?limit=50');
  } catch (err) {
    if (err.code === 'unauthorized') signOut();
    return;
  }
  if (gen !== mine.gen) return;
  mine.orders = r.orders;
  renderOrders();
}

/** An order just placed, paid or cancelled: in the list at once. */
export function showOrder(o) {
  const list = mine.orders ?? [];
  const i = list.findIndex((x) => x.id === o.id);
  if (i >= 0) list[i] = o;
  else list.unshift(o);
  mine.orders = list;
  renderOrders();
}

/** Items are made once per order and updated in place (the countdown ticks). */
export function renderOrders() {
  const box = $('my-orders');
  box.hidden = !session.signedIn || mine.orders === null;
  updateSaleCards();
  if (box.hidden) return;
  const ids = new Set(mine.orders.map((o) => o.id));
  for (const [id, el] of orderItems) {
    if (!ids.has(id)) {
      el.item.remove();
      orderItems.delete(id);
    }
  }
  const list = $('order-list');
  if (mine.orders.length === 0) {
    list.replaceChildren(h('li', { class: 'muted' }, t('orders.empty')));
    return;
  }
  const wanted = mine.orders.map((o) => orderItems.get(o.id)?.item ?? orderItem(o));
  const same = wanted.length === list.children.length && wanted.every((c, i) => list.children[i] === c);
  if (!same) list.replaceChildren(...wanted);
  updateOrders();
}

function orderItem(o) {
  const el = {
    title: h('strong', { 'data-testid': 'order-sale' }),
    badge: h('span', { class: 'badge', 'data-testid': 'order-status' }),
    amount: h('p', { class: 'order-amount', 'data-testid': 'order-payable' }),
    breakdown: h('p', { class: 'muted small', 'data-testid': 'order-breakdown' }),
    clock: h('p', { class: 'clock small', 'data-testid': 'order-expires' }),
    pay: h('button', { type: 'button', 'data-testid': 'order-pay', onclick: () => settleOrder(o.id, 'pay') }),
    cancel: h('button', { type: 'button', class: 'secondary', 'data-testid': 'order-cancel', onclick: () => settleOrder(o.id, 'cancel') }),
    result: h('p', { class: 'result', role: 'status', 'aria-live': 'polite', 'data-testid': 'order-settle-result' }),
    meta: h('p', { class: 'muted small' }),
  };
  el.actions = h('div', { class: 'row' }, el.pay, el.cancel);
  el.item = h('li', { 'data-order': o.id, 'data-testid': 'order' },
    h('div', { class: 'row spread' }, el.title, el.badge), el.amount, el.breakdown, el.clock, el.actions, el.result, el.meta);
  orderItems.set(o.id, el);
  return el.item;
}

/** Redraw every order shown (a tick, a sale read that names them). */
export function updateOrders() {
  for (const o of mine.orders ?? []) updateOrder(o);
}

function updateOrder(o) {
  const el = orderItems.get(o.id);
  if (!el) return;
  el.item.dataset.status = o.status;
  setText(el.title, saleById(o.sale_id)?.name ?? '');
  setText(el.badge, t(`order.${o.status}`));
  el.badge.className = `badge order-${o.status}`;
  setText(el.amount, t('order.payable', { amount: won(o.payable_amount) }));
  setText(el.breakdown, [
    t('order.unit', { amount: won(o.unit_price) }),
    o.coupon_discount ? t('order.coupon', { amount: won(o.coupon_discount) }) : null,
    o.points_used ? t('order.points', { amount: points(o.points_used) }) : null,
    t('order.seq', { seq: num(o.seq) }),
  ].filter(Boolean).join(' · '));
  const pending = o.status === 'pending_payment';
  const left = Date.parse(o.expires_at) - serverNow();
  el.clock.hidden = !pending;
  setText(el.clock, !pending ? '' : left > 0 ? t('order.expires_in', { time: countdown(left) }) : t('order.overdue'));
  const busy = orderBusy.get(o.id);
  // Past its deadline an order can be neither paid nor cancelled: it expires.
  const open = pending && (left > 0 || Boolean(busy));
  el.actions.hidden = !open;
  el.pay.hidden = testPaymentsOff;
  setText(el.pay, busy === 'pay' ? t('order.paying') : t('order.pay'));
  setText(el.cancel, busy === 'cancel' ? t('order.cancelling') : t('order.cancel'));
  el.pay.disabled = Boolean(busy);
  el.cancel.disabled = Boolean(busy);
  el.pay.setAttribute('aria-busy', busy === 'pay' ? 'true' : 'false');
  el.cancel.setAttribute('aria-busy', busy === 'cancel' ? 'true' : 'false');
  showResult(el.result, orderResults.get(o.id));
  setText(el.meta, t('order.meta', { when: dateTime(o.created_at), id: o.id }));
}

/** Pay (test payments) or cancel an order of mine. */
async function settleOrder(id, action) {
  if (orderBusy.has(id)) return;
  if (action === 'cancel' && !window.confirm(t('order.confirm_cancel'))) return;
  orderBusy.set(id, action);
  orderResults.delete(id);
  renderOrders();
  try {
    const o = await api(session, 'POST', `/api/v1/orders/${id}/${action}`);
    orderResults.set(id, {
      ok: true,
      text: () => (action === 'pay' ? t('order.paid_ok', { amount: won(o.payable_amount) }) : t('order.cancelled_ok')),
    });
    orderBusy.delete(id);
    forgetOrdered(o.sale_id);
    showOrder(o);
  } catch (err) {
    if (err.code === 'unauthorized') {
      signOut();
      return;
    }
    if (err.code === 'test_payments_off') testPaymentsOff = true;
    orderResults.set(id, { ok: false, text: () => err.text });
    loadOrders();
  } finally {
    orderBusy.delete(id);
    renderOrders();
  }
  // The coupon and points moved with the order (used, or given back), and a
  // cancelled unit is back on sale: the form, the stock and the wallet follow.
  loadShopperExtras();
  loadSales();
  if (currentView() === 'wallet') loadWallet();
}
