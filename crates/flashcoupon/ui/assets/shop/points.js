// The points (적립금) panel in the wallet: the balance, what is held for
// orders, the soonest expiries, and the history page by page.

import { $, api, dateTime, h, points, setText, signedPoints, t, toast } from '../common.js';
import { entryNote, expiryItems, pointsKind, readPoints, readPointsPage } from '../ledger.js';
import { onSignOut, session, signOut } from './page.js';

/** How many of the soonest expiries are listed. */
const EXPIRIES_SHOWN = 3;

/** The last balance read (null: none yet), the history entries shown and
 * the `before` of the next page; `gen` counts loads, so an answer to a load
 * since replaced (or to a signed-out session) is dropped. */
const ledger = { view: null, entries: [], next: null, gen: 0 };

const get = (path) => api(session, 'GET', path);

onSignOut(() => {
  Object.assign(ledger, { view: null, entries: [], next: null, gen: ledger.gen + 1 });
  renderPoints();
});

export function setupPoints() {
  $('points-more').addEventListener('click', morePoints);
}

/** The balance and the first page of history, afresh (as many entries as shown). */
export async function loadPoints() {
  const gen = ++ledger.gen;
  let read;
  try {
    read = await readPoints(get, '/api/v1/me/points', ledger.entries.length);
  } catch (err) {
    // A lapsed session: the wallet's own load logs out and says so.
    if (err.code !== 'unauthorized' && gen === ledger.gen) toast(err.text, 'error');
    return;
  }
  if (gen !== ledger.gen) return;
  Object.assign(ledger, read);
  renderPoints();
}

async function morePoints() {
  if (ledger.next === null) return;
  const gen = ledger.gen;
  const button = $('points-more');
  button.disabled = true;
  try {
    const page = await readPointsPage(get, '/api/v1/me/points', ledger.next);
    if (gen !== ledger.gen) return;
    ledger.entries.push(...page.entries);
    ledger.next = page.next;
    renderPoints();
  } catch (err) {
    if (err.code === 'unauthorized') signOut();
    toast(err.text, 'error');
  } finally {
    button.disabled = false;
  }
}

function renderPoints() {
  const v = ledger.view;
  $('points').hidden = !v;
  if (!v) return;
  setText($('points-balance'), points(v.balance));
  $('points-held').hidden = v.held <= 0;
  setText($('points-held'), t('points.held', { amount: points(v.held) }));
  $('points-expiring').replaceChildren(...expiryItems(v.expiring, EXPIRIES_SHOWN));
  const items = ledger.entries.map(entryItem);
  $('points-history').replaceChildren(...(items.length ? items : [h('li', { class: 'muted' }, t('points.empty'))]));
  $('points-more').hidden = ledger.next === null;
}

function entryItem(e) {
  // Entries without a reference are the server's own (holds, releases,
  // expiries), with English notes for operators: their kind says it here.
  const note = entryNote(e, Boolean(e.reference));
  return h('li', { 'data-testid': 'points-entry', 'data-kind': e.kind },
    h('span', { class: 'badge' }, pointsKind(e.kind)),
    h('strong', { class: `amount ${e.amount > 0 ? 'plus' : 'minus'}` }, signedPoints(e.amount)),
    note ? h('span', {}, note) : null,
    h('span', { class: 'when' }, dateTime(e.created_at)));
}
