// What a drop card and a sale card both show: the status as of now on the
// server's clock, the countdown to the next moment, and the remaining stock
// as a bar and in words.

import { countdown, h, num, serverNow, setText, t } from '../common.js';

/** The status as of now on the server's clock (the last read may be a moment old). */
export function liveStatus(status, startsAt, endsAt) {
  const now = serverNow();
  if (status === 'upcoming' && now >= Date.parse(startsAt)) return 'open';
  if (status === 'open' && now >= Date.parse(endsAt)) return 'ended';
  return status;
}

/** `opens` and `ends` are the labels' keys: "opens in 00:01:02", "ends in …", or nothing. */
export function clockText(status, startsAt, endsAt, opens, ends) {
  const now = serverNow();
  if (status === 'upcoming') return `${t(opens)} ${countdown(Date.parse(startsAt) - now)}`;
  if (status === 'open') return `${t(ends)} ${countdown(Date.parse(endsAt) - now)}`;
  return '';
}

/** The bar's elements: `{bar, fill}`. */
export function stockBar() {
  const fill = h('div', { class: 'fill' });
  return { bar: h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0 }, fill), fill };
}

/** Fill the bar and the words (`el.bar`, `el.fill`, `el.stock`). */
export function showStock(el, remaining, total) {
  el.fill.style.width = `${(100 * remaining) / Math.max(1, total)}%`;
  el.bar.setAttribute('aria-valuemax', String(total));
  el.bar.setAttribute('aria-valuenow', String(remaining));
  el.bar.setAttribute('aria-label', t('drop.remaining', { remaining, total }));
  setText(el.stock, t('drop.remaining', { remaining: num(remaining), total: num(total) }));
}
