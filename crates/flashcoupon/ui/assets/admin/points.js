// A member's points (적립금) for admins: found by e-mail, their balance,
// what is held, the soonest expiries and the history page by page, and an
// adjustment either way with a reason, applied once however often it is sent.

import { $, dateTime, h, newId, num, points, signedPoints, t, toast, withOneRetry } from '../common.js';
import { entryNote, expiryItems, pointsKind, readPoints, readPointsPage } from '../ledger.js';
import { call, onSignOut } from './console.js';
import { int, MAX_VALID_DAYS } from './form.js';

/** An adjustment's limit either way (points.rs); how many expiry days are listed. */
const MAX_POINTS = 1_000_000_000_000;
const EXPIRIES_SHOWN = 5;

const get = (path) => call('GET', path);

export const pointsScreen = {
  section: 'points-view',
  match: (hash) => hash === '#/points',
  open: openPoints,
  relabel() {
    renderMember();
    renderAdjust();
  },
};

export function setupPoints() {
  $('points-lookup').addEventListener('submit', lookupMember);
  $('adjust-form').addEventListener('submit', adjustPoints);
  $('points-more').addEventListener('click', moreMemberHistory);
  renderAdjust();
}

/** The member shown: {user, view, entries, next, gen} (`gen` counts loads, so
 * an answer to a replaced one is dropped); null before a look-up. */
let member = null;
/** The adjustment being made: its fields, the reference sent with them, and
 * whether it is in flight. Sending the same fields again after no answer
 * reuses the reference, so the server applies it once; a new reference
 * only for new fields or after an answer. */
let adjusting = null;

onSignOut(() => {
  member = null;
  adjusting = null;
  renderMember();
});

function openPoints() {
  renderAdjust();
  if (member) loadMember(member);
  else $('points-email').focus();
}

async function lookupMember(e) {
  e.preventDefault();
  const input = $('points-email');
  const error = $('points-lookup-error');
  const email = input.value.trim();
  error.textContent = '';
  input.removeAttribute('aria-invalid');
  const fail = (text) => {
    // Not the member asked for: show nobody's points rather than the last one's.
    member = null;
    renderMember();
    error.textContent = text;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  };
  if (!email) {
    fail(t('v.required'));
    return;
  }
  let user;
  $('points-find').disabled = true;
  try {
    user = await call('GET', `/api/v1/admin/users/lookup?email=${encodeURIComponent(email)}`);
  } catch (err) {
    fail(err.code === 'not_found' ? t('points.no_user', { email }) : err.text);
    return;
  } finally {
    $('points-find').disabled = false;
  }
  member = { user, view: null, entries: [], next: null, gen: 0 };
  adjusting = null;
  $('adjust-form').reset();
  clearAdjustMessages();
  $('adjust-result').textContent = '';
  renderAdjust();
  await loadMember(member);
}

/** The balance and the first page of history, afresh (as many rows as shown). */
async function loadMember(m) {
  const gen = ++m.gen;
  let read;
  try {
    read = await readPoints(get, `/api/v1/users/${m.user.id}/points`, m.entries.length);
  } catch (err) {
    if (member === m) toast(err.text, 'error');
    return;
  }
  if (member !== m || gen !== m.gen) return;
  Object.assign(m, read);
  renderMember();
}

async function moreMemberHistory() {
  const m = member;
  if (!m || m.next === null) return;
  const gen = m.gen;
  $('points-more').disabled = true;
  try {
    const page = await readPointsPage(get, `/api/v1/users/${m.user.id}/points`, m.next);
    if (member !== m || gen !== m.gen) return;
    m.entries.push(...page.entries);
    m.next = page.next;
    renderMember();
  } catch (err) {
    toast(err.text, 'error');
  } finally {
    $('points-more').disabled = false;
  }
}

