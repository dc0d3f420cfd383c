// The campaign dashboard's winners: rows in seq order, added as the drop
// commits them, each e-mail a link to the member's page; and the rows on
// screen read again every few seconds, so a coupon used, reserved or
// expired after it was listed shows its status now.

import { $, dateTime, h, t } from '../common.js';
import { call } from './console.js';

/** At most this many winners a read (the API's largest page). */
const MAX_PAGE = 1000;

export function winnerRow(w) {
  return h('tr', { 'data-seq': w.seq, 'data-status': w.status },
    h('td', { class: 'num' }, w.seq),
    h('td', {}, h('a', { href: `#/user/${w.user_id}`, 'data-testid': 'winner-user', title: t('dash.open_user', { email: w.email }) }, w.email)),
    h('td', {}, dateTime(w.issued_at)),
    h('td', {}, h('span', { class: `badge coupon-${w.status}`, 'data-testid': 'winner-status' }, t(`coupon.${w.status}`))));
}

/** Every winner shown, redrawn (a new language). */
export function redrawWinners(d) {
  if (d.shown.size) $('winners').replaceChildren(...[...d.shown.values()].sort((a, b) => a.seq - b.seq).map(winnerRow));
}

/**
 * Add the winners after `after` that are not shown yet, each in its seq
 * place. `d` is the dashboard: {id, shown (by seq), dense, max, more};
 * `current()` says whether it is still the one on screen.
 */
export async function loadWinners(d, after, current) {
  const page = await call('GET', `/api/v1/admin/campaigns/${d.id}/winners?limit=100&after=${after}`);
  if (!current()) return;
  const body = $('winners');
  body.querySelector('tr.empty')?.remove();
  for (const w of page.winners) {
    if (d.shown.has(w.seq)) continue;
    d.shown.set(w.seq, w);
    const row = winnerRow(w);
    // Usually the newest: appended. A late lower seq goes into its place.
    const later = w.seq > d.max ? null : [...body.querySelectorAll('tr[data-seq]')].find((r) => Number(r.dataset.seq) > w.seq);
    body.insertBefore(row, later ?? null);
    d.max = Math.max(d.max, w.seq);
  }
  while (d.shown.has(d.dense + 1)) d.dense++;
  if (d.shown.size === 0) {
    body.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: 4, class: 'muted' }, t('dash.no_winners'))));
  }
  // A full page may have more behind it: "more" reads on from the highest shown.
  d.more = page.next !== undefined ? d.max : null;
  $('more').hidden = d.more === null;
}

/**
 * Read again the winners whose rows are on screen (none when the table is
 * scrolled away or the tab hidden), and redraw those whose coupon changed.
 */
export async function refreshShownWinners(d, current) {
  const range = document.hidden ? null : rowsOnScreen($('winners'));
  if (!range) return;
  const [first, last] = range;
  const limit = Math.min(MAX_PAGE, last - first + 1);
  const page = await call('GET', `/api/v1/admin/campaigns/${d.id}/winners?limit=${limit}&after=${first - 1}`);
  if (!current()) return;
  for (const w of page.winners) {
    const was = d.shown.get(w.seq);
    if (!was || (was.status === w.status && was.order_id === w.order_id)) continue;
    d.shown.set(w.seq, w);
    $('winners').querySelector(`tr[data-seq="${w.seq}"]`)?.replaceWith(winnerRow(w));
  }
}

/** The first and last seq of the rows inside the window, or null (rows are in seq order). */
function rowsOnScreen(body) {
  const rows = body.querySelectorAll('tr[data-seq]');
  if (rows.length === 0) return null;
  const below = (r) => r.getBoundingClientRect().bottom > 0;
  const above = (r) => r.getBoundingClientRect().top < window.innerHeight;
  // The first row not above the window, by halves: a drop may list thousands.
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (below(rows[mid])) hi = mid;
    else lo = mid + 1;
  }
  if (lo === rows.length || !above(rows[lo])) return null;
  let end = lo;
  while (end + 1 < rows.length && above(rows[end + 1]) && end - lo < MAX_PAGE - 1) end++;
  return [Number(rows[lo].dataset.seq), Number(rows[end].dataset.seq)];
}
