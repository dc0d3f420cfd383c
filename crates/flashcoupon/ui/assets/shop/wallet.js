// The wallet (내 쿠폰함): my coupons as cards, and for an available one a
// checkout form that previews the discount on an amount and spends it under
// one order id per form.

import { $, api, dateTime, discountText, h, newId, t, toast, won } from '../common.js';
import { campaignName } from './drops.js';
import { onViewChange, session, signOut } from './page.js';
import { loadPoints } from './points.js';

onViewChange((view) => {
  if (view === 'wallet' && session.signedIn) loadWallet();
});

/** My coupons and my points, afresh. */
export async function loadWallet() {
  loadPoints();
  const list = $('wallet-list');
  let w;
  try {
    w = await api(session, 'GET', '/api/v1/me/coupons?limit=200');
  } catch (err) {
    if (err.code === 'unauthorized') signOut();
    toast(err.text, 'error');
    return;
  }
  const items = [];
  for (const c of w.coupons) items.push(couponCard(c, await campaignName(c.campaign_id)));
  list.replaceChildren(...(items.length ? items : [h('p', { class: 'muted' }, t('wallet.empty'))]));
}

function couponCard(c, name) {
  // Cancelling a use is the shop's (its order system's) to do, not the shopper's.
  const form = c.status === 'available' ? checkoutForm(c) : null;
  return h('article', { class: `card coupon coupon-${c.status}`, 'data-coupon': c.id, 'data-testid': 'coupon' },
    h('div', { class: 'row spread' }, h('h2', {}, name), h('span', { class: `badge coupon-${c.status}`, 'data-testid': 'coupon-status' }, t(`coupon.${c.status}`))),
    h('p', { class: 'discount' }, discountText(c.discount)),
    h('p', { class: 'terms' }, [
      c.min_order_amount > 0 ? t('drop.min_order', { amount: won(c.min_order_amount) }) : null,
      t('wallet.seq', { seq: c.seq }),
    ].filter(Boolean).join(' · ')),
    h('p', { class: 'muted small' }, t('wallet.valid', { from: dateTime(c.valid_from), until: dateTime(c.valid_until) })),
    c.status === 'reserved'
      ? h('p', { class: 'small', 'data-testid': 'reserved-until' }, t('wallet.reserved_for', { order: c.order_id, until: dateTime(c.reserved_until) }))
      : c.order_id ? h('p', { class: 'muted small' }, t('wallet.used_on', { order: c.order_id })) : null,
    form);
}

function checkoutForm(c) {
  const amountId = `amount-${c.id}`;
  const amount = h('input', { id: amountId, type: 'number', min: 0, step: 1, inputmode: 'numeric', required: true, 'data-testid': 'order-amount' });
  const out = h('p', { class: 'result', role: 'status', 'aria-live': 'polite', 'data-testid': 'checkout-result' });
  // One order id per form: paying twice after a lost answer replays, never spends twice.
  const orderId = `WEB-${newId().slice(0, 12)}`;
  const read = () => {
    const n = Number(amount.value);
    if (amount.value === '' || !Number.isInteger(n) || n < 0) {
      out.textContent = t('v.range', { min: 0, max: won(1e12) });
      out.className = 'result bad';
      return null;
    }
    return n;
  };
  const preview = async () => {
    const n = read();
    if (n === null) return;
    try {
      const p = await api(session, 'POST', `/api/v1/coupons/${c.id}/preview`, { order_id: orderId, order_amount: n });
      out.textContent = t('checkout.result', { discount: won(p.discount_amount), payable: won(p.payable_amount) });
      out.className = 'result ok';
    } catch (err) {
      out.textContent = err.text;
      out.className = 'result bad';
    }
  };
  const pay = async (e) => {
    e.preventDefault();
    const n = read();
    if (n === null) return;
    const button = e.submitter;
    if (button) button.disabled = true;
    try {
      const r = await api(session, 'POST', `/api/v1/coupons/${c.id}/use`, { order_id: orderId, order_amount: n });
      toast(t('checkout.paid', { discount: won(r.discount_amount), payable: won(r.payable_amount) }), 'ok');
      loadWallet();
    } catch (err) {
      out.textContent = err.text;
      out.className = 'result bad';
      if (button) button.disabled = false;
    }
  };
  return h('form', { class: 'checkout', onsubmit: pay, novalidate: true },
    h('h3', {}, t('checkout.title')),
    h('label', { for: amountId }, t('checkout.amount')), amount,
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary', onclick: preview, 'data-testid': 'preview' }, t('checkout.preview')),
      h('button', { type: 'submit', 'data-testid': 'pay' }, t('checkout.pay'))),
    out);
}
