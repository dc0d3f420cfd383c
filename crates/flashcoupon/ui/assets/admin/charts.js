// The console's small charts, drawn the way the live dashboard draws its
// per-second bars: SVG columns over time (stacked by outcome, or one count a
// minute or a day with the gaps filled), horizontal bars by count, and the
// cluster-wide claim rate worked out from successive totals.

import { currentLang, h, num, t } from '../common.js';

const SVG = 'http://www.w3.org/2000/svg';
const MINUTE = 60_000;
const DAY = 86_400_000;
/** Bucket sizes a time chart may use, smallest first: it takes the first
 * that keeps it at or under `MAX_COLUMNS` columns. */
const MINUTE_STEPS = [MINUTE, 5 * MINUTE, 15 * MINUTE, 60 * MINUTE, 6 * 60 * MINUTE, DAY];
const DAY_STEPS = [DAY, 7 * DAY];
const MAX_COLUMNS = 120;
/** A short series is drawn over at least this many minutes or days (the
 * time before it as zeros), so one busy minute is a bar, not a wall. */
const MIN_MINUTES = 30;
const MIN_DAYS = 7;

/** The claim outcomes the summaries count, in the order they are drawn. */
export const CLAIM_OUTCOMES = ['issued', 'replayed', 'sold_out', 'limit_reached', 'not_open', 'ended', 'paused', 'rate_limited', 'unavailable'];

/**
 * Columns left to right in `host`, each a stack of `{value, cls}`
 * segments (its `title` shown on hover): the top value above, `from` and
 * `until` below. `label` names the chart for screen readers.
 */
export function drawColumns(host, columns, { label, top: topText, from, until, titles = [] }) {
  const totals = columns.map((segs) => segs.reduce((sum, s) => sum + s.value, 0));
  const top = Math.max(1, ...totals);
  const width = 600;
  const height = 140;
  const barW = width / Math.max(1, columns.length);
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'chart short');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  columns.forEach((segs, i) => {
    let y = height;
    for (const s of segs) {
      if (!s.value) continue;
      const bh = (s.value / top) * height;
      y -= bh;
      const r = document.createElementNS(SVG, 'rect');
      r.setAttribute('x', String(i * barW));
      r.setAttribute('y', String(y));
      r.setAttribute('width', String(Math.max(barW - Math.min(2, barW / 4), 0.5)));
      r.setAttribute('height', String(bh));
      r.setAttribute('class', s.cls);
      if (titles[i]) {
        const title = document.createElementNS(SVG, 'title');
        title.textContent = titles[i];
        r.append(title);
      }
      svg.append(r);
    }
  });
  const axis = document.createElementNS(SVG, 'line');
  for (const [k, v] of Object.entries({ x1: 0, x2: width, y1: height, y2: height, stroke: '#8c959f' })) axis.setAttribute(k, String(v));
  svg.append(axis);
  host.replaceChildren(
    h('div', { class: 'muted small' }, topText(top)),
    svg,
    h('div', { class: 'row spread muted small' }, h('span', {}, from), h('span', {}, until)));
}

/** `host` says there is nothing to draw yet. */
export function drawNothing(host) {
  host.replaceChildren(h('p', { class: 'muted small', 'data-testid': 'chart-empty' }, t('chart.empty')));
}

/**
 * Counts over time `[{at: ms, count}]` (only the times that had some) in
 * even buckets from `start` to `end`, the gaps as zeros: the smallest step
 * of `steps` that needs at most `MAX_COLUMNS` buckets.
 */
function buckets(points, start, end, steps) {
  const step = steps.find((s) => (end - start) / s < MAX_COLUMNS) ?? steps[steps.length - 1];
  const first = Math.floor(start / step) * step;
  const n = Math.floor((end - first) / step) + 1;
  const out = Array.from({ length: n }, (_, i) => ({ at: first + i * step, count: 0 }));
  for (const p of points) {
    const i = Math.floor((p.at - first) / step);
    if (i >= 0 && i < n) out[i].count += p.count;
  }
  return { step, out };
}

/** `5분`, `1 h`, `7 days`: a bucket's length in words. */
function stepText(step) {
  if (step >= DAY) return t(step === DAY ? 'chart.step.day' : 'chart.step.days', { n: step / DAY });
  if (step >= 60 * MINUTE) return t(step === 60 * MINUTE ? 'chart.step.hour' : 'chart.step.hours', { n: step / (60 * MINUTE) });
  return t(step === MINUTE ? 'chart.step.minute' : 'chart.step.minutes', { n: step / MINUTE });
}

function locale() {
  return currentLang() === 'ko' ? 'ko-KR' : 'en-GB';
}

