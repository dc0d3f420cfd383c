// The drops (선착순 이벤트): a card per campaign with its countdown and live
// stock (one stream for them all, open while they are on screen), the claim
// button (only for drops claimed by it: others are redeemed with a code or
// issued by themselves), "notify me", and which coupons of each the shopper
// already holds.

import { $, api, discountText, h, newId, showResult, setText, t, toast, withOneRetry, won } from '../common.js';
import { watchStock } from '../live.js';
import { askToLogIn, currentView, onSignOut, onViewChange, session, signOut } from './page.js';
import { clockText, liveStatus, showStock, stockBar } from './stock.js';

/** Campaign views by id, kept current by the live stream. */
const campaigns = new Map();
/** The ids of my coupons, by campaign (a set: the claim's answer and the
 * socket's event may both report the same coupon). */
const held = new Map();
const subscribed = new Set();
const inFlight = new Set();
/** The last claim result shown on each card: {ok, text()}. */
const results = new Map();
/** Per card, the elements that change. */
const cards = new Map();
/** The drops listed, and their stock's stream (null: closed). */
let listedIds = [];
let stopStock = null;
/** Resolves once the drops are listed. */
let listed = Promise.resolve();
/** A drop's "redeem with a code" was followed, to the wallet. */
let codeAsked = false;

onSignOut(() => {
  held.clear();
  subscribed.clear();
  results.clear();
  updateCards();
});

onViewChange(syncStockStream);

/** List the drops; their stock streams while they are on screen. */
export function setupDrops() {
  document.addEventListener('visibilitychange', syncStockStream);
  listed = loadDrops();
}

/** Stream the stock only while the drops are on screen: a browser holds at
 * most six connections per host, and the sales' streams need theirs. */
function syncStockStream() {
  const on = currentView() === 'drops' && document.visibilityState === 'visible';
  if (on && !stopStock) {
    stopStock = watchStock(listedIds, (s) => {
      const c = campaigns.get(s.campaign_id);
      if (!c) return;
      Object.assign(c, {
        status: s.status, remaining_quantity: s.remaining_quantity, issued_count: s.issued_count,
        total_quantity: s.total_quantity, issue_ends_at: s.issue_ends_at,
      });
      updateCard(c.id);
    });
  } else if (!on && stopStock) {
    stopStock();
    stopStock = null;
  }
}

async function loadDrops() {
  let list;
  try {
    list = await api(null, 'GET', '/api/v1/campaigns?limit=50');
  } catch (err) {
    toast(err.text, 'error');
    return;
  }
  campaigns.clear();
  for (const c of list.campaigns) campaigns.set(c.id, c);
  renderDrops();
  listedIds = [...campaigns.keys()];
  stopStock?.();
  stopStock = null;
  syncStockStream();
}

/** A campaign's name, read once if it is not among the drops listed ('' if unknown). */
export async function campaignName(id) {
  if (!campaigns.has(id)) {
    try {
      campaigns.set(id, await api(null, 'GET', `/api/v1/campaigns/${id}`));
    } catch {
      return '';
    }
  }
  return campaigns.get(id).name;
}

/** A campaign's name if it is known already ('' if not). */
export function knownCampaignName(id) {
  return campaigns.get(id)?.name ?? '';
}

/** Whether the shopper came by a drop's "redeem with a code" (asked once). */
export function takeCodeRequest() {
  const asked = codeAsked;
  codeAsked = false;
  return asked;
}

function statusOf(c) {
  return liveStatus(c.status, c.issue_starts_at, c.issue_ends_at);
}

function renderDrops() {
  const list = $('drop-list');
  list.replaceChildren();
  cards.clear();
  if (campaigns.size === 0) {
    list.append(h('p', { class: 'muted' }, t('drops.empty')));
    return;
  }
  for (const c of campaigns.values()) {
    const badge = h('span', { class: 'badge', 'data-testid': 'drop-status' });
    const clock = h('p', { class: 'clock', 'data-testid': 'countdown' });
    const { bar, fill } = stockBar();
    const stock = h('p', { class: 'stock', 'data-testid': 'stock' });
    const claim = h('button', { type: 'button', class: 'claim', 'data-testid': 'claim', onclick: () => claimCoupon(c.id) });
    // Drops the button does not issue: a way to the code box, or a note.
    const byCode = h('a', { href: '#wallet', class: 'button-link claim', 'data-testid': 'by-code', onclick: () => (codeAsked = true) });
    const auto = h('span', { class: 'badge auto', 'data-testid': 'auto' });
    const how = h('p', { class: 'muted small', 'data-testid': 'how' });
    const notify = h('button', { type: 'button', class: 'secondary', 'data-testid': 'notify', onclick: () => toggleNotify(c.id) });
    const heldLine = h('p', { class: 'muted small', 'data-testid': 'held' });
    const result = h('p', { class: 'result', role: 'status', 'aria-live': 'polite', 'data-testid': 'claim-result' });
    const terms = h('p', { class: 'terms' });
    const discount = h('p', { class: 'discount' }, '');
    const card = h('article', { class: 'card drop', 'data-campaign': c.id, 'data-testid': 'drop' },
      h('div', { class: 'row spread' }, h('h2', {}, c.name), badge),
      discount, terms, clock, bar, stock, how,
      h('div', { class: 'row' }, claim, byCode, auto, notify), heldLine, result);
    list.append(card);
    cards.set(c.id, { card, badge, clock, bar, fill, stock, claim, byCode, auto, how, notify, heldLine, result, terms, discount });
    updateCard(c.id);
  }
}

/**
 * How a drop's coupons are had: `button` (the claim button), `code` (a
 * unique or shared code, in the code box) or `auto` (a trigger issues them;
 * the button would only answer 409 not_claimable).
 */
