// Time sales (타임세일): a card per sale with the list price struck
// through, the sale price, a countdown to its start or end, and its stock
// (kept current by sales-feed.js); each card holds "notify me" while the
// sale is upcoming (sale-notify.js) and its order form.

import { $, h, num, setText, t, won } from '../common.js';
import { orderForm, updateOrderForm } from './order-form.js';
import { notifyToggle, showNotify } from './sale-notify.js';
import { clockText, liveStatus, showStock, stockBar } from './stock.js';

/** Time sales by id, in the API's order (newest first), as last read or streamed. */
const sales = new Map();
/** Per sale card, the elements that change. */
const saleCards = new Map();

/** A sale as last read, or undefined. */
export function saleById(id) {
  return sales.get(id);
}

/** A sale card's elements, or undefined. */
export function saleCardOf(id) {
  return saleCards.get(id);
}

/** The sales as read (a list in the API's order). */
export function setSales(list) {
  sales.clear();
  for (const sale of list) sales.set(sale.id, sale);
}

/** The ids of the sales shown, in their order. */
export function saleIds() {
  return [...sales.keys()];
}

/** What a live stream says of a sale: `fields` replace those read before. */
export function patchSale(id, fields) {
  const sale = sales.get(id);
  if (!sale) return;
  Object.assign(sale, fields);
  updateSaleCard(id);
}

/** A new language: the cards' words again. */
export function relabelSales() {
  if (sales.size) renderSales();
}

/** Cards are made once per sale and updated in place, so a poll keeps what
 * the shopper typed and where the focus is. */
export function renderSales() {
  const list = $('sale-list');
  for (const [id, el] of saleCards) {
    if (!sales.has(id)) {
      el.card.remove();
      saleCards.delete(id);
    }
  }
  if (sales.size === 0) {
    list.replaceChildren(h('p', { class: 'muted', 'data-testid': 'sales-empty' }, t('sales.empty')));
    return;
  }
  const wanted = [...sales.values()].map((s) => saleCards.get(s.id)?.card ?? saleCard(s));
  const same = wanted.length === list.children.length && wanted.every((c, i) => list.children[i] === c);
  if (!same) list.replaceChildren(...wanted);
  updateSaleCards();
}

function saleCard(s) {
  const id = s.id;
  // Labels that change with the language: [element, key].
  const labels = [];
  const label = (node, key) => {
    labels.push([node, key]);
    return node;
  };
  const el = {
    title: h('h2', {}),
    badge: h('span', { class: 'badge', 'data-testid': 'sale-status' }),
    product: h('p', { class: 'product', 'data-testid': 'sale-product' }),
    listLabel: label(h('span', { class: 'muted small' }), 'sale.list_price'),
    listPrice: h('del', { 'data-testid': 'list-price' }),
    salePrice: h('strong', { class: 'sale-price', 'data-testid': 'sale-price' }),
    off: h('span', { class: 'badge off', 'data-testid': 'sale-off' }),
    terms: h('p', { class: 'terms' }),
    clock: h('p', { class: 'clock', 'data-testid': 'sale-countdown' }),
    stock: h('p', { class: 'stock', 'data-testid': 'sale-stock' }),
    ...stockBar(),
    ...notifyToggle(id),
    ...orderForm(id, label),
    labels,
  };
  el.card = h('article', { class: 'card drop sale', 'data-sale': id, 'data-testid': 'sale' },
    h('div', { class: 'row spread' }, el.title, el.badge),
    el.product,
    h('p', { class: 'prices' }, el.listLabel, el.listPrice, el.salePrice, el.off),
    el.terms, el.clock, el.bar, el.stock, el.notifyRow,
    el.form, el.loginRow, el.result);
  saleCards.set(id, el);
  return el.card;
}

/** `10분`, `90초`, `1시간 30분`: a payment window in words. */
function duration(secs) {
  const hours = Math.floor(secs / 3600);
  const minutes = Math.floor((secs % 3600) / 60);
  const seconds = secs % 60;
  return [
    hours ? t('time.hours', { n: num(hours) }) : null,
    minutes ? t('time.minutes', { n: num(minutes) }) : null,
    seconds ? t('time.seconds', { n: num(seconds) }) : null,
  ].filter(Boolean).join(' ');
}

/** Redraw every sale card (a tick, a new language, my orders or coupons moved). */
export function updateSaleCards() {
  for (const id of saleCards.keys()) updateSaleCard(id);
}

export function updateSaleCard(id) {
  const s = sales.get(id);
  const el = saleCards.get(id);
  if (!s || !el) return;
  for (const [node, key] of el.labels) setText(node, t(key));
  const status = liveStatus(s.status, s.starts_at, s.ends_at);
  el.card.dataset.status = status;
  setText(el.title, s.name);
  setText(el.badge, t(`status.${status}`));
  el.badge.className = `badge status-${status}`;
  setText(el.product, s.product.name);
  const cut = s.product.list_price > s.sale_price;
  el.listLabel.hidden = !cut;
  el.listPrice.hidden = !cut;
  el.off.hidden = !cut;
  setText(el.listPrice, won(s.product.list_price));
  setText(el.salePrice, won(s.sale_price));
  setText(el.off, t('sale.off', { percent: Math.floor((100 * (s.product.list_price - s.sale_price)) / s.product.list_price) }));
  setText(el.terms, [t('sale.per_user', { limit: num(s.per_user_limit) }), t('sale.pay_within', { time: duration(s.payment_ttl_secs) })].join(' · '));
  setText(el.clock, clockText(status, s.starts_at, s.ends_at, 'sale.opens_in', 'sale.ends_in'));
  showStock(el, s.remaining_quantity, s.total_quantity);
  showNotify(el, id, status);
  updateOrderForm(el, s, status);
}