function renderMember() {
  const m = member;
  $('points-member').hidden = !m?.view;
  if (!m?.view) return;
  $('points-who').textContent = m.user.email;
  $('points-uid').textContent = t('points.user_id', { id: m.user.id });
  $('points-balance').textContent = points(m.view.balance);
  $('points-held').textContent = points(m.view.held);
  const expiries = expiryItems(m.view.expiring, EXPIRIES_SHOWN);
  $('points-expiring').replaceChildren(...(expiries.length ? expiries : [h('li', { class: 'muted' }, t('points.none_expiring'))]));
  const rows = m.entries.map((e) => h('tr', { 'data-entry': e.id, 'data-kind': e.kind, 'data-testid': 'points-row' },
    h('td', { class: 'small' }, dateTime(e.created_at)),
    h('td', {}, h('span', { class: 'badge' }, pointsKind(e.kind))),
    h('td', { class: `num amount ${e.amount > 0 ? 'plus' : 'minus'}` }, signedPoints(e.amount)),
    h('td', { class: 'num' }, points(e.balance_after)),
    h('td', { class: 'note small' }, entryNote(e))));
  $('points-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, t('points.empty')))]));
  $('points-more').hidden = m.next === null;
}

function renderAdjust() {
  const busy = Boolean(adjusting?.busy);
  const button = $('adjust-submit');
  button.textContent = busy ? t('points.applying') : t('points.apply');
  button.disabled = busy;
  button.setAttribute('aria-busy', busy ? 'true' : 'false');
}

/** The adjust form's inputs, by the API's field names. */
const ADJUST_FIELDS = { amount: 'adjust-amount', reason: 'adjust-reason', valid_days: 'adjust-valid-days' };

function clearAdjustMessages() {
  for (const id of Object.values(ADJUST_FIELDS)) {
    $(`${id}-error`).textContent = '';
    $(id).removeAttribute('aria-invalid');
  }
  $('adjust-error').textContent = '';
}

function showAdjustError(field, text) {
  $(`${ADJUST_FIELDS[field]}-error`).textContent = text;
  $(ADJUST_FIELDS[field]).setAttribute('aria-invalid', 'true');
}

async function adjustPoints(e) {
  e.preventDefault();
  const m = member;
  if (!m || adjusting?.busy) return;
  clearAdjustMessages();
  $('adjust-result').textContent = '';
  $('adjust-result').className = 'result';
  const errors = {};
  const raw = $('adjust-amount').value.trim();
  const amount = Number(raw);
  if (raw === '') errors.amount = t('v.required');
  else if (!Number.isInteger(amount) || amount === 0 || Math.abs(amount) > MAX_POINTS) {
    errors.amount = t('v.points_amount', { min: num(-MAX_POINTS), max: num(MAX_POINTS) });
  }
  const reason = $('adjust-reason').value.trim();
  if (!reason) errors.reason = t('v.required');
  else if ([...reason].length > 500) errors.reason = t('v.reason');
  // Days apply to points added; taken points keep their lots' expiry.
  const validDays = amount > 0 ? int($('adjust-valid-days'), 1, MAX_VALID_DAYS, errors, 'valid_days', true) : undefined;
  const bad = Object.entries(errors);
  if (bad.length) {
    for (const [k, msg] of bad) showAdjustError(k, msg);
    $(ADJUST_FIELDS[bad[0][0]]).focus();
    return;
  }
  const body = validDays === undefined ? { amount, reason } : { amount, reason, valid_days: validDays };
  const fields = JSON.stringify([m.user.id, body]);
  if (adjusting?.fields !== fields) adjusting = { fields, reference: `adj-${Date.now()}-${newId().slice(0, 8)}`, busy: false };
  const attempt = adjusting;
  attempt.busy = true;
  renderAdjust();
  try {
    // One retry after no answer, with the same reference: applied once either way.
    const entry = await withOneRetry(() => call('POST', `/api/v1/admin/users/${m.user.id}/points/adjust`, { ...body, reference: attempt.reference }));
    if (adjusting === attempt) adjusting = null;
    if (member !== m) return;
    $('adjust-form').reset();
    $('adjust-result').textContent = t('points.adjusted', { amount: signedPoints(entry.amount), balance: points(entry.balance_after) });
    $('adjust-result').className = 'result ok';
    await loadMember(m);
  } catch (err) {
    // Refused, not lost: the same fields again are a new adjustment.
    if (err.code !== 'network' && err.status < 500 && adjusting === attempt) adjusting = null;
    if (member !== m) return;
    if (err.code === 'insufficient_points') {
      await loadMember(m);
      $('adjust-error').textContent = t('points.insufficient', { balance: points(m.view.balance) });
      $('adjust-amount').focus();
    } else if (ADJUST_FIELDS[err.field]) {
      showAdjustError(err.field, err.text);
      $(ADJUST_FIELDS[err.field]).focus();
    } else {
      $('adjust-error').textContent = err.text;
    }
  } finally {
    attempt.busy = false;
    renderAdjust();
  }
}
