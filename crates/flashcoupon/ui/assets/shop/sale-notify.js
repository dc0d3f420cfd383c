// "Notify me" on upcoming time sales: the toggle on each sale card (for
// signed-in shoppers), and which sales the shopper asked to hear about. The
// server then tells them sale.opening_soon, sale.opened and sale.sold_out,
// on the socket and in the inbox. Each sale's state is read from the server
// once per session, the first time it is listed while upcoming.

import { api, h, setText, t, toast } from '../common.js';
import { onSignOut, session, signOut } from './page.js';
import { saleById, saleIds, updateSaleCard, updateSaleCards } from './sales.js';
import { liveStatus } from './stock.js';

/** Per sale, whether the shopper is subscribed, as the server last said
 * (absent: not read yet, and the button stays hidden rather than guess). */
const subscribed = new Map();
/** Sales whose subscription is being read or changed: a press meanwhile does nothing. */
const busy = new Set();
/** Counts sessions: an answer for a session since ended is dropped. */
let gen = 0;

onSignOut(() => {
  subscribed.clear();
  busy.clear();
  gen++;
  updateSaleCards();
});

/** The card's toggle for sale `id`, in a row of its own: `{notify, notifyRow}` (hidden until `showNotify`). */
export function notifyToggle(id) {
  const notify = h('button', {
    type: 'button', class: 'secondary', 'aria-pressed': 'false', 'data-testid': 'sale-notify', onclick: () => toggleNotify(id),
  });
  return { notify, notifyRow: h('div', { class: 'row', hidden: true }, notify) };
}

/** The toggle for `status` as of now: only on upcoming sales, only once its state is known. */
export function showNotify(el, id, status) {
  const on = subscribed.get(id) === true;
  el.notifyRow.hidden = !session.signedIn || status !== 'upcoming' || !subscribed.has(id);
  setText(el.notify, t(on ? 'sale.notify_on' : 'sale.notify'));
  el.notify.setAttribute('aria-pressed', on ? 'true' : 'false');
  // Busy rather than disabled: a disabled button would drop the keyboard's focus.
  el.notify.setAttribute('aria-busy', busy.has(id) ? 'true' : 'false');
}

async function toggleNotify(id) {
  if (busy.has(id) || !subscribed.has(id)) return;
  const on = subscribed.get(id);
  const g = gen;
  busy.add(id);
  updateSaleCard(id);
  try {
    // PUT and DELETE are idempotent: a press that raced another tab's is harmless.
    await api(session, on ? 'DELETE' : 'PUT', `/api/v1/sales/${id}/subscription`);
    if (g === gen) subscribed.set(id, !on);
  } catch (err) {
    if (g !== gen) return;
    if (err.code === 'unauthorized') signOut();
    else toast(err.text, 'error');
  } finally {
    if (g === gen) busy.delete(id);
    updateSaleCard(id);
  }
}

/** Read whether the shopper is subscribed to each upcoming sale listed whose
 * state is not known yet (called after every read of the list: only new
 * sales cost a request). */
export async function loadSaleSubscriptions() {
  if (!session.signedIn) return;
  const g = gen;
  const unknown = saleIds().filter((id) => {
    const s = saleById(id);
    return !subscribed.has(id) && !busy.has(id) && liveStatus(s.status, s.starts_at, s.ends_at) === 'upcoming';
  });
  await Promise.all(unknown.map(async (id) => {
    busy.add(id);
    try {
      const r = await api(session, 'GET', `/api/v1/sales/${id}/subscription`);
      if (g === gen) subscribed.set(id, r.subscribed);
    } catch (err) {
      // Left unknown (no button) until the next read of the list tries again.
      if (err.code === 'unauthorized' && g === gen) signOut();
    } finally {
      if (g === gen) busy.delete(id);
    }
    updateSaleCard(id);
  }));
}
