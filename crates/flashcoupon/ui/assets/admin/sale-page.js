// A time sale's page for admins: its stock and status (live over SSE), its
// orders by status as bars, revenue, discounts and points given, when it
// sold out, orders per minute (read again as the stock moves, and every 5 s
// for payments);
// pause/resume, and a change of stock or end, with 409
// quantity_below_issued said at the field.

import { $, dateTime, h, num, points, t, toast, won } from '../common.js';
import { watchSale } from '../live.js';
import { drawNothing, drawPerMinute } from './charts.js';
import { call } from './console.js';
import { int, MAX_TOTAL, time, toLocalInput } from './form.js';
import { toggleSalePause } from './sales.js';

/** How often the page reads the sale and its summary again: a payment
 * moves the summary but not the stock, and the stream may be down. */
const PAGE_POLL_MS = 5000;
/** What the sale's stream says of it. */
const STREAMED = ['status', 'total_quantity', 'remaining_quantity', 'sold_count', 'paused', 'starts_at', 'ends_at'];
const ORDER_STATUSES = ['pending_payment', 'paid', 'expired', 'cancelled', 'refunded'];

/** The open sale page: {id, sale, summary, missing, filled, saving, chart,
 * live, last (the stream's last snapshot), reading, again, stop()}. */
let saleDash = null;

