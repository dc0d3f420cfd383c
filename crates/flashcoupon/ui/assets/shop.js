// The shoppers' page: drops with a countdown and live stock, the claim
// button (only for drops claimed by it: others are redeemed with a code or
// issued by themselves), "notify me", live toasts, time sales (타임세일: a
// countdown, polled stock, an order with a coupon and points, my orders
// with pay and cancel), the wallet with the coupon-code box and checkout,
// the points (적립금) panel, and the inbox.

import {
  api, applyLabels, connectNotifications, countdown, currentLang, dateTime, day, discountText, entryNote, expiryItems, h, newId, num,
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
  return ['drops', 'sales', 'wallet', 'inbox'].includes(v) ? v : 'drops';
}

function showView() {
  const view = currentView();
  // Drops and sales are for anyone to see; ordering asks to log in.
  const needsLogin = !['drops', 'sales'].includes(view) && !session.signedIn;
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
  if (view === 'sales' && session.signedIn) {
    loadShopperExtras();
    loadOrders();
  }
  watchSales();
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
  Object.assign(shopper, { coupons: null, points: null, orders: null, gen: shopper.gen + 1 });
  buying.clear();
  orderResults.clear();
  orderItems.clear();
  $('order-list').replaceChildren();
  renderOrders();
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

// ---- time sales (타임세일) ---------------------------------------------------------------------

/** How often the sales (and my pending orders) are read while the view is on screen. */
const SALES_POLL_MS = 2000;
/** Time sales by id, in the API's order (newest first), as last read. */
const sales = new Map();
/** Per sale card, the elements that change. */
const saleCards = new Map();
/** Per sale, the order being placed: its fields, the Idempotency-Key sent
 * with them (null once answered), whether it is in flight, and its last
 * result ({ok, text()}: re-rendered in the chosen language). Pressing again
 * with the same fields after no answer reuses the key, so the server places
 * the order once; other fields, or a press after an answer, get a new key. */
const buying = new Map();
/** What the order panel offers and the orders list shows: my available
 * coupons (with their campaign's name), my points, my orders (newest
 * first); null until read. `gen` counts sessions, so an answer read for a
 * session since ended is dropped. */
const shopper = { coupons: null, points: null, orders: null, gen: 0 };
/** Per order shown, its elements; orders being paid or cancelled; the last
 * pay or cancel result shown on each. */
const orderItems = new Map();
const orderBusy = new Map();
const orderResults = new Map();
/** The server answered `test_payments_off`: no Pay buttons from then on. */
let testPaymentsOff = false;
/** The poll: its generation (a new one ends the old), its timer, and
 * whether its last read failed (said once per outage, not every 2 s). */
let salesWatch = 0;
let salesTimer = null;
let salesFailed = false;

/** Poll the sales every 2 s while their view is on screen and the page visible. */
function watchSales() {
  const gen = ++salesWatch;
  clearTimeout(salesTimer);
  const on = () => gen === salesWatch && currentView() === 'sales' && document.visibilityState === 'visible';
  if (!on()) return;
  const tick = async () => {
    await loadSales();
    // A pending order moves by itself (paid by the shop, expired): follow it.
    if (session.signedIn && (shopper.orders ?? []).some((o) => o.status === 'pending_payment')) await loadOrders();
    if (on()) salesTimer = setTimeout(tick, SALES_POLL_MS);
  };
  tick();
}

async function loadSales() {
  let list;
  try {
    list = await api(null, 'GET', '/api/v1/sales');
  } catch (err) {
    if (!salesFailed) toast(err.text, 'error');
    salesFailed = true;
    return;
  }
  salesFailed = false;
  sales.clear();
  for (const s of list.sales) sales.set(s.id, s);
  renderSales();
  // Orders name their sale: a sale read only now names them.
  for (const o of shopper.orders ?? []) updateOrder(o);
}

/** The status as of now on the server's clock (a read may be up to 2 s old). */
function saleStatus(s) {
  const now = serverNow();
  if (s.status === 'upcoming' && now >= Date.parse(s.starts_at)) return 'open';
  if (s.status === 'open' && now >= Date.parse(s.ends_at)) return 'ended';
  return s.status;
}

/** Cards are made once per sale and updated in place, so a poll keeps what
 * the shopper typed and where the focus is. */
function renderSales() {
  const list = $('sale-list');
  for (const [id, el] of saleCards) {
    if (!sales.has(id)) {
      el.card.remove();
      saleCards.delete(id);
    }
  }
  if (sales.size === 0) {
    list.replaceChildren(h('p', { class: 'muted', 'data-testid': 'sales-empty' }, t('sales.empty')));
    return;
  }
  const wanted = [...sales.values()].map((s) => saleCards.get(s.id)?.card ?? saleCard(s));
  const same = wanted.length === list.children.length && wanted.every((c, i) => list.children[i] === c);
  if (!same) list.replaceChildren(...wanted);
  for (const id of sales.keys()) updateSaleCard(id);
}

function saleCard(s) {
  const id = s.id;
  const fid = (name) => `sale-${id}-${name}`;
  // Labels that change with the language: [element, key].
  const labels = [];
  const label = (el, key) => {
    labels.push([el, key]);
    return el;
  };
  const el = {
    title: h('h2', {}),
    badge: h('span', { class: 'badge', 'data-testid': 'sale-status' }),
    product: h('p', { class: 'product', 'data-testid': 'sale-product' }),
    listLabel: label(h('span', { class: 'muted small' }), 'sale.list_price'),
    listPrice: h('del', { 'data-testid': 'list-price' }),
    salePrice: h('strong', { class: 'sale-price', 'data-testid': 'sale-price' }),
    off: h('span', { class: 'badge off', 'data-testid': 'sale-off' }),
    terms: h('p', { class: 'terms' }),
    clock: h('p', { class: 'clock', 'data-testid': 'sale-countdown' }),
    fill: h('div', { class: 'fill' }),
    stock: h('p', { class: 'stock', 'data-testid': 'sale-stock' }),
    coupon: h('select', { id: fid('coupon'), 'aria-describedby': fid('coupon-note'), 'data-testid': 'sale-coupon', onchange: () => updateSaleCard(id) }),
    couponNote: h('p', { class: 'muted small', id: fid('coupon-note'), 'data-testid': 'coupon-note' }),
    points: h('input', {
      id: fid('points'), type: 'number', min: 1, step: 1, inputmode: 'numeric', autocomplete: 'off',
      'aria-describedby': `${fid('points-note')} ${fid('points-error')}`, 'data-testid': 'sale-points',
    }),
    pointsNote: h('p', { class: 'muted small', id: fid('points-note'), 'data-testid': 'points-note' }),
    pointsError: h('p', { class: 'field-error', id: fid('points-error'), 'aria-live': 'polite', 'data-testid': 'points-error' }),
    billPrice: h('dd', { 'data-testid': 'bill-price' }),
    billCoupon: h('dd', { 'data-testid': 'bill-coupon' }),
    billPoints: h('dd', { 'data-testid': 'bill-points' }),
    payable: h('dd', { class: 'total', 'data-testid': 'payable' }),
    buy: h('button', { type: 'submit', class: 'claim', 'data-testid': 'buy' }),
    login: h('button', { type: 'button', class: 'claim', 'data-testid': 'sale-login', onclick: askToLogIn }),
    result: h('p', { class: 'result', role: 'status', 'aria-live': 'polite', 'data-testid': 'order-result' }),
    labels,
    couponKey: null,
  };
  el.points.addEventListener('input', () => updateSaleCard(id));
  el.loginRow = h('div', { class: 'row' }, el.login);
  el.bar = h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0 }, el.fill);
  el.fields = h('div', { class: 'order-fields' },
    label(h('label', { for: fid('coupon') }), 'sale.coupon'), el.coupon, el.couponNote,
    label(h('label', { for: fid('points') }), 'sale.points'), el.points, el.pointsNote, el.pointsError,
    h('dl', { class: 'bill', 'data-testid': 'sale-preview' },
      label(h('dt', {}), 'sale.bill.price'), el.billPrice,
      label(h('dt', {}), 'sale.bill.coupon'), el.billCoupon,
      label(h('dt', {}), 'sale.bill.points'), el.billPoints,
      label(h('dt', { class: 'total' }), 'sale.bill.payable'), el.payable));
  el.form = h('form', { class: 'order-form', method: 'post', action: '/', novalidate: true, onsubmit: (e) => {
    e.preventDefault();
    placeOrder(id);
  } }, el.fields, h('div', { class: 'row' }, el.buy));
  el.card = h('article', { class: 'card drop sale', 'data-sale': id, 'data-testid': 'sale' },
    h('div', { class: 'row spread' }, el.title, el.badge),
    el.product,
    h('p', { class: 'prices' }, el.listLabel, el.listPrice, el.salePrice, el.off),
    el.terms, el.clock, el.bar, el.stock,
    el.form, el.loginRow, el.result);
  saleCards.set(id, el);
  return el.card;
}

