// What every part of the shop page shares: the shopper's session, which view
// is on screen, the log-in prompt, and the hooks that let each part follow a
// change of view or forget the shopper on signing out.

import { $, Session } from '../common.js';

export const session = new Session('shop');

const VIEWS = ['drops', 'sales', 'wallet', 'inbox'];
/** Drops and sales are for anyone to see; the rest asks to log in. */
const PUBLIC_VIEWS = ['drops', 'sales'];

const viewListeners = [];
const signOutListeners = [];

export function currentView() {
  const v = location.hash.replace('#', '');
  return VIEWS.includes(v) ? v : 'drops';
}

/** `fn(view)` runs each time a view is shown (on navigation, sign-in and sign-out). */
export function onViewChange(fn) {
  viewListeners.push(fn);
}

export function showView() {
  const view = currentView();
  const needsLogin = !PUBLIC_VIEWS.includes(view) && !session.signedIn;
  for (const s of document.querySelectorAll('[data-view]')) s.hidden = s.dataset.view !== view || needsLogin;
  for (const a of document.querySelectorAll('[data-tab]')) {
    if (a.dataset.tab === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  $('auth').hidden = session.signedIn;
  for (const fn of viewListeners) fn(view);
}

export function renderAccount() {
  $('who').textContent = session.signedIn ? session.email : '';
  $('logout').hidden = !session.signedIn;
  $('auth').hidden = session.signedIn;
}

/** Ordering or claiming asks to log in first: the form, focused. */
export function askToLogIn() {
  $('auth').hidden = false;
  $('email').focus();
}

/** `fn()` runs on signing out, after the session is cleared: each part
 * forgets what it held of the shopper and redraws. */
export function onSignOut(fn) {
  signOutListeners.push(fn);
}

/** Sign out (the button, or a session the server no longer accepts), then show the drops. */
export function signOut() {
  session.clear();
  for (const fn of signOutListeners) fn();
  renderAccount();
  location.hash = '#drops';
  showView();
}
