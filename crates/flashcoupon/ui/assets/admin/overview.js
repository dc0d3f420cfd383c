// The overview (`#/overview`): every campaign with its stock and the claim
// answers of all instances, every time sale with its orders by status, and
// the cluster-wide totals with claims per second (from successive totals),
// read again every 3 s while on screen.

import { $, dateTime, h, num, t, toast } from '../common.js';
import { CLAIM_OUTCOMES, ClusterRate, drawClaims, rateText } from './charts.js';
import { call } from './console.js';

const OVERVIEW_POLL_MS = 3000;
const ORDER_STATUSES = ['pending_payment', 'paid', 'expired', 'cancelled', 'refunded'];

/** The overview on screen: {data, error, rate, shown (what the tables show), stopped, timer}. */
let view = null;

export const overviewScreen = {
  section: 'overview-view',
  match: (hash) => hash === '#/overview',
  open: openOverview,
  leave() {
    if (!view) return;
    view.stopped = true;
    clearTimeout(view.timer);
    document.removeEventListener('visibilitychange', view.onVisible);
    view = null;
  },
  relabel() {
    if (view) render(view, true);
  },
};

function openOverview() {
  const v = { data: null, error: null, rate: new ClusterRate(), shown: '', stopped: false, timer: null, onVisible: null };
  view = v;
  for (const id of ['ov-claims-total', 'ov-issued', 'ov-rate', 'ov-orders']) $(id).textContent = '–';
  $('ov-as-of').textContent = '';
  $('ov-note').hidden = true;
  for (const id of ['ov-claims', 'ov-campaigns', 'ov-sales']) $(id).replaceChildren();
  const tick = async () => {
    if (!document.hidden) await readOverview(v);
    if (!v.stopped) v.timer = setTimeout(tick, OVERVIEW_POLL_MS);
  };
  v.onVisible = () => {
    if (!document.hidden && !v.stopped) {
      clearTimeout(v.timer);
      tick();
    }
  };
  document.addEventListener('visibilitychange', v.onVisible);
  tick();
}

async function readOverview(v) {
  try {
    const data = await call('GET', '/api/v1/admin/overview');
    if (v.stopped) return;
    v.data = data;
    v.error = null;
    v.rate.add(data.as_of, data.claims);
  } catch (err) {
    if (v.stopped) return;
    v.error = err;
    if (err.code !== 'network' && !v.data) toast(err.text, 'error');
  }
  render(v);
}

function render(v, force = false) {
  $('ov-note').hidden = !v.error;
  $('ov-note').textContent = v.error ? t('ov.unavailable', { error: v.error.text }) : '';
  const d = v.data;
  if (!d) return;
  $('ov-as-of').textContent = t('ov.as_of', { at: dateTime(d.as_of) });
  $('ov-claims-total').textContent = num(CLAIM_OUTCOMES.reduce((s, o) => s + (d.claims[o] ?? 0), 0));
  $('ov-issued').textContent = num(d.campaigns.reduce((s, c) => s + c.issued, 0));
  $('ov-rate').textContent = rateText(v.rate.perSecond());
  $('ov-orders').textContent = num(d.sales.reduce((s, x) => s + x.held, 0));
  drawClaims($('ov-claims'), d.claims);
  // The tables are redrawn only when they change: a link stays put under
  // the pointer and the focus while nothing moves.
  const shown = JSON.stringify([d.campaigns, d.sales]);
  if (!force && shown === v.shown) return;
  v.shown = shown;
  const status = (s) => h('span', { class: `badge status-${s}` }, t(`status.${s}`));
  const campaigns = d.campaigns.map((c) => h('tr', { 'data-campaign': c.id, 'data-testid': 'ov-campaign' },
    h('td', {}, h('a', { href: `#/campaign/${c.id}` }, c.name)),
    h('td', {}, status(c.status)),
    h('td', { class: 'num', 'data-testid': 'ov-issued-total' }, `${num(c.issued)} / ${num(c.total_quantity)}`),
    h('td', { class: 'num', 'data-testid': 'ov-remaining' }, num(c.remaining)),
    ...CLAIM_OUTCOMES.map((o) => h('td', { class: 'num', 'data-outcome': o }, num(c.claims[o] ?? 0)))));
  $('ov-campaigns').replaceChildren(...(campaigns.length ? campaigns
    : [h('tr', {}, h('td', { colspan: 4 + CLAIM_OUTCOMES.length, class: 'muted' }, t('ov.no_campaigns')))]));
  const sales = d.sales.map((s) => h('tr', { 'data-sale': s.id, 'data-testid': 'ov-sale' },
    h('td', {}, h('a', { href: `#/sale/${s.id}` }, s.name)),
    h('td', {}, status(s.status)),
    h('td', { class: 'num' }, `${num(s.held)} / ${num(s.total_quantity)}`),
    h('td', { class: 'num' }, num(s.remaining)),
    ...ORDER_STATUSES.map((st) => h('td', { class: 'num', 'data-order': st }, num(s.orders[st] ?? 0)))));
  $('ov-sales').replaceChildren(...(sales.length ? sales
    : [h('tr', {}, h('td', { colspan: 4 + ORDER_STATUSES.length, class: 'muted' }, t('ov.no_sales')))]));
}