function askToLogIn() {
  $('auth').hidden = false;
  $('email').focus();
}

/** `10분`, `90초`, `1시간 30분`: a payment window in words. */
function duration(secs) {
  const hours = Math.floor(secs / 3600);
  const minutes = Math.floor((secs % 3600) / 60);
  const seconds = secs % 60;
  return [
    hours ? t('time.hours', { n: num(hours) }) : null,
    minutes ? t('time.minutes', { n: num(minutes) }) : null,
    seconds ? t('time.seconds', { n: num(seconds) }) : null,
  ].filter(Boolean).join(' ');
}

/** A coupon's discount on `price`, as the server computes it: fixed (never
 * above the price), or percent rounded down and capped at its max. */
function couponDiscount(c, price) {
  const d = c.discount;
  const raw = d.type === 'fixed' ? d.amount : Math.min(Math.floor((price * d.percent) / 100), d.max_amount ?? Infinity);
  return Math.max(0, Math.min(raw, price));
}

/** Why a coupon cannot pay for a unit at `price`, in words; null if it can. */
function couponBlock(c, price, now) {
  if (c.min_order_amount > price) return t('sale.coupon_min', { amount: won(c.min_order_amount) });
  if (Date.parse(c.valid_from) > now) return t('sale.coupon_not_yet', { date: dateTime(c.valid_from) });
  if (Date.parse(c.valid_until) <= now) return t('coupon.expired');
  return null;
}

