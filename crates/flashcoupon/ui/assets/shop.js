// The shoppers' page: drops with a countdown and live stock, the claim
// button (only for drops claimed by it: others are redeemed with a code or
// issued by themselves), "notify me", live toasts, the wallet with the
// coupon-code box and checkout, the points (적립금) panel, and the inbox.

import {
  api, applyLabels, connectNotifications, countdown, dateTime, day, discountText, entryNote, expiryItems, h, newId, num,
  onLangChange, points, pointsKind, serverNow, Session, setupLangToggle, signedPoints, t, toast, watchStock, won,
} from './common.js';

const session = new Session('shop');
const $ = (id) => document.getElementById(id);

/** Campaign views by id, kept current by the live stream. */
const campaigns = new Map();
/** The ids of my coupons, by campaign (a set: the claim's answer and the
 * socket's event may both report the same coupon). */
const held = new Map();
const subscribed = new Set();
const inFlight = new Set();
/** The last claim result shown on each card: {ok, text}. */
const results = new Map();
/** Per card, the elements that change. */
const cards = new Map();
let stopStock = () => {};
/** Resolves once the drops are listed. */
let dropsLoaded = Promise.resolve();
let stopSocket = () => {};
/** The code box: a redemption in flight, the time a 429 lets it try again,
 * its last result ({ok, text()}: re-rendered in the chosen language). */
const redeem = { busy: false, until: 0, result: null, focusNext: false };
/** The points panel: the last balance read (null: none yet), the history
 * entries shown and the `before` of the next page; `gen` counts loads, so an
 * answer to a load since replaced (or to a signed-out session) is dropped. */
const ledger = { view: null, entries: [], next: null, gen: 0 };
/** History entries per page; how many of the soonest expiries are listed. */
const POINTS_PAGE = 20;
const EXPIRIES_SHOWN = 3;

// ---- views and navigation -----------------------------------------------------

function currentView() {
  const v = location.hash.replace('#', '');
  return ['drops', 'wallet', 'inbox'].includes(v) ? v : 'drops';
}