/** A minute on this device's clock: `12/03 14:05`. */
export function minuteText(ms) {
  return new Date(ms).toLocaleString(locale(), { month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' });
}

/** A UTC day as the API names it: `2026-12-03`. */
function utcDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * A count per minute (`[{at, count}]`, RFC 3339 minutes) as columns, from
 * the first minute to the last, or on to `now` (ms) while it can still move.
 */
export function drawPerMinute(host, series, { title, now = null }) {
  const points = (series ?? []).map((p) => ({ at: Date.parse(p.at), count: p.count }));
  if (points.length === 0) {
    drawNothing(host);
    return;
  }
  const end = Math.max(points[points.length - 1].at, now ?? 0);
  const start = Math.min(points[0].at, end - (MIN_MINUTES - 1) * MINUTE);
  drawSeries(host, buckets(points, start, end, MINUTE_STEPS), title, minuteText);
}

/** A count per UTC day (`[{date, count}]`) as columns, the same way. */
export function drawPerDay(host, series, { title, now = null }) {
  const points = (series ?? []).map((p) => ({ at: Date.parse(`${p.date}T00:00:00Z`), count: p.count }));
  if (points.length === 0) {
    drawNothing(host);
    return;
  }
  const end = Math.max(points[points.length - 1].at, now ?? 0);
  const start = Math.min(points[0].at, end - (MIN_DAYS - 1) * DAY);
  drawSeries(host, buckets(points, start, end, DAY_STEPS), title, utcDay);
}

function drawSeries(host, { step, out }, title, when) {
  const total = out.reduce((sum, b) => sum + b.count, 0);
  const max = Math.max(...out.map((b) => b.count));
  const from = when(out[0].at);
  const until = when(out[out.length - 1].at);
  drawColumns(host, out.map((b) => [{ value: b.count, cls: 'o-issued' }]), {
    label: t('chart.label', { title, from, until, total: num(total), max: num(max), step: stepText(step) }),
    top: (top) => t('chart.top', { n: num(top), step: stepText(step) }),
    from,
    until,
    titles: out.map((b) => `${when(b.at)} · ${num(b.count)}`),
  });
}

/**
 * Fill `ul.hbars` with a bar per item `{key, label, n, cls}`, each as long
 * as its share of the largest; `format` writes the counts.
 */
export function drawBars(ul, items, format = num) {
  const top = Math.max(1, ...items.map((i) => i.n));
  ul.replaceChildren(...items.map((i) => {
    const fill = h('span', { class: `fill ${i.cls}` });
    fill.style.width = `${(100 * i.n) / top}%`;
    return h('li', { 'data-key': i.key },
      h('span', { class: 'label' }, i.label),
      h('span', { class: 'track', 'aria-hidden': 'true' }, fill),
      h('span', { class: 'n', 'data-testid': 'bar-count' }, format(i.n)));
  }));
  ul.setAttribute('aria-label', items.map((i) => `${i.label} ${format(i.n)}`).join(', '));
}

/** Claim outcome bars from a `claims` object of the API. */
export function drawClaims(ul, claims) {
  drawBars(ul, CLAIM_OUTCOMES.map((o) => ({ key: o, label: t(`outcome.${o}`), n: claims?.[o] ?? 0, cls: `o-${o}` })));
}

/**
 * Claims per second across every instance, worked out here from the
 * cluster-wide totals of successive summaries (the server keeps totals, not
 * rates). `add(asOf, claims)` records a reading; `perSecond(windowMs)` is
 * the rate over about the last `windowMs` (the totals move in steps of a
 * few seconds, so one interval alone would jump between nothing and a lot);
 * `draw(host)` stacks each interval's rate by outcome.
 */
export class ClusterRate {
  /** `keepMs`: how far back the chart goes; `everyMs`: how often readings come. */
  constructor(keepMs = 120_000, everyMs = 3000) {
    this.keepMs = keepMs;
    this.slots = Math.round(keepMs / everyMs);
    this.readings = [];
  }

  add(asOf, claims) {
    const at = Date.parse(asOf);
    const last = this.readings[this.readings.length - 1];
    if (Number.isNaN(at) || (last && at <= last.at)) return;
    this.readings.push({ at, claims: { ...claims } });
    while (this.readings.length > 2 && at - this.readings[1].at > this.keepMs) this.readings.shift();
  }

  /** Claims a second over the readings of about the last `windowMs`, or null before two readings. */
  perSecond(windowMs = 15_000) {
    const r = this.readings;
    if (r.length < 2) return null;
    const last = r[r.length - 1];
    const first = r.slice(0, -1).reverse().find((x) => last.at - x.at >= windowMs) ?? r[0];
    return Math.max(0, sum(last.claims) - sum(first.claims)) / ((last.at - first.at) / 1000);
  }

  draw(host) {
    const r = this.readings;
    if (r.length < 2) {
      host.replaceChildren(h('p', { class: 'muted small' }, t('csum.rate_wait')));
      return;
    }
    const columns = [];
    let top = 0;
    for (let i = 1; i < r.length; i++) {
      const secs = (r[i].at - r[i - 1].at) / 1000;
      const segs = CLAIM_OUTCOMES.map((o) => ({ value: Math.max(0, (r[i].claims[o] ?? 0) - (r[i - 1].claims[o] ?? 0)) / secs, cls: `o-${o}` }));
      top = Math.max(top, segs.reduce((s, x) => s + x.value, 0));
      columns.push(segs);
    }
    // The newest on the right, the chart as wide as it keeps from the start.
    while (columns.length < this.slots) columns.unshift([]);
    drawColumns(host, columns.slice(-this.slots), {
      label: t('csum.rate_label', { rate: rateText(this.perSecond()), max: rateText(top) }),
      top: (n) => `${rateText(n)}/s`,
      from: t('time.minutes_ago', { n: Math.round(this.keepMs / MINUTE) }),
      until: t('time.now'),
    });
  }
}

function sum(claims) {
  return CLAIM_OUTCOMES.reduce((s, o) => s + (claims[o] ?? 0), 0);
}

/** A rate with a decimal while it is small: `0.4`, `12`, `1,250`. */
export function rateText(n) {
  if (n === null || n === undefined) return '–';
  return n >= 10 ? num(Math.round(n)) : n.toLocaleString(locale(), { maximumFractionDigits: 1 });
}

/** A share 0..1 as a percentage: `42.5%`. */
export function percentText(r) {
  return Number(r).toLocaleString(locale(), { style: 'percent', maximumFractionDigits: 1 });
}