/** The coupon choices for one sale, rebuilt only when they change (a poll
 * must not close an open list); the choice is kept while it is offered. */
function renderCouponOptions(el, s) {
  const coupons = shopper.coupons ?? [];
  const now = serverNow();
  const blocked = coupons.map((c) => couponBlock(c, s.sale_price, now));
  const key = JSON.stringify([currentLang(), s.sale_price, coupons.map((c) => c.id), blocked]);
  if (el.couponKey === key) return;
  el.couponKey = key;
  const was = el.coupon.value;
  const options = [h('option', { value: '' }, t('sale.no_coupon'))];
  coupons.forEach((c, i) => {
    const vars = { name: c.name, discount: discountText(c.discount) };
    options.push(blocked[i]
      ? h('option', { value: c.id, disabled: true }, t('sale.coupon_unusable', { ...vars, reason: blocked[i] }))
      : h('option', { value: c.id }, t('sale.coupon_option', { ...vars, amount: won(couponDiscount(c, s.sale_price)) })));
  });
  el.coupon.replaceChildren(...options);
  el.coupon.value = options.some((o) => o.value === was && !o.disabled) ? was : '';
  const usable = blocked.filter((b) => !b).length;
  setText(el.couponNote, shopper.coupons === null ? ''
    : usable === 0 ? t('sale.coupons_none')
      : usable < coupons.length ? t('sale.coupons_some', { usable: num(usable), total: num(coupons.length) }) : '');
}

/** What the shopper would pay with the chosen coupon and points, and what
 * is wrong with the points typed (null if nothing). */
function quote(s, el) {
  const coupon = (shopper.coupons ?? []).find((c) => c.id === el.coupon.value) ?? null;
  const discount = coupon ? couponDiscount(coupon, s.sale_price) : 0;
  const afterCoupon = s.sale_price - discount;
  const balance = shopper.points?.balance ?? 0;
  const most = Math.max(0, Math.min(afterCoupon, balance));
  // No points to use (none held, or nothing left to pay): the field is off.
  const raw = most < 1 ? '' : el.points.value.trim();
  let used = 0;
  let error = null;
  if (raw !== '' || (most >= 1 && el.points.validity.badInput)) {
    const n = Number(raw);
    if (raw === '' || !Number.isInteger(n) || n < 1 || n > afterCoupon) {
      error = afterCoupon < 1 ? t('sale.v.points_free') : t('sale.v.points', { max: points(afterCoupon) });
    } else if (n > balance) {
      error = t('sale.v.points_balance', { balance: points(balance) });
    } else {
      used = n;
    }
  }
  return { coupon, discount, points: used, error, most, payable: afterCoupon - used };
}