function showView() {
  const view = currentView();
  const needsLogin = view !== 'drops' && !session.signedIn;
  for (const s of document.querySelectorAll('[data-view]')) s.hidden = s.dataset.view !== view || needsLogin;
  for (const a of document.querySelectorAll('[data-tab]')) {
    if (a.dataset.tab === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  $('auth').hidden = session.signedIn;
  if (view === 'wallet' && session.signedIn) {
    loadWallet();
    // Arrived by a drop's "redeem with a code": straight to the box.
    if (redeem.focusNext) $('redeem-code').focus();
    redeem.focusNext = false;
  }
  if (view === 'inbox' && session.signedIn) loadInbox();
}

function renderAccount() {
  $('who').textContent = session.signedIn ? session.email : '';
  $('logout').hidden = !session.signedIn;
  $('auth').hidden = session.signedIn;
}

// ---- signing in ---------------------------------------------------------------------

async function submitAuth(e) {
  e.preventDefault();
  const action = e.submitter?.dataset.action ?? 'login';
  const email = $('email').value.trim();
  const password = $('password').value;
  $('auth-error').textContent = '';
  try {
    const path = action === 'signup' ? '/api/v1/auth/signup' : '/api/v1/auth/login';
    const r = await api(null, 'POST', path, { email, password });
    session.save({ token: r.token, email, userId: r.user_id, role: r.role ?? 'user' });
    $('password').value = '';
    signedIn();
  } catch (err) {
    $('auth-error').textContent = err.text ?? String(err);
  }
}

function signedIn() {
  stopSocket();
  renderAccount();
  stopSocket = connectNotifications(session, onEvent, (live) => {
    $('live-dot').classList.toggle('on', live);
    $('live-dot').title = t(live ? 'live.connected' : 'live.offline');
  });
  refreshHeld();
  dropsLoaded.then(() => loadSubscriptions());
  refreshUnread();
  showView();
}

function logout() {
  stopSocket();
  session.clear();
  held.clear();
  subscribed.clear();
  results.clear();
  redeem.result = null;
  Object.assign(ledger, { view: null, entries: [], next: null, gen: ledger.gen + 1 });
  renderPoints();
  $('redeem-code').value = '';
  renderRedeem();
  renderAccount();
  location.hash = '#drops';
  showView();
  for (const id of cards.keys()) updateCard(id);
}

// ---- drops -----------------------------------------------------------------------------

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
  stopStock();
  stopStock = watchStock([...campaigns.keys()], (s) => {
    const c = campaigns.get(s.campaign_id);
    if (!c) return;
    Object.assign(c, {
      status: s.status, remaining_quantity: s.remaining_quantity, issued_count: s.issued_count,
      total_quantity: s.total_quantity, issue_ends_at: s.issue_ends_at,
    });
    updateCard(c.id);
  });
}

/** The status as of now on the server's clock (a snapshot may be up to a second old). */
function statusOf(c) {
  const now = serverNow();
  if (c.status === 'upcoming' && now >= Date.parse(c.issue_starts_at)) return 'open';
  if (c.status === 'open' && now >= Date.parse(c.issue_ends_at)) return 'ended';
  return c.status;
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
    const fill = h('div', { class: 'fill' });
    const bar = h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0 }, fill);
    const stock = h('p', { class: 'stock', 'data-testid': 'stock' });
    const claim = h('button', { type: 'button', class: 'claim', 'data-testid': 'claim', onclick: () => claimCoupon(c.id) });
    // Drops the button does not issue: a way to the code box, or a note.
    const byCode = h('a', { href: '#wallet', class: 'button-link claim', 'data-testid': 'by-code', onclick: () => (redeem.focusNext = true) });
    const auto = h('span', { class: 'badge auto', 'data-testid': 'auto' });
    const how = h('p', { class: 'muted small', 'data-testid': 'how' });
    const notify = h('button', { type: 'button', class: 'secondary', 'data-testid': 'notify', onclick: () => toggleNotify(c.id) });
    const heldLine = h('p', { class: 'muted small', 'data-testid': 'held' });
    const result = h('p', { class: 'result', role: 'status', 'aria-live': 'polite', 'data-testid': 'claim-result' });
    const terms = h('p', { class: 'terms' });
    const title = h('h2', {}, c.name);
    const card = h('article', { class: 'card drop', 'data-campaign': c.id, 'data-testid': 'drop' },
      h('div', { class: 'row spread' }, title, badge),
      h('p', { class: 'discount' }, ''), terms, clock, bar, stock, how,
      h('div', { class: 'row' }, claim, byCode, auto, notify), heldLine, result);
    list.append(card);
    cards.set(c.id, {
      card, badge, clock, bar, fill, stock, claim, byCode, auto, how, notify, heldLine, result, terms, discount: card.querySelector('.discount'),
    });
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

/** Change text only when it differs, so screen readers are not re-told every tick. */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function updateCard(id) {
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
  const now = serverNow();
  if (status === 'upcoming') {
    setText(el.clock, `${t('drop.opens_in')} ${countdown(Date.parse(c.issue_starts_at) - now)}`);
  } else if (status === 'open') {
    setText(el.clock, `${t('drop.ends_in')} ${countdown(Date.parse(c.issue_ends_at) - now)}`);
  } else {
    setText(el.clock, '');
  }
  const total = c.total_quantity || 1;
  el.fill.style.width = `${(100 * c.remaining_quantity) / total}%`;
  el.bar.setAttribute('aria-valuemax', String(c.total_quantity));
  el.bar.setAttribute('aria-valuenow', String(c.remaining_quantity));
  el.bar.setAttribute('aria-label', t('drop.remaining', { remaining: c.remaining_quantity, total: c.total_quantity }));
  setText(el.stock, t('drop.remaining', { remaining: num(c.remaining_quantity), total: num(c.total_quantity) }));

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

  const r = results.get(id);
  setText(el.result, r?.text ?? '');
  el.result.className = `result ${r ? (r.ok ? 'ok' : 'bad') : ''}`;
}

