// A campaign's live dashboard: issued against remaining (live over SSE),
// claims per second by outcome as stacked bars (this instance), issue
// latency, checkout and code-guess numbers, the campaign's summary across
// all instances (campaign-summary.js), and the winners in seq order with
// their CSV, the rows on screen read again every 5 s (winners.js).

import { $, h, num, t, toast } from '../common.js';
import { watchCampaign } from '../live.js';
import { openSummary, relabelSummary } from './campaign-summary.js';
import { issuanceText, togglePause } from './campaigns.js';
import { openCodes, renderCodes, startCodes } from './codes.js';
import { call } from './console.js';
import { downloadCsv } from './csv-download.js';
import { loadWinners, redrawWinners, refreshShownWinners } from './winners.js';

const SVG = 'http://www.w3.org/2000/svg';
const OUTCOMES = ['issued', 'replayed', 'sold_out', 'limit_reached', 'refused', 'rate_limited', 'errors'];
const CHART_SECONDS = 120;
/** How often the winners on screen are read again for their coupons' status. */
const WINNERS_REFRESH_MS = 5000;

/** The open dashboard: {id, campaign, stats, shown, dense, max, more, job, stop()}. */
let dash = null;

export const dashboardScreen = {
  section: 'dash-view',
  // `#/campaign/{id}/codes`: the same dashboard, at its codes panel.
  match: (hash) => hash.match(/^#\/campaign\/([\w-]+)(\/codes)?$/),
  open: (m) => openDashboard(m[1], Boolean(m[2])),
  leave() {
    dash?.stop();
    dash = null;
  },
  relabel() {
    if (!dash) return;
    renderStock();
    renderCodes(dash);
    if (dash.stats) renderStats();
    redrawWinners(dash);
    renderLegend();
    relabelSummary();
  },
};

export function setupDashboard() {
  $('dash-pause').addEventListener('click', () => dash && togglePause(dash.campaign, () => dash && refreshDashboard(dash)));
  $('more').addEventListener('click', () => {
    const d = dash;
    if (d?.more != null) loadWinners(d, d.more, () => dash === d).catch((err) => toast(err.text, 'error'));
  });
  $('csv').addEventListener('click', () => dash && downloadCsv(`/api/v1/admin/campaigns/${dash.id}/winners.csv`, `winners-${dash.id}.csv`, $('csv')));
  $('codes-csv').addEventListener('click', () => dash && downloadCsv(`/api/v1/admin/campaigns/${dash.id}/codes.csv`, `codes-${dash.id}.csv`, $('codes-csv')));
  $('codes-form').addEventListener('submit', (e) => startCodes(e, dash));
}

async function openDashboard(id, atCodes = false) {
  let campaign;
  try {
    campaign = await call('GET', `/api/v1/campaigns/${id}`);
  } catch (err) {
    toast(err.text, 'error');
    location.hash = '#/';
    return;
  }
  // The admin may have moved on while the campaign loaded.
  if (![`#/campaign/${id}`, `#/campaign/${id}/codes`].includes(location.hash)) return;
  dash?.stop();
  const d = {
    id, campaign, stats: null, stopped: false, busy: false,
    // Winners shown, by seq; `dense` is the highest seq with none missing
    // below it: polls read on from there, since a lower seq can commit
    // after a higher one while the drop runs.
    shown: new Map(), dense: 0, max: 0, more: null, winnersReadAt: Date.now(),
    // The code job shown (unique-codes campaigns), and its poll.
    job: null, jobTimer: null,
    stop() {
      d.stopped = true;
      stopStream();
      stopSummary();
      clearTimeout(d.timer);
      clearTimeout(d.jobTimer);
    },
  };
  const stopStream = watchCampaign(id, (snapshot) => {
    if (dash !== d) return;
    Object.assign(d.campaign, snapshot);
    renderStock();
  });
  dash = d;
  const stopSummary = openSummary(campaign);
  // One refresh at a time: the next starts a second after the last ended.
  const tick = async () => {
    await refreshDashboard(d);
    if (!d.stopped) d.timer = setTimeout(tick, 1000);
  };
  $('winners').replaceChildren();
  renderLegend();
  renderStock();
  openCodes(d, atCodes);
  tick();
}

function renderLegend() {
  $('legend').replaceChildren(...OUTCOMES.map((o) => h('li', {}, h('span', { class: `swatch o-${o}` }), t(`outcome.${o}`))));
}

function renderStock() {
  const c = dash.campaign;
  $('dash-title').textContent = c.name;
  $('dash-status').textContent = t(`status.${c.status}`);
  $('dash-status').className = `badge status-${c.status}`;
  $('dash-pause').textContent = c.paused ? t('admin.resume') : t('admin.pause');
  $('kpi-issued').textContent = num(c.issued_count);
  $('kpi-remaining').textContent = num(c.remaining_quantity);
  $('kpi-total').textContent = num(c.total_quantity);
  $('dash-fill').style.width = `${(100 * c.issued_count) / Math.max(1, c.total_quantity)}%`;
  $('dash-bar').setAttribute('aria-valuemax', String(c.total_quantity));
  $('dash-bar').setAttribute('aria-valuenow', String(c.issued_count));
  $('dash-bar').setAttribute('aria-label', `${t('dash.issued')} ${c.issued_count} / ${c.total_quantity}`);
  const how = issuanceText(c);
  $('dash-issuance').hidden = !how;
  // "공유 코드: X" and "자동 지급: Y" say it; "고유 코드" alone needs its heading.
  $('dash-issuance').textContent = c.issuance === 'codes' && !c.trigger ? `${t('form.issuance')}: ${how}` : how;
}

async function refreshDashboard(d) {
  if (dash !== d || d.busy) return;
  d.busy = true;
  try {
    const s = await call('GET', `/api/v1/admin/campaigns/${d.id}/stats?seconds=${CHART_SECONDS}`);
    if (dash !== d) return;
    Object.assign(d.campaign, s.campaign);
    d.stats = s.claims;
    $('kpi-reserved').textContent = num(s.checkout.reserved);
    $('kpi-used').textContent = num(s.checkout.used);
    // Unknown or used codes tried, and tries refused for guessing: a sudden
    // rise is somebody enumerating codes.
    $('kpi-guesses').textContent = `${num(s.code_guesses.failed)} / ${num(s.code_guesses.refused)}`;
    renderStock();
    renderStats();
    const current = () => dash === d;
    await loadWinners(d, d.dense, current);
    if (Date.now() - d.winnersReadAt >= WINNERS_REFRESH_MS) {
      d.winnersReadAt = Date.now();
      await refreshShownWinners(d, current);
    }
  } catch (err) {
    if (err.code !== 'network' && dash === d) toast(err.text, 'error');
  } finally {
    d.busy = false;
  }
}

function ms(v) {
  return v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(v >= 10 ? 1 : 2)} ms`;
}

function renderStats() {
  const s = dash.stats;
  $('outcomes').replaceChildren(...OUTCOMES.map((o) => h('tr', { 'data-outcome': o },
    h('th', { scope: 'row' }, h('span', { class: `swatch o-${o}` }), t(`outcome.${o}`)),
    h('td', { class: 'num' }, num(s.totals[o])))));
  const l = s.latency;
  $('kpi-p50').textContent = l.count ? ms(l.p50_ms) : '–';
  $('kpi-p99').textContent = l.count ? ms(l.p99_ms) : '–';
  $('kpi-max').textContent = l.count ? ms(l.max_ms) : '–';
  $('kpi-count').textContent = num(l.count);
  drawChart(s.per_second);
}

/** Stacked bars, one per second, oldest on the left. */
function drawChart(series) {
  const n = series.issued.length;
  const totals = Array.from({ length: n }, (_, i) => OUTCOMES.reduce((sum, o) => sum + series[o][i], 0));
  const top = Math.max(1, ...totals);
  const width = 600;
  const height = 180;
  const barW = width / n;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const recent = totals.slice(-10);
  svg.setAttribute('aria-label', t('dash.chart_label', { avg: num(Math.round(recent.reduce((a, b) => a + b, 0) / recent.length)), max: num(top) }));
  for (let i = 0; i < n; i++) {
    let y = height;
    for (const o of OUTCOMES) {
      const v = series[o][i];
      if (!v) continue;
      const bh = (v / top) * height;
      y -= bh;
      const r = document.createElementNS(SVG, 'rect');
      r.setAttribute('x', String(i * barW));
      r.setAttribute('y', String(y));
      r.setAttribute('width', String(Math.max(barW - 0.3, 0.5)));
      r.setAttribute('height', String(bh));
      r.setAttribute('class', `o-${o}`);
      svg.append(r);
    }
  }
  const axis = document.createElementNS(SVG, 'line');
  for (const [k, v] of Object.entries({ x1: 0, x2: width, y1: height, y2: height, stroke: '#8c959f' })) axis.setAttribute(k, String(v));
  svg.append(axis);
  // Axis labels in HTML: the SVG stretches to the box, text would stretch with it.
  $('chart').replaceChildren(
    h('div', { class: 'muted small' }, `${num(top)}/s`),
    svg,
    h('div', { class: 'row spread muted small' },
      h('span', {}, t('time.minutes_ago', { n: Math.round(n / 60) })), h('span', {}, t('time.now'))));
}