/** How many of my orders of this sale count towards its limit (pending or paid). */
function ordersHeld(saleId) {
  return (shopper.orders ?? []).filter((o) => o.sale_id === saleId && ['pending_payment', 'paid'].includes(o.status)).length;
}

function updateSaleCard(id) {
  const s = sales.get(id);
  const el = saleCards.get(id);
  if (!s || !el) return;
  for (const [node, key] of el.labels) setText(node, t(key));
  const status = saleStatus(s);
  el.card.dataset.status = status;
  setText(el.title, s.name);
  setText(el.badge, t(`status.${status}`));
  el.badge.className = `badge status-${status}`;
  setText(el.product, s.product.name);
  const cut = s.product.list_price > s.sale_price;
  el.listLabel.hidden = !cut;
  el.listPrice.hidden = !cut;
  el.off.hidden = !cut;
  setText(el.listPrice, won(s.product.list_price));
  setText(el.salePrice, won(s.sale_price));
  setText(el.off, t('sale.off', { percent: Math.floor((100 * (s.product.list_price - s.sale_price)) / s.product.list_price) }));
  setText(el.terms, [t('sale.per_user', { limit: num(s.per_user_limit) }), t('sale.pay_within', { time: duration(s.payment_ttl_secs) })].join(' · '));
  const now = serverNow();
  if (status === 'upcoming') setText(el.clock, `${t('sale.opens_in')} ${countdown(Date.parse(s.starts_at) - now)}`);
  else if (status === 'open') setText(el.clock, `${t('sale.ends_in')} ${countdown(Date.parse(s.ends_at) - now)}`);
  else setText(el.clock, '');
  el.fill.style.width = `${(100 * s.remaining_quantity) / Math.max(1, s.total_quantity)}%`;
  el.bar.setAttribute('aria-valuemax', String(s.total_quantity));
  el.bar.setAttribute('aria-valuenow', String(s.remaining_quantity));
  el.bar.setAttribute('aria-label', t('drop.remaining', { remaining: s.remaining_quantity, total: s.total_quantity }));
  setText(el.stock, t('drop.remaining', { remaining: num(s.remaining_quantity), total: num(s.total_quantity) }));

  const b = buying.get(id);
  setText(el.result, b?.result?.text() ?? '');
  el.result.className = `result ${b?.result ? (b.result.ok ? 'ok' : 'bad') : ''}`;
  const live = status === 'open' || status === 'upcoming';
  el.form.hidden = !session.signedIn;
  el.loginRow.hidden = session.signedIn || !live;
  setText(el.login, t('sale.login_to_buy'));
  if (!session.signedIn) return;

  // The order panel, while there is something to order.
  const held = ordersHeld(id);
  el.fields.hidden = !live || held >= s.per_user_limit;
  renderCouponOptions(el, s);
  const q = quote(s, el);
  const balance = shopper.points?.balance;
  el.points.disabled = q.most < 1;
  el.points.max = String(q.most);
  setText(el.pointsNote, balance === undefined ? ''
    : q.most < 1 ? t(balance < 1 ? 'sale.points_none' : 'sale.points_free') : t('sale.points_note', { balance: points(balance), max: points(q.most) }));
  setText(el.pointsError, q.error ?? '');
  if (q.error) el.points.setAttribute('aria-invalid', 'true');
  else el.points.removeAttribute('aria-invalid');
  setText(el.billPrice, won(s.sale_price));
  setText(el.billCoupon, q.discount ? `-${won(q.discount)}` : won(0));
  setText(el.billPoints, q.points ? `-${points(q.points)}` : points(0));
  setText(el.payable, won(q.payable));

  let text = t('sale.buy');
  let enabled = false;
  if (b?.busy) text = t('sale.buying');
  else if (held >= s.per_user_limit) text = t('sale.limit_held', { held: num(held), limit: num(s.per_user_limit) });
  else if (status === 'open') enabled = true;
  else if (status === 'upcoming') text = t('sale.not_yet');
  else text = t(`status.${status}`);
  setText(el.buy, text);
  el.buy.disabled = !enabled;
  el.buy.setAttribute('aria-busy', b?.busy ? 'true' : 'false');
}