async function claimCoupon(id) {
  if (!session.signedIn) {
    $('auth').hidden = false;
    $('email').focus();
    return;
  }
  if (inFlight.has(id)) return;
  inFlight.add(id);
  results.delete(id);
  updateCard(id);
  // One key per press: a retry after a network error cannot issue twice.
  const key = newId();
  try {
    let coupon;
    for (let attempt = 0; ; attempt++) {
      try {
        coupon = await api(session, 'POST', `/api/v1/campaigns/${id}/issue`, undefined, { 'Idempotency-Key': key });
        break;
      } catch (err) {
        if (err.code !== 'network' || attempt >= 1) throw err;
      }
    }
    hold(id, coupon.id);
    results.set(id, { ok: true, text: t('drop.issued_ok', { seq: coupon.seq }) });
  } catch (err) {
    if (err.code === 'unauthorized') logout();
    results.set(id, { ok: false, text: err.text });
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

async function loadSubscriptions() {
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

function hold(campaign, coupon) {
  if (!held.has(campaign)) held.set(campaign, new Set());
  held.get(campaign).add(coupon);
}

async function refreshHeld() {
  if (!session.signedIn) return;
  try {
    const w = await api(session, 'GET', '/api/v1/me/coupons?limit=500');
    held.clear();
    for (const c of w.coupons) hold(c.campaign_id, c.id);
  } catch (err) {
    if (err.code === 'unauthorized') logout();
  }
  for (const id of cards.keys()) updateCard(id);
}

// ---- coupon codes ------------------------------------------------------------------------

/** The shape any code has (the API checks again): letters, digits, hyphens. */
const CODE_SHAPE = /^[A-Za-z0-9-]{1,64}$/;

function renderRedeem() {
  const waiting = Math.ceil((redeem.until - Date.now()) / 1000);
  const button = $('redeem-submit');
  setText(button, redeem.busy ? t('redeem.submitting') : t('redeem.submit'));
  button.disabled = redeem.busy || waiting > 0;
  button.setAttribute('aria-busy', redeem.busy ? 'true' : 'false');
  const r = redeem.result;
  setText($('redeem-result'), r?.text() ?? '');
  $('redeem-result').className = `result ${r ? (r.ok ? 'ok' : 'bad') : ''}`;
}

/** The words for a refused redemption. */
function redeemFailure(err) {
  switch (err.code) {
    case 'not_found': return () => t('redeem.not_found');
    case 'code_used': return () => t('redeem.code_used');
    case 'invalid_input': return () => t('redeem.bad_shape');
    case 'rate_limited': return () => {
      const left = Math.ceil((redeem.until - Date.now()) / 1000);
      return left > 0 ? t('redeem.rate_limited', { seconds: num(left) }) : t('redeem.rate_limited_soon');
    };
    case 'sold_out': case 'limit_reached': case 'not_open': case 'ended': case 'paused': case 'not_claimable':
      return () => t('redeem.refused', { reason: err.text });
    default: return () => err.text;
  }
}

function failRedeem(text, codeIsWrong) {
  redeem.result = { ok: false, text };
  const input = $('redeem-code');
  if (codeIsWrong) input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
  input.focus();
}

async function redeemCode(e) {
  e.preventDefault();
  if (!session.signedIn || redeem.busy || redeem.until > Date.now()) return;
  const input = $('redeem-code');
  const code = input.value.trim();
  redeem.result = null;
  if (!code) failRedeem(() => t('redeem.empty'), true);
  else if (!CODE_SHAPE.test(code)) failRedeem(() => t('redeem.bad_shape'), true);
  if (redeem.result) {
    renderRedeem();
    return;
  }
  input.removeAttribute('aria-invalid');
  redeem.busy = true;
  renderRedeem();
  // One key per press: a retry after a network error cannot redeem twice.
  const key = newId();
  try {
    let coupon;
    for (let attempt = 0; ; attempt++) {
      try {
        coupon = await api(session, 'POST', '/api/v1/codes/redeem', { code }, { 'Idempotency-Key': key });
        break;
      } catch (err) {
        if (err.code !== 'network' || attempt >= 1) throw err;
      }
    }
    hold(coupon.campaign_id, coupon.id);
    const name = await campaignName(coupon.campaign_id);
    redeem.result = { ok: true, text: () => t('redeem.ok', { name }) };
    toast(t('redeem.ok', { name }), 'ok');
    input.value = '';
    updateCard(coupon.campaign_id);
    if (currentView() === 'wallet') loadWallet();
  } catch (err) {
    if (err.code === 'unauthorized') {
      logout();
      return;
    }
    if (err.code === 'rate_limited') redeem.until = Date.now() + 1000 * (err.retryAfter ?? 1);
    if (err.code === 'limit_reached') refreshHeld();
    failRedeem(redeemFailure(err), ['not_found', 'code_used', 'invalid_input'].includes(err.code));
  } finally {
    redeem.busy = false;
    renderRedeem();
  }
}

// ---- wallet and checkout ----------------------------------------------------------------

async function campaignName(id) {
  if (!campaigns.has(id)) {
    try {
      campaigns.set(id, await api(null, 'GET', `/api/v1/campaigns/${id}`));
    } catch {
      return '';
    }
  }
  return campaigns.get(id).name;
}

async function loadWallet() {
  loadPoints();
  const list = $('wallet-list');
  let w;
  try {
    w = await api(session, 'GET', '/api/v1/me/coupons?limit=200');
  } catch (err) {
    if (err.code === 'unauthorized') logout();
    toast(err.text, 'error');
    return;
  }
  const items = [];
  for (const c of w.coupons) items.push(couponCard(c, await campaignName(c.campaign_id)));
  list.replaceChildren(...(items.length ? items : [h('p', { class: 'muted' }, t('wallet.empty'))]));
}

function couponCard(c, name) {
  // Cancelling a use is the shop's (its order system's) to do, not the shopper's.
  const form = c.status === 'available' ? checkoutForm(c) : null;
  return h('article', { class: `card coupon coupon-${c.status}`, 'data-coupon': c.id, 'data-testid': 'coupon' },
    h('div', { class: 'row spread' }, h('h2', {}, name), h('span', { class: `badge coupon-${c.status}`, 'data-testid': 'coupon-status' }, t(`coupon.${c.status}`))),
    h('p', { class: 'discount' }, discountText(c.discount)),
    h('p', { class: 'terms' }, [
      c.min_order_amount > 0 ? t('drop.min_order', { amount: won(c.min_order_amount) }) : null,
      t('wallet.seq', { seq: c.seq }),
    ].filter(Boolean).join(' · ')),
    h('p', { class: 'muted small' }, t('wallet.valid', { from: dateTime(c.valid_from), until: dateTime(c.valid_until) })),
    c.status === 'reserved'
      ? h('p', { class: 'small', 'data-testid': 'reserved-until' }, t('wallet.reserved_for', { order: c.order_id, until: dateTime(c.reserved_until) }))
      : c.order_id ? h('p', { class: 'muted small' }, t('wallet.used_on', { order: c.order_id })) : null,
    form);
}

function checkoutForm(c) {
  const amountId = `amount-${c.id}`;
  const amount = h('input', { id: amountId, type: 'number', min: 0, step: 1, inputmode: 'numeric', required: true, 'data-testid': 'order-amount' });
  const out = h('p', { class: 'result', role: 'status', 'aria-live': 'polite', 'data-testid': 'checkout-result' });
  // One order id per form: paying twice after a lost answer replays, never spends twice.
  const orderId = `WEB-${newId().slice(0, 12)}`;
  const read = () => {
    const n = Number(amount.value);
    if (amount.value === '' || !Number.isInteger(n) || n < 0) {
      out.textContent = t('v.range', { min: 0, max: won(1e12) });
      out.className = 'result bad';
      return null;
    }
    return n;
  };
  const preview = async () => {
    const n = read();
    if (n === null) return;
    try {
      const p = await api(session, 'POST', `/api/v1/coupons/${c.id}/preview`, { order_id: orderId, order_amount: n });
      out.textContent = t('checkout.result', { discount: won(p.discount_amount), payable: won(p.payable_amount) });
      out.className = 'result ok';
    } catch (err) {
      out.textContent = err.text;
      out.className = 'result bad';
    }
  };
  const pay = async (e) => {
    e.preventDefault();
    const n = read();
    if (n === null) return;
    const button = e.submitter;
    if (button) button.disabled = true;
    try {
      const r = await api(session, 'POST', `/api/v1/coupons/${c.id}/use`, { order_id: orderId, order_amount: n });
      toast(t('checkout.paid', { discount: won(r.discount_amount), payable: won(r.payable_amount) }), 'ok');
      loadWallet();
    } catch (err) {
      out.textContent = err.text;
      out.className = 'result bad';
      if (button) button.disabled = false;
    }
  };
  return h('form', { class: 'checkout', onsubmit: pay, novalidate: true },
    h('h3', {}, t('checkout.title')),
    h('label', { for: amountId }, t('checkout.amount')), amount,
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'secondary', onclick: preview, 'data-testid': 'preview' }, t('checkout.preview')),
      h('button', { type: 'submit', 'data-testid': 'pay' }, t('checkout.pay'))),
    out);
}

