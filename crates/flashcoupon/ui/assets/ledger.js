// What both pages show of a points (적립금) ledger: reading a balance and
// its history page by page, the kind of an entry, what it was for, and the
// days on which points expire.

import { day, h, num, points, serverNow, t } from './common.js';

/** History entries per page. */
export const POINTS_PAGE = 20;

/**
 * A balance (`base`, e.g. `/api/v1/me/points`) and the first page of its
 * history, afresh: as many entries as `shown`, so a refresh after "more"
 * keeps the list as long as it was. `get(path)` reads the API as whoever
 * asks. Resolves to `{view, entries, next}`.
 */
export async function readPoints(get, base, shown) {
  const limit = Math.min(100, Math.max(POINTS_PAGE, shown));
  const [view, page] = await Promise.all([get(base), get(`${base}/history?limit=${limit}`)]);
  return { view, entries: page.entries, next: page.next ?? null };
}

/** The history page after `before` (a `next` from the last read): `{entries, next}`. */
export async function readPointsPage(get, base, before) {
  const page = await get(`${base}/history?limit=${POINTS_PAGE}&before=${encodeURIComponent(before)}`);
  return { entries: page.entries, next: page.next ?? null };
}

/** Expiries within this long are singled out (the server warns as much ahead). */
const EXPIRY_WARN_MS = 7 * 86_400_000;
/** The API lists at most this many expiry times, soonest first. */
const EXPIRIES_LISTED = 20;

export function pointsKind(kind) {
  const key = `points.kind.${kind}`;
  return t(key) === key ? kind : t(key);
}

/**
 * The soonest `shown` days on which points expire, as list items, those
 * within a week marked (not by colour alone). One line a day, since a day is
 * what is shown; when the API's list is full, its last day may go on past
 * it, so that day's sum is said as "at least".
 */
export function expiryItems(expiring, shown) {
  const days = [];
  for (const x of expiring) {
    const date = day(x.expires_at);
    const last = days.at(-1);
    if (last?.date === date) last.amount += x.amount;
    else days.push({ date, amount: x.amount, first: Date.parse(x.expires_at) });
  }
  const full = expiring.length >= EXPIRIES_LISTED;
  const items = days.slice(0, shown).map((d, i) => {
    const soon = d.first - serverNow() <= EXPIRY_WARN_MS;
    const key = full && i === days.length - 1 ? 'points.expires_at_least' : 'points.expires';
    return h('li', { class: soon ? 'soon' : null, 'data-testid': 'points-expiry' },
      t(key, { amount: points(d.amount), date: d.date }),
      soon ? [' ', h('span', { class: 'badge' }, t('points.soon'))] : null);
  });
  const rest = days.length - shown;
  if (rest > 0) items.push(h('li', { class: 'muted small' }, t(full ? 'points.more_dates_full' : 'points.more_dates', { n: num(rest) })));
  return items;
}

/** What an entry was for: its reason (unless `withReason` is false) and its order. */
export function entryNote(e, withReason = true) {
  return [withReason ? e.reason : null, e.order_id ? t('points.order', { order: e.order_id }) : null].filter(Boolean).join(' · ');
}