/** The words for an order the server refused. */
function orderFailure(err, s) {
  switch (err.code) {
    case 'limit_reached': return () => t('sale.err.limit_reached', { limit: num(s.per_user_limit) });
    case 'insufficient_points': return () => t('sale.err.insufficient_points', { balance: points(shopper.points?.balance ?? 0) });
    case 'rate_limited': return () => t('sale.err.rate_limited', { seconds: num(err.retryAfter ?? 1) });
    case 'invalid_input':
      if (err.field === 'points') return () => t('sale.err.points');
      return () => err.text;
    default: {
      const key = `sale.err.${err.code}`;
      return () => (t(key) === key ? err.text : t(key));
    }
  }
}

async function placeOrder(id) {
  const s = sales.get(id);
  const el = saleCards.get(id);
  if (!s || !el) return;
  if (!session.signedIn) {
    askToLogIn();
    return;
  }
  const prev = buying.get(id);
  if (prev?.busy) return;
  const q = quote(s, el);
  if (q.error) {
    el.points.focus();
    return;
  }
  const body = {};
  if (q.coupon) body.coupon_id = q.coupon.id;
  if (q.points > 0) body.points = q.points;
  const fields = JSON.stringify(body);
  const attempt = prev?.key && prev.fields === fields ? prev : { fields, key: newId() };
  attempt.busy = true;
  attempt.result = null;
  buying.set(id, attempt);
  updateSaleCard(id);
  const started = serverNow();
  let lost = false;
  try {
    let order;
    // One retry after no answer, with the same key: one order either way.
    for (let round = 0; ; round++) {
      try {
        order = await api(session, 'POST', `/api/v1/sales/${id}/orders`, body, { 'Idempotency-Key': attempt.key });
        break;
      } catch (err) {
        // After a lost answer the first request may have placed the order,
        // and the server checks the coupon and points before it replays a
        // key: the retry is then refused for what that order holds. Look.
        const mine = lost && ['reserved', 'insufficient_points'].includes(err.code) ? await lostOrder(id, body, started) : null;
        if (mine) {
          order = mine;
          break;
        }
        if (err.code !== 'network' || round >= 1) throw err;
        lost = true;
      }
    }
    attempt.key = null;
    attempt.result = {
      ok: true,
      text: () => t('sale.ordered', { seq: num(order.seq), payable: won(order.payable_amount), until: dateTime(order.expires_at) }),
    };
    showOrder(order);
    el.coupon.value = '';
    el.points.value = '';
    // The coupon is reserved and the points held now: the panel follows.
    loadShopperExtras();
    loadSales();
  } catch (err) {
    if (err.code === 'unauthorized') {
      logout();
      return;
    }
    // An answer refuses this attempt: the next press is a new one. No answer
    // (network, 5xx) or 429 (nothing taken): the same key again.
    if (err.code !== 'network' && err.code !== 'rate_limited' && err.status < 500) attempt.key = null;
    attempt.result = { ok: false, text: orderFailure(err, s) };
    if (['sold_out', 'not_open', 'ended', 'paused', 'not_found'].includes(err.code)) loadSales();
    if (err.code === 'limit_reached') loadOrders();
    if (['reserved', 'already_used', 'expired', 'not_yet_valid', 'below_min_order', 'not_found', 'insufficient_points'].includes(err.code)) {
      loadShopperExtras();
    }
  } finally {
    attempt.busy = false;
    updateSaleCard(id);
  }
}

/** The pending order of this sale that a request whose answer was lost
 * placed: the one holding its coupon, or its points placed since it started. */
async function lostOrder(saleId, body, since) {
  let r;
  try {
    r = await api(session, 'GET', '/api/v1/me/orders?limit=20');
  } catch {
    return null;
  }
  return r.orders.find((o) => o.sale_id === saleId && o.status === 'pending_payment'
    && (body.coupon_id ? o.coupon_id === body.coupon_id
      : o.points_used === body.points && Date.parse(o.created_at) >= since - 60_000)) ?? null;
}

/** My available coupons and my points, for the order panel. */
async function loadShopperExtras() {
  if (!session.signedIn) return;
  const gen = shopper.gen;
  let wallet;
  let view;
  try {
    [wallet, view] = await Promise.all([
      api(session, 'GET', '/api/v1/me/coupons?status=available&limit=200'),
      api(session, 'GET', '/api/v1/me/points'),
    ]);
  } catch (err) {
    if (err.code === 'unauthorized') logout();
    return;
  }
  const coupons = [];
  for (const c of wallet.coupons) coupons.push({ ...c, name: await campaignName(c.campaign_id) });
  if (gen !== shopper.gen) return;
  shopper.coupons = coupons;
  shopper.points = view;
  for (const id of saleCards.keys()) updateSaleCard(id);
}