// ---- points (적립금) ---------------------------------------------------------------------------

/** The balance and the first page of history, afresh (as many entries as shown, so a
 * refresh after "more" keeps the list as long as it was). */
async function loadPoints() {
  const gen = ++ledger.gen;
  const limit = Math.min(100, Math.max(POINTS_PAGE, ledger.entries.length));
  let view;
  let page;
  try {
    [view, page] = await Promise.all([
      api(session, 'GET', '/api/v1/me/points'),
      api(session, 'GET', `/api/v1/me/points/history?limit=${limit}`),
    ]);
  } catch (err) {
    // A lapsed session: the wallet's own load logs out and says so.
    if (err.code !== 'unauthorized' && gen === ledger.gen) toast(err.text, 'error');
    return;
  }
  if (gen !== ledger.gen) return;
  Object.assign(ledger, { view, entries: page.entries, next: page.next ?? null });
  renderPoints();
}

async function morePoints() {
  if (ledger.next === null) return;
  const gen = ledger.gen;
  const button = $('points-more');
  button.disabled = true;
  try {
    const page = await api(session, 'GET', `/api/v1/me/points/history?limit=${POINTS_PAGE}&before=${encodeURIComponent(ledger.next)}`);
    if (gen !== ledger.gen) return;
    ledger.entries.push(...page.entries);
    ledger.next = page.next ?? null;
    renderPoints();
  } catch (err) {
    if (err.code === 'unauthorized') logout();
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

// ---- inbox and live events ---------------------------------------------------------------

function eventText(e) {
  const d = e.data ?? {};
  const name = d.campaign_name ?? campaigns.get(e.campaign_id)?.name ?? '';
  switch (e.type) {
    case 'coupon.issued': return t('event.coupon.issued', { seq: d.seq });
    case 'coupon.claim_failed': {
      const key = `err.${d.reason}`;
      const reason = t(key) === key ? d.message ?? d.reason : t(key);
      return t('event.coupon.claim_failed', { reason });
    }
    case 'coupon.expiring_soon': return t('event.coupon.expiring_soon', { until: dateTime(d.valid_until) });
    case 'coupon.used': return t('event.coupon.used', { discount: won(d.discount_amount ?? 0) });
    case 'coupon.reservation_expired': return t('event.coupon.reservation_expired', { order: d.order_id });
    case 'points.earned': return [t('event.points.earned', { amount: points(d.amount ?? 0) }), d.reason].filter(Boolean).join(' · ');
    case 'points.expiring_soon': return t('event.points.expiring_soon', { amount: points(d.amount ?? 0), date: day(d.expires_at) });
    case 'points.spent': return [t('event.points.spent', { amount: points(d.amount ?? 0) }), d.order_id].filter(Boolean).join(' · ');
    default: return t(`event.${e.type}`, { name });
  }
}

async function loadInbox() {
  let r;
  try {
    r = await api(session, 'GET', '/api/v1/me/notifications?limit=100');
  } catch (err) {
    toast(err.text, 'error');
    return;
  }
  showUnread(r.unread_count);
  const items = r.notifications.map((n) => h('li', { class: n.read ? 'read' : 'unread', 'data-testid': 'notification' },
    h('span', { class: 'when' }, dateTime(n.at)), ' ', eventText(n)));
  $('inbox-list').replaceChildren(...(items.length ? items : [h('li', { class: 'muted' }, t('inbox.empty'))]));
}

function showUnread(n) {
  $('unread').hidden = !n;
  $('unread').textContent = n > 99 ? '99+' : String(n);
}

async function refreshUnread() {
  try {
    const r = await api(session, 'GET', '/api/v1/me/notifications?limit=1');
    showUnread(r.unread_count);
  } catch {
    // The badge can wait for the next event.
  }
}

async function readAll() {
  try {
    await api(session, 'POST', '/api/v1/me/notifications/read', { all: true });
  } catch (err) {
    toast(err.text, 'error');
  }
  loadInbox();
}

function onEvent(e) {
  if (e.type === 'session.expired') {
    logout();
    return;
  }
  const kind = e.type === 'coupon.claim_failed' ? 'error' : ['coupon.issued', 'points.earned'].includes(e.type) ? 'ok' : 'info';
  toast(eventText(e), kind);
  if (e.type === 'coupon.issued' || e.type === 'coupon.used' || e.type === 'coupon.use_cancelled') {
    refreshHeld();
    if (currentView() === 'wallet') loadWallet();
  }
  if (e.type.startsWith('points.') && currentView() === 'wallet') loadPoints();
  if (currentView() === 'inbox') loadInbox();
  else refreshUnread();
}

// ---- start -----------------------------------------------------------------------------------

function start() {
  setupLangToggle($('lang'));
  onLangChange(() => {
    for (const id of cards.keys()) updateCard(id);
    renderRedeem();
    if (currentView() === 'wallet' && session.signedIn) loadWallet();
    if (currentView() === 'inbox' && session.signedIn) loadInbox();
  });
  applyLabels();
  renderRedeem();
  $('auth-form').addEventListener('submit', submitAuth);
  $('logout').addEventListener('click', logout);
  $('read-all').addEventListener('click', readAll);
  $('redeem-form').addEventListener('submit', redeemCode);
  $('points-more').addEventListener('click', morePoints);
  $('redeem-code').addEventListener('input', () => $('redeem-code').removeAttribute('aria-invalid'));
  window.addEventListener('hashchange', showView);
  renderAccount();
  showView();
  dropsLoaded = loadDrops();
  if (session.signedIn) signedIn();
  // Countdowns tick on their own; stock changes arrive on the live stream.
  setInterval(() => {
    for (const id of cards.keys()) updateCard(id);
    // A 429's wait counts down in the code box, and the button comes back.
    if (redeem.until) {
      if (redeem.until <= Date.now()) {
        redeem.until = 0;
        if (redeem.result && !redeem.result.ok) redeem.result = null;
      }
      renderRedeem();
    }
  }, 250);
}

start();
