// The admin's time sales (타임세일): every sale with its status, prices,
// units ordered and left, and window, read again every 3 s while shown;
// pause/resume, a new sale's form, and a page per sale.

import { $, dateTime, h, num, t, toast, won } from '../common.js';
import { call } from './console.js';
import { showSaleForm } from './sale-form.js';

/** How often the list reads the sales again. */
const SALES_POLL_MS = 3000;

let salesList = [];
/** What the list shows, so a poll that changes nothing redraws nothing. */
let salesShown = '';
/** The list's poll: its generation (a new visit ends the old poll) and timer. */
let salesWatch = 0;
let salesTimer = null;

export const salesScreen = {
  section: 'sales-view',
  match: (hash) => hash === '#/sales',
  open: openSales,
  leave() {
    salesWatch++;
    clearTimeout(salesTimer);
  },
  relabel() {
    renderSales(true);
    $('sale-form-host').replaceChildren();
  },
};

export function setupSales() {
  $('new-sale').addEventListener('click', () => showSaleForm(loadSales));
  $('sales-refresh').addEventListener('click', loadSales);
}

function openSales() {
  const gen = ++salesWatch;
  const tick = async () => {
    await loadSales();
    if (gen === salesWatch && location.hash === '#/sales') salesTimer = setTimeout(tick, SALES_POLL_MS);
  };
  clearTimeout(salesTimer);
  salesShown = '';
  tick();
}

async function loadSales() {
  try {
    salesList = (await call('GET', '/api/v1/sales')).sales;
  } catch (err) {
    if (err.code !== 'network') toast(err.text, 'error');
    return;
  }
  renderSales();
}

function renderSales(force = false) {
  const shown = JSON.stringify(salesList);
  if (!force && shown === salesShown) return;
  salesShown = shown;
  // A redraw keeps the focus on the same button of the same row.
  const active = document.activeElement;
  const row = active?.closest?.('tr[data-sale]');
  const focus = row ? [row.dataset.sale, active.dataset.testid] : null;
  const rows = salesList.map((s) => h('tr', { 'data-sale': s.id, 'data-testid': 'sale-row' },
    h('td', {}, h('a', { href: `#/sale/${s.id}` }, s.name),
      h('div', { class: 'muted small' }, `${s.product.name} · ${s.product.sku}`)),
    h('td', {}, h('span', { class: `badge status-${s.status}`, 'data-testid': 'sale-row-status' }, t(`status.${s.status}`))),
    h('td', { class: 'num' }, won(s.sale_price), h('div', { class: 'muted small' }, won(s.product.list_price))),
    h('td', { class: 'num', 'data-testid': 'sale-row-sold' }, `${num(s.sold_count)} / ${num(s.total_quantity)}`),
    h('td', { class: 'num', 'data-testid': 'sale-row-remaining' }, num(s.remaining_quantity)),
    h('td', { class: 'small' }, `${dateTime(s.starts_at)} – ${dateTime(s.ends_at)}`),
    h('td', {},
      h('div', { class: 'row' },
        h('a', { href: `#/sale/${s.id}`, 'data-testid': 'open-sale' }, t('sales.summary')),
        h('button', { type: 'button', class: 'secondary', 'data-testid': 'sale-row-pause', onclick: () => toggleSalePause(s, loadSales) },
          s.paused ? t('admin.resume') : t('admin.pause'))))));
  $('sale-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 7, class: 'muted' }, t('sales.admin_empty')))]));
  if (focus) $('sale-rows').querySelector(`tr[data-sale="${focus[0]}"] [data-testid="${focus[1]}"]`)?.focus();
}

/** Pause or resume a sale, then `then()` (the screen shown reads it again). */
export async function toggleSalePause(s, then) {
  try {
    await call('PATCH', `/api/v1/sales/${s.id}`, { paused: !s.paused });
  } catch (err) {
    toast(err.text, 'error');
  }
  then();
}