// ---- my orders ------------------------------------------------------------------------------

async function loadOrders() {
  if (!session.signedIn) return;
  const gen = shopper.gen;
  let r;
  try {
    r = await api(session, 'GET', '/api/v1/me/orders?limit=50');
  } catch (err) {
    if (err.code === 'unauthorized') logout();
    return;
  }
  if (gen !== shopper.gen) return;
  shopper.orders = r.orders;
  renderOrders();
}

/** An order just placed, paid or cancelled: in the list at once. */
function showOrder(o) {
  const list = shopper.orders ?? [];
  const i = list.findIndex((x) => x.id === o.id);
  if (i >= 0) list[i] = o;
  else list.unshift(o);
  shopper.orders = list;
  renderOrders();
}

/** Items are made once per order and updated in place (the countdown ticks). */
function renderOrders() {
  const box = $('my-orders');
  box.hidden = !session.signedIn || shopper.orders === null;
  for (const id of saleCards.keys()) updateSaleCard(id);
  if (box.hidden) return;
  const ids = new Set(shopper.orders.map((o) => o.id));
  for (const [id, el] of orderItems) {
    if (!ids.has(id)) {
      el.item.remove();
      orderItems.delete(id);
    }
  }
  const list = $('order-list');
  if (shopper.orders.length === 0) {
    list.replaceChildren(h('li', { class: 'muted' }, t('orders.empty')));
    return;
  }
  const wanted = shopper.orders.map((o) => orderItems.get(o.id)?.item ?? orderItem(o));
  const same = wanted.length === list.children.length && wanted.every((c, i) => list.children[i] === c);
  if (!same) list.replaceChildren(...wanted);
  for (const o of shopper.orders) updateOrder(o);
}

function orderItem(o) {
  const el = {
    title: h('strong', { 'data-testid': 'order-sale' }),
    badge: h('span', { class: 'badge', 'data-testid': 'order-status' }),
    amount: h('p', { class: 'order-amount', 'data-testid': 'order-payable' }),
    breakdown: h('p', { class: 'muted small', 'data-testid': 'order-breakdown' }),
    clock: h('p', { class: 'clock small', 'data-testid': 'order-expires' }),
    pay: h('button', { type: 'button', 'data-testid': 'order-pay', onclick: () => settleOrder(o.id, 'pay') }),
    cancel: h('button', { type: 'button', class: 'secondary', 'data-testid': 'order-cancel', onclick: () => settleOrder(o.id, 'cancel') }),
    result: h('p', { class: 'result', role: 'status', 'aria-live': 'polite', 'data-testid': 'order-settle-result' }),
    meta: h('p', { class: 'muted small' }),
  };
  el.actions = h('div', { class: 'row' }, el.pay, el.cancel);
  el.item = h('li', { 'data-order': o.id, 'data-testid': 'order' },
    h('div', { class: 'row spread' }, el.title, el.badge), el.amount, el.breakdown, el.clock, el.actions, el.result, el.meta);
  orderItems.set(o.id, el);
  return el.item;
}

function updateOrder(o) {
  const el = orderItems.get(o.id);
  if (!el) return;
  el.item.dataset.status = o.status;
  setText(el.title, sales.get(o.sale_id)?.name ?? '');
  setText(el.badge, t(`order.${o.status}`));
  el.badge.className = `badge order-${o.status}`;
  setText(el.amount, t('order.payable', { amount: won(o.payable_amount) }));
  setText(el.breakdown, [
    t('order.unit', { amount: won(o.unit_price) }),
    o.coupon_discount ? t('order.coupon', { amount: won(o.coupon_discount) }) : null,
    o.points_used ? t('order.points', { amount: points(o.points_used) }) : null,
    t('order.seq', { seq: num(o.seq) }),
  ].filter(Boolean).join(' · '));
  const pending = o.status === 'pending_payment';
  const left = Date.parse(o.expires_at) - serverNow();
  el.clock.hidden = !pending;
  setText(el.clock, !pending ? '' : left > 0 ? t('order.expires_in', { time: countdown(left) }) : t('order.overdue'));
  const busy = orderBusy.get(o.id);
  // Past its deadline an order can be neither paid nor cancelled: it expires.
  const open = pending && (left > 0 || Boolean(busy));
  el.actions.hidden = !open;
  el.pay.hidden = testPaymentsOff;
  setText(el.pay, busy === 'pay' ? t('order.paying') : t('order.pay'));
  setText(el.cancel, busy === 'cancel' ? t('order.cancelling') : t('order.cancel'));
  el.pay.disabled = Boolean(busy);
  el.cancel.disabled = Boolean(busy);
  el.pay.setAttribute('aria-busy', busy === 'pay' ? 'true' : 'false');
  el.cancel.setAttribute('aria-busy', busy === 'cancel' ? 'true' : 'false');
  const r = orderResults.get(o.id);
  setText(el.result, r?.text() ?? '');
  el.result.className = `result ${r ? (r.ok ? 'ok' : 'bad') : ''}`;
  setText(el.meta, t('order.meta', { when: dateTime(o.created_at), id: o.id }));
}

