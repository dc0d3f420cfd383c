// Signing in or up, and the signed-in shopper's notification socket: a
// toast for each event, and the parts of the page each one moves.

import { $, api, t, toast } from '../common.js';
import { connectNotifications } from '../live.js';
import { loadSubscriptions, refreshHeld } from './drops.js';
import { eventText, loadInbox, refreshUnread } from './inbox.js';
import { loadShopperExtras } from './order-form.js';
import { loadOrders } from './orders.js';
import { currentView, onSignOut, renderAccount, session, showView, signOut } from './page.js';
import { loadPoints } from './points.js';
import { loadWallet } from './wallet.js';

let stopSocket = () => {};

onSignOut(() => stopSocket());

export function setupAccount() {
  $('auth-form').addEventListener('submit', submitAuth);
  $('logout').addEventListener('click', signOut);
  renderAccount();
}

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

/** A session to use (just made, or kept from an earlier visit): the socket, and what is mine. */
export function signedIn() {
  stopSocket();
  renderAccount();
  stopSocket = connectNotifications(session, onEvent, (live) => {
    $('live-dot').classList.toggle('on', live);
    $('live-dot').title = t(live ? 'live.connected' : 'live.offline');
  });
  refreshHeld();
  loadSubscriptions();
  refreshUnread();
  showView();
}

function onEvent(e) {
  if (e.type === 'session.expired') {
    signOut();
    return;
  }
  const kind = e.type === 'coupon.claim_failed' ? 'error' : ['coupon.issued', 'points.earned', 'order.paid'].includes(e.type) ? 'ok' : 'info';
  toast(eventText(e), kind);
  if (e.type === 'coupon.issued' || e.type === 'coupon.used' || e.type === 'coupon.use_cancelled') {
    refreshHeld();
    if (currentView() === 'wallet') loadWallet();
  }
  if (e.type.startsWith('points.') && currentView() === 'wallet') loadPoints();
  // An order moved (here or by the shop's payment): the list and the form follow.
  if (currentView() === 'sales' && (e.type.startsWith('order.') || e.type.startsWith('coupon.') || e.type.startsWith('points.'))) {
    loadShopperExtras();
    if (e.type.startsWith('order.')) loadOrders();
  }
  if (currentView() === 'inbox') loadInbox();
  else refreshUnread();
}
