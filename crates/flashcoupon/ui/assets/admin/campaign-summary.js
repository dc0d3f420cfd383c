// A campaign's summary on its dashboard, from the record and every instance
// (GET /admin/campaigns/{id}/summary, read every 3 s while the page is on
// screen): coupons by status, the use rate, discount and order totals, first
// issue and sell-out, the issue curve, uses per day, claim answers by
// outcome, and claims per second across all instances (from successive
// totals: the per-second chart beside it counts this instance only).

import { $, dateTime, h, num, t, won } from '../common.js';
import { ClusterRate, CLAIM_OUTCOMES, drawClaims, drawPerDay, drawPerMinute, percentText, rateText } from './charts.js';
import { call } from './console.js';

const SUMMARY_POLL_MS = 3000;
const STATUSES = ['available', 'reserved', 'used', 'expired'];

/** The summary shown: {id, campaign, summary, error, rate, stopped, timer}. */
let shown = null;

/**
 * Start reading campaign `campaign.id`'s summary (the dashboard's campaign
 * object, kept up to date by the dashboard). Returns a function that stops.
 */
export function openSummary(campaign) {
  const s = { id: campaign.id, campaign, summary: null, error: null, rate: new ClusterRate(), stopped: false, timer: null };
  shown = s;
  clear();
  renderLegend();
  const tick = async () => {
    // A hidden tab reads nothing; it catches up when shown again.
    if (!document.hidden) await readSummary(s);
    if (!s.stopped) s.timer = setTimeout(tick, SUMMARY_POLL_MS);
  };
  const onVisible = () => {
    if (!document.hidden && !s.stopped) {
      clearTimeout(s.timer);
      tick();
    }
  };
  document.addEventListener('visibilitychange', onVisible);
  tick();
  return () => {
    s.stopped = true;
    clearTimeout(s.timer);
    document.removeEventListener('visibilitychange', onVisible);
    if (shown === s) shown = null;
  };
}

/** The summary shown has its words again (a new language). */
export function relabelSummary() {
  renderLegend();
  if (shown) render(shown);
}

async function readSummary(s) {
  try {
    const summary = await call('GET', `/api/v1/admin/campaigns/${s.id}/summary`);
    if (s.stopped) return;
    s.summary = summary;
    s.error = null;
    s.rate.add(summary.as_of, summary.claims);
  } catch (err) {
    if (s.stopped) return;
    s.error = err;
  }
  render(s);
}

function clear() {
  for (const k of ['issued', 'available', 'reserved', 'used', 'expired', 'discount', 'orders', 'first', 'sold-out', 'rate', 'use-rate']) {
    $(`csum-${k}`).textContent = '–';
  }
  $('csum-as-of').textContent = '';
  $('csum-note').hidden = true;
  $('csum-use-fill').style.width = '0%';
  for (const id of ['csum-issued-chart', 'csum-used-chart', 'csum-rate-chart', 'csum-claims']) $(id).replaceChildren();
}

function render(s) {
  const m = s.summary;
  $('csum-note').hidden = !s.error;
  $('csum-note').textContent = s.error ? t('csum.unavailable', { error: s.error.text }) : '';
  if (!m) return;
  $('csum-as-of').textContent = t('csum.as_of', { at: dateTime(m.as_of) });
  $('csum-issued').textContent = `${num(m.issued)} / ${num(m.total_quantity)}`;
  for (const st of STATUSES) $(`csum-${st}`).textContent = num(m[st]);
  $('csum-discount').textContent = won(m.discount_total);
  $('csum-orders').textContent = won(m.order_amount_total);
  $('csum-first').textContent = m.first_issued_at ? dateTime(m.first_issued_at) : t('csum.not_yet');
  $('csum-sold-out').textContent = m.sold_out_at ? dateTime(m.sold_out_at) : t('sdash.not_sold_out');
  $('csum-use-rate').textContent = percentText(m.use_rate);
  $('csum-use-fill').style.width = `${Math.min(100, Math.max(0, 100 * m.use_rate))}%`;
  const bar = $('csum-use-bar');
  bar.setAttribute('aria-valuenow', String(Math.round(100 * m.use_rate)));
  bar.setAttribute('aria-label', t('csum.use_rate_label', { rate: percentText(m.use_rate), used: num(m.used), issued: num(m.issued) }));
  // While the drop can still move, the curve runs on to now.
  const live = s.campaign.status === 'open' ? Date.parse(m.as_of) : null;
  drawPerMinute($('csum-issued-chart'), m.issued_per_minute, { title: t('csum.issue_curve'), now: live });
  drawPerDay($('csum-used-chart'), m.used_per_day, { title: t('csum.uses_per_day') });
  drawClaims($('csum-claims'), m.claims);
  $('csum-rate').textContent = rateText(s.rate.perSecond());
  s.rate.draw($('csum-rate-chart'));
}

function renderLegend() {
  $('csum-legend').replaceChildren(...CLAIM_OUTCOMES.map((o) => h('li', {}, h('span', { class: `swatch o-${o}` }), t(`outcome.${o}`))));
}