function wayOf(c) {
  if (c.trigger) return 'auto';
  return (c.issuance ?? 'claim') === 'claim' ? 'button' : 'code';
}

function triggerText(trigger) {
  if (trigger.startsWith('custom:')) return t('trigger.custom', { name: trigger.slice('custom:'.length) });
  return t(`trigger.${trigger}`);
}

/** Redraw every card (a tick of the countdowns, a new language, a new session). */
export function updateCards() {
  for (const id of cards.keys()) updateCard(id);
}

export function updateCard(id) {
  const c = campaigns.get(id);
  const el = cards.get(id);
  if (!c || !el) return;
  const status = statusOf(c);
  el.card.dataset.status = status;
  setText(el.badge, t(`status.${status}`));
  el.badge.className = `badge status-${status}`;
  setText(el.discount, discountText(c.discount));
  setText(el.terms, [
    c.min_order_amount > 0 ? t('drop.min_order', { amount: won(c.min_order_amount) }) : null,
    t('drop.per_user', { limit: c.per_user_limit }),
  ].filter(Boolean).join(' · '));
  setText(el.clock, clockText(status, c.issue_starts_at, c.issue_ends_at, 'drop.opens_in', 'drop.ends_in'));
  showStock(el, c.remaining_quantity, c.total_quantity);

  const mine = held.get(id)?.size ?? 0;
  // Below the limit the count is news; at the limit the button says it (a
  // drop without the button says it here).
  const heldNews = mine > 0 && (mine < c.per_user_limit || wayOf(c) !== 'button');
  setText(el.heldLine, session.signedIn && heldNews ? t('drop.held', { issued: mine, limit: c.per_user_limit }) : '');
  let label = t('drop.claim');
  let enabled = false;
  if (!session.signedIn) {
    label = t('drop.login_to_claim');
    enabled = status === 'open' || status === 'upcoming';
  } else if (inFlight.has(id)) {
    label = t('drop.claiming');
  } else if (mine >= c.per_user_limit) {
    label = t('drop.held', { issued: mine, limit: c.per_user_limit });
  } else if (status === 'open') {
    enabled = true;
  } else if (status !== 'upcoming') {
    label = t(`status.${status}`);
  }
  setText(el.claim, label);
  el.claim.disabled = !enabled;
  el.claim.setAttribute('aria-busy', inFlight.has(id) ? 'true' : 'false');

  const way = wayOf(c);
  el.card.dataset.way = way;
  el.claim.hidden = way !== 'button';
  // Worth going to the box while a code can still be redeemed.
  el.byCode.hidden = way !== 'code' || !['open', 'upcoming'].includes(status) || (session.signedIn && mine >= c.per_user_limit);
  setText(el.byCode, t('drop.by_code'));
  el.auto.hidden = way !== 'auto';
  setText(el.auto, t('drop.auto'));
  el.how.hidden = way === 'button';
  setText(el.how, way === 'auto' ? triggerText(c.trigger) : way === 'code' ? t('drop.by_code_note') : '');

  el.notify.hidden = !session.signedIn || status !== 'upcoming' || way === 'auto';
  setText(el.notify, subscribed.has(id) ? t('drop.notify_on') : t('drop.notify'));
  el.notify.setAttribute('aria-pressed', subscribed.has(id) ? 'true' : 'false');

  showResult(el.result, results.get(id));
}

async function claimCoupon(id) {
  if (!session.signedIn) {
    askToLogIn();
    return;
  }
  if (inFlight.has(id)) return;
  inFlight.add(id);
  results.delete(id);
  updateCard(id);
  // One key per press: a retry after a network error cannot issue twice.
  const key = newId();
  try {
    const coupon = await withOneRetry(() => api(session, 'POST', `/api/v1/campaigns/${id}/issue`, undefined, { 'Idempotency-Key': key }));
    hold(id, coupon.id);
    results.set(id, { ok: true, text: () => t('drop.issued_ok', { seq: coupon.seq }) });
  } catch (err) {
    if (err.code === 'unauthorized') signOut();
    results.set(id, { ok: false, text: () => err.text });
    if (err.code === 'limit_reached') refreshHeld();
  } finally {
    inFlight.delete(id);
    updateCard(id);
  }
}

async function toggleNotify(id) {
  const on = subscribed.has(id);
  try {
    await api(session, on ? 'DELETE' : 'PUT', `/api/v1/campaigns/${id}/subscription`);
    if (on) subscribed.delete(id);
    else subscribed.add(id);
  } catch (err) {
    toast(err.text, 'error');
  }
  updateCard(id);
}

/** Which upcoming drops the shopper asked to be told about (once they are listed). */
export async function loadSubscriptions() {
  await listed;
  const upcoming = [...campaigns.values()].filter((c) => statusOf(c) === 'upcoming');
  await Promise.all(upcoming.map(async (c) => {
    try {
      const s = await api(session, 'GET', `/api/v1/campaigns/${c.id}/subscription`);
      if (s.subscribed) subscribed.add(c.id);
      else subscribed.delete(c.id);
    } catch {
      // Not signed in any more, or the campaign is gone: nothing to show.
    }
    updateCard(c.id);
  }));
}

/** A coupon of mine from `campaign`, just issued. */
export function hold(campaign, coupon) {
  if (!held.has(campaign)) held.set(campaign, new Set());
  held.get(campaign).add(coupon);
}

/** Read which coupons I hold, and redraw the cards. */
export async function refreshHeld() {
  if (!session.signedIn) return;
  try {
    const w = await api(session, 'GET', '/api/v1/me/coupons?limit=500');
    held.clear();
    for (const c of w.coupons) hold(c.campaign_id, c.id);
  } catch (err) {
    if (err.code === 'unauthorized') signOut();
  }
  updateCards();
}