/** Pay (test payments) or cancel an order of mine. */
async function settleOrder(id, action) {
  if (orderBusy.has(id)) return;
  if (action === 'cancel' && !window.confirm(t('order.confirm_cancel'))) return;
  orderBusy.set(id, action);
  orderResults.delete(id);
  renderOrders();
  try {
    const o = await api(session, 'POST', `/api/v1/orders/${id}/${action}`);
    orderResults.set(id, {
      ok: true,
      text: () => (action === 'pay' ? t('order.paid_ok', { amount: won(o.payable_amount) }) : t('order.cancelled_ok')),
    });
    orderBusy.delete(id);
    // "Pay by …" is old news once the order is paid or cancelled.
    const b = buying.get(o.sale_id);
    if (b?.result?.ok) b.result = null;
    showOrder(o);
  } catch (err) {
    if (err.code === 'unauthorized') {
      logout();
      return;
    }
    if (err.code === 'test_payments_off') testPaymentsOff = true;
    orderResults.set(id, { ok: false, text: () => err.text });
    loadOrders();
  } finally {
    orderBusy.delete(id);
    renderOrders();
  }
  // The coupon and points moved with the order (used, or given back), and a
  // cancelled unit is back on sale: the panel, the stock and the wallet follow.
  loadShopperExtras();
  loadSales();
  if (currentView() === 'wallet') loadWallet();
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
    case 'order.created': case 'order.paid': case 'order.expired': case 'order.cancelled': case 'order.refunded':
      return t(`event.${e.type}`, { sale: sales.get(d.sale_id)?.name ?? '', amount: won(d.payable_amount ?? 0) });
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
  const kind = e.type === 'coupon.claim_failed' ? 'error' : ['coupon.issued', 'points.earned', 'order.paid'].includes(e.type) ? 'ok' : 'info';
  toast(eventText(e), kind);
  if (e.type === 'coupon.issued' || e.type === 'coupon.used' || e.type === 'coupon.use_cancelled') {
    refreshHeld();
    if (currentView() === 'wallet') loadWallet();
  }
  if (e.type.startsWith('points.') && currentView() === 'wallet') loadPoints();
  // An order moved (here or by the shop's payment): the list and the panel follow.
  if (currentView() === 'sales' && (e.type.startsWith('order.') || e.type.startsWith('coupon.') || e.type.startsWith('points.'))) {
    loadShopperExtras();
    if (e.type.startsWith('order.')) loadOrders();
  }
  if (currentView() === 'inbox') loadInbox();
  else refreshUnread();
}

// ---- start -----------------------------------------------------------------------------------

function start() {
  setupLangToggle($('lang'));
  onLangChange(() => {
    for (const id of cards.keys()) updateCard(id);
    if (sales.size) renderSales();
    renderOrders();
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
  // The sales are polled only while somebody can see them.
  document.addEventListener('visibilitychange', watchSales);
  renderAccount();
  showView();
  dropsLoaded = loadDrops();
  if (session.signedIn) signedIn();
  // Countdowns tick on their own; stock changes arrive on the live stream
  // (drops) or the poll (sales).
  setInterval(() => {
    for (const id of cards.keys()) updateCard(id);
    if (currentView() === 'sales') {
      for (const id of saleCards.keys()) updateSaleCard(id);
      for (const o of shopper.orders ?? []) updateOrder(o);
    }
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
