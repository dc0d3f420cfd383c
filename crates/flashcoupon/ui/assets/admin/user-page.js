// A member's page for admins (`#/user/{id}`, reached from a winner's e-mail
// or found by e-mail at `#/users`): their coupons by status, points balance
// and held, time-sale orders by status, and their coupons newest first, read
// again every 5 s while the page is on screen.

import { $, dateTime, day, h, num, points, t, toast } from '../common.js';
import { drawBars } from './charts.js';
import { call } from './console.js';

const USER_POLL_MS = 5000;
const COUPON_STATUSES = ['available', 'reserved', 'used', 'expired'];
const ORDER_STATUSES = ['pending_payment', 'paid', 'expired', 'cancelled', 'refunded'];
/** Coupons a page; a refresh reads at most the API's largest page again. */
const PAGE = 100;
const MAX_PAGE = 500;

/** The member shown: {id, summary, coupons, next, stopped, timer}; null on the look-up alone. */
let member = null;
/** Campaign names by id (a coupon names its campaign by id only). */
const campaignNames = new Map();

export const userScreen = {
  section: 'user-view',
  match: (hash) => hash === '#/users' || hash.match(/^#\/user\/([\w-]+)$/),
  open: (m) => openUser(m === true ? null : m[1]),
  leave() {
    stopMember();
  },
  relabel: renderMember,
};

export function setupUserPage() {
  $('user-lookup').addEventListener('submit', lookup);
  $('user-more').addEventListener('click', moreCoupons);
}

function stopMember() {
  if (!member) return;
  member.stopped = true;
  clearTimeout(member.timer);
  member = null;
}

function openUser(id) {
  stopMember();
  $('user-lookup-error').textContent = '';
  $('user-email').removeAttribute('aria-invalid');
  renderMember();
  if (!id) {
    $('user-email').focus();
    return;
  }
  const m = { id, summary: null, coupons: [], next: null, stopped: false, timer: null };
  member = m;
  const tick = async () => {
    if (!document.hidden) await loadMember(m);
    if (!m.stopped) m.timer = setTimeout(tick, USER_POLL_MS);
  };
  tick();
}

async function lookup(e) {
  e.preventDefault();
  const input = $('user-email');
  const error = $('user-lookup-error');
  const email = input.value.trim();
  error.textContent = '';
  input.removeAttribute('aria-invalid');
  const fail = (text) => {
    error.textContent = text;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  };
  if (!email) {
    fail(t('v.required'));
    return;
  }
  $('user-find').disabled = true;
  try {
    const user = await call('GET', `/api/v1/admin/users/lookup?email=${encodeURIComponent(email)}`);
    location.hash = `#/user/${user.id}`;
  } catch (err) {
    fail(err.code === 'not_found' ? t('points.no_user', { email }) : err.text);
  } finally {
    $('user-find').disabled = false;
  }
}

/** The summary and the coupons shown so far (the first page at least), afresh. */
async function loadMember(m) {
  const limit = Math.min(MAX_PAGE, Math.max(PAGE, m.coupons.length));
  let summary;
  let page;
  try {
    [summary, page] = await Promise.all([
      call('GET', `/api/v1/admin/users/${m.id}/summary`),
      call('GET', `/api/v1/users/${m.id}/coupons?limit=${limit}`),
    ]);
    await nameCampaigns(page.coupons);
  } catch (err) {
    if (m.stopped) return;
    if (err.code === 'not_found') {
      stopMember();
      renderMember();
      $('user-lookup-error').textContent = t('user.not_found');
    } else if (err.code !== 'network') {
      toast(err.text, 'error');
    }
    return;
  }
  if (m.stopped) return;
  // The form shows whom the page is about, unless the admin is typing another.
  if (!m.summary && document.activeElement !== $('user-email')) $('user-email').value = summary.email;
  m.summary = summary;
  m.coupons = page.coupons;
  m.next = page.next ?? null;
  renderMember();
}

async function moreCoupons() {
  const m = member;
  if (!m || m.next === null) return;
  $('user-more').disabled = true;
  try {
    const page = await call('GET', `/api/v1/users/${m.id}/coupons?limit=${PAGE}&before=${m.next}`);
    await nameCampaigns(page.coupons);
    if (m.stopped) return;
    m.coupons.push(...page.coupons);
    m.next = page.next ?? null;
    renderMember();
  } catch (err) {
    toast(err.text, 'error');
  } finally {
    $('user-more').disabled = false;
  }
}

/** Learn the names of the campaigns these coupons came from (once each). */
async function nameCampaigns(coupons) {
  const unknown = [...new Set(coupons.map((c) => c.campaign_id))].filter((id) => !campaignNames.has(id));
  await Promise.all(unknown.map(async (id) => {
    try {
      campaignNames.set(id, (await call('GET', `/api/v1/campaigns/${id}`)).name);
    } catch {
      // Shown by its id; asked again with the next coupons.
    }
  }));
}

function renderMember() {
  const m = member;
  const s = m?.summary;
  $('user-member').hidden = !s;
  if (!s) return;
  $('user-who').textContent = s.email;
  $('user-meta').textContent = t('user.meta', { id: s.user_id, role: t(`user.role.${s.role}`), created: dateTime(s.created_at) });
  for (const st of COUPON_STATUSES) $(`ucoupon-${st}`).textContent = num(s.coupons[st]);
  $('upoints-balance').textContent = points(s.points.balance);
  $('upoints-held').textContent = points(s.points.held);
  drawBars($('user-orders'), ORDER_STATUSES.map((st) => ({ key: st, label: t(`order.${st}`), n: s.orders[st] ?? 0, cls: `s-${st}` })));
  const rows = m.coupons.map((c) => h('tr', { 'data-coupon': c.id, 'data-status': c.status, 'data-testid': 'user-coupon' },
    h('td', {}, h('a', { href: `#/campaign/${c.campaign_id}` }, campaignNames.get(c.campaign_id) ?? c.campaign_id)),
    h('td', { class: 'num' }, num(c.seq)),
    h('td', {}, h('span', { class: `badge coupon-${c.status}` }, t(`coupon.${c.status}`))),
    h('td', { class: 'small' }, dateTime(c.issued_at)),
    h('td', { class: 'small' }, t('user.until', { date: day(c.valid_until) })),
    h('td', { class: 'small' }, orderText(c))));
  $('user-coupons').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 6, class: 'muted' }, t('user.no_coupons')))]));
  $('user-more').hidden = m.next === null;
}

function orderText(c) {
  if (c.status === 'used' && c.used_at) return t('user.used', { date: dateTime(c.used_at), order: c.order_id ?? '–' });
  if (c.status === 'reserved' && c.order_id) return t('user.held_for', { order: c.order_id });
  return '';
}