export const salePageScreen = {
  section: 'sale-view',
  match: (hash) => hash.match(/^#\/sale\/([\w-]+)$/),
  open: (m) => openSale(m[1]),
  leave() {
    saleDash?.stop();
    saleDash = null;
  },
  relabel: renderSale,
};

export function setupSalePage() {
  $('sale-pause').addEventListener('click', () => saleDash?.sale && toggleSalePause(saleDash.sale, () => saleDash && refreshSale(saleDash)));
  $('sale-edit').addEventListener('submit', editSale);
}

function openSale(id) {
  const d = {
    id, sale: null, summary: null, missing: false, filled: false, saving: false, stopped: false, timer: null,
    live: false, last: null, reading: false, again: false,
    chart: ORDER_STATUSES.map((status) => {
      const bar = {
        status,
        label: h('span', { class: 'label' }),
        fill: h('span', { class: `fill s-${status}` }),
        n: h('span', { class: 'n', 'data-testid': 'sale-chart-count' }),
      };
      bar.item = h('li', { 'data-status': status, 'data-testid': 'sale-chart-row' },
        bar.label, h('span', { class: 'track', 'aria-hidden': 'true' }, bar.fill), bar.n);
      return bar;
    }),
    stop() {
      d.stopped = true;
      stopStream();
      clearTimeout(d.timer);
    },
  };
  saleDash = d;
  const stopStream = watchSale(id, (snapshot) => {
    if (d.stopped) return;
    d.last = Object.fromEntries(STREAMED.map((k) => [k, snapshot[k]]));
    if (!d.sale) return;
    Object.assign(d.sale, d.last);
    renderSale();
    // The stock moved: an order placed, cancelled or expired.
    readSummary(d);
  }, (live) => {
    d.live = live;
  });
  for (const id of ['sale-title', 'sale-status', 'sale-pause', 'sale-product', 'sale-window', 'sale-edit-result', 'sale-edit-error']) $(id).textContent = '';
  for (const k of ['ordered', 'remaining', 'sold', 'revenue', 'discount', 'points', 'sold-out']) $(`skpi-${k}`).textContent = '–';
  $('sale-edit').reset();
  clearSaleEdit();
  $('sale-summary-note').hidden = true;
  $('sale-chart').replaceChildren(...d.chart.map((b) => b.item));
  $('sale-curve').replaceChildren();
  const tick = async () => {
    await refreshSale(d);
    if (!d.stopped) d.timer = setTimeout(tick, PAGE_POLL_MS);
  };
  tick();
}

/** The sale, then its summary; a summary the server cannot give yet leaves the stock shown. */
async function refreshSale(d) {
  let sale;
  try {
    sale = await call('GET', `/api/v1/sales/${d.id}`);
  } catch (err) {
    if (saleDash !== d) return;
    if (err.code === 'not_found') {
      toast(err.text, 'error');
      location.hash = '#/sales';
    } else if (err.code !== 'network') {
      toast(err.text, 'error');
    }
    return;
  }
  if (saleDash !== d) return;
  // The stream is newer than a read that may have started before its last
  // change (it sends only changes: an older read would stay).
  d.sale = d.live && d.last ? { ...sale, ...d.last } : sale;
  if (!d.filled) fillSaleEdit(d);
  await readSummary(d);
}

/** The summary, read again (once more after the read in flight, if one is). */
async function readSummary(d) {
  if (d.reading) {
    d.again = true;
    return;
  }
  d.reading = true;
  do {
    d.again = false;
    try {
      d.summary = await call('GET', `/api/v1/admin/sales/${d.id}/summary`);
      d.missing = false;
    } catch {
      d.missing = true;
    }
    if (saleDash !== d) return;
    renderSale();
  } while (d.again);
  d.reading = false;
}

function renderSale() {
  const d = saleDash;
  const s = d?.sale;
  if (!s) return;
  $('sale-title').textContent = s.name;
  $('sale-status').textContent = t(`status.${s.status}`);
  $('sale-status').className = `badge status-${s.status}`;
  $('sale-pause').textContent = s.paused ? t('admin.resume') : t('admin.pause');
  $('sale-product').textContent = t('sdash.product', {
    product: s.product.name, sku: s.product.sku, list: won(s.product.list_price), price: won(s.sale_price),
  });
  $('sale-window').textContent = t('sdash.window', {
    from: dateTime(s.starts_at), until: dateTime(s.ends_at), limit: num(s.per_user_limit), ttl: num(s.payment_ttl_secs),
  });
  $('skpi-ordered').textContent = `${num(s.sold_count)} / ${num(s.total_quantity)}`;
  $('skpi-remaining').textContent = num(s.remaining_quantity);
  $('sale-fill').style.width = `${(100 * s.sold_count) / Math.max(1, s.total_quantity)}%`;
  $('sale-bar').setAttribute('aria-valuemax', String(s.total_quantity));
  $('sale-bar').setAttribute('aria-valuenow', String(s.sold_count));
  $('sale-bar').setAttribute('aria-label', `${t('sdash.ordered')} ${s.sold_count} / ${s.total_quantity}`);

  const m = d.summary;
  $('sale-summary-note').hidden = !d.missing;
  $('sale-summary-note').textContent = d.missing ? t('sdash.no_summary') : '';
  $('skpi-sold').textContent = m ? num(m.units_sold) : '–';
  $('skpi-revenue').textContent = m ? won(m.revenue) : '–';
  $('skpi-discount').textContent = m ? won(m.discount_total) : '–';
  $('skpi-points').textContent = m ? points(m.points_total) : '–';
  $('skpi-sold-out').textContent = !m ? '–' : m.sold_out_at ? dateTime(m.sold_out_at) : t('sdash.not_sold_out');
  const counts = Object.fromEntries(ORDER_STATUSES.map((st) => [st, m?.orders?.[st] ?? 0]));
  const top = Math.max(1, ...Object.values(counts));
  for (const b of d.chart) {
    b.label.textContent = t(`order.${b.status}`);
    b.n.textContent = m ? num(counts[b.status]) : '–';
    b.fill.style.width = `${(100 * counts[b.status]) / top}%`;
  }
  $('sale-chart').setAttribute('aria-label', t('sdash.chart_label', {
    counts: ORDER_STATUSES.map((st) => `${t(`order.${st}`)} ${num(counts[st])}`).join(', '),
  }));
  // While the sale runs, the curve runs on to now.
  if (m?.ordered_per_minute) drawPerMinute($('sale-curve'), m.ordered_per_minute, { title: t('sdash.per_minute'), now: s.status === 'open' ? Date.now() : null });
  else if (m) drawNothing($('sale-curve'));
}

function fillSaleEdit(d) {
  $('sale-edit-total').value = String(d.sale.total_quantity);
  $('sale-edit-ends').value = toLocalInput(d.sale.ends_at);
  d.filled = true;
}

/** The edit form's inputs, by the API's field names. */
const SALE_EDIT_FIELDS = { total_quantity: 'sale-edit-total', ends_at: 'sale-edit-ends' };

function clearSaleEdit() {
  for (const id of Object.values(SALE_EDIT_FIELDS)) {
    $(`${id}-error`).textContent = '';
    $(id).removeAttribute('aria-invalid');
  }
  $('sale-edit-error').textContent = '';
}

function showSaleEditError(key, message) {
  const id = SALE_EDIT_FIELDS[key];
  $(`${id}-error`).textContent = message;
  $(id).setAttribute('aria-invalid', 'true');
  $(id).focus();
}

/** Change the stock or the end. The stock is checked by the server only:
 * orders move it while the page is open, so only the server knows how far
 * it can go down now. */
async function editSale(e) {
  e.preventDefault();
  const d = saleDash;
  if (!d?.sale || d.saving) return;
  clearSaleEdit();
  $('sale-edit-result').textContent = '';
  $('sale-edit-result').className = 'result';
  const errors = {};
  const total = int($('sale-edit-total'), 1, MAX_TOTAL, errors, 'total_quantity');
  const ends = time($('sale-edit-ends'), errors, 'ends_at');
  if (ends && Date.parse(ends) <= Date.parse(d.sale.starts_at)) errors.ends_at = t('v.sale_ends_after_starts');
  const bad = Object.entries(errors);
  if (bad.length) {
    for (const [k, msg] of bad.reverse()) showSaleEditError(k, msg);
    return;
  }
  const body = {};
  if (total !== d.sale.total_quantity) body.total_quantity = total;
  // The input holds whole seconds: compare at that precision.
  if (Math.floor(Date.parse(ends) / 1000) !== Math.floor(Date.parse(d.sale.ends_at) / 1000)) body.ends_at = ends;
  if (Object.keys(body).length === 0) {
    $('sale-edit-result').textContent = t('sdash.nothing');
    return;
  }
  d.saving = true;
  $('sale-edit-save').disabled = true;
  try {
    d.sale = await call('PATCH', `/api/v1/sales/${d.id}`, body);
    if (saleDash !== d) return;
    fillSaleEdit(d);
    renderSale();
    $('sale-edit-result').textContent = t('sdash.updated');
    $('sale-edit-result').className = 'result ok';
  } catch (err) {
    if (saleDash !== d) return;
    if (err.code === 'quantity_below_issued') {
      // Read how many are ordered now, and say how far it can go down.
      await refreshSale(d);
      showSaleEditError('total_quantity', t('v.below_sold', { sold: num(d.sale.sold_count) }));
    } else if (SALE_EDIT_FIELDS[err.field]) {
      showSaleEditError(err.field, err.text);
    } else {
      $('sale-edit-error').textContent = err.text;
    }
  } finally {
    d.saving = false;
    $('sale-edit-save').disabled = false;
  }
}
