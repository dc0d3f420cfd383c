// What every screen of the admin console shares: the admin's session, API
// calls as the admin (a refused session goes back to the log-in), and the
// routing between screens by the URL's hash.

import { $, api, Session } from '../common.js';

export const session = new Session('admin');

/**
 * The screens, each `{section, match(hash), open(match), leave(), relabel()}`
 * (`section`: the element shown; `match` returns something truthy for its
 * hash; `leave` stops what it polls or streams), the last one the default.
 */
let screens = [];
let current = null;
const signOutListeners = [];

export function setScreens(list) {
  screens = list;
}

/** Leave the screen shown, and open the one the hash names (or the log-in). */
export function route() {
  current?.screen.leave?.();
  current = null;
  const signed = session.signedIn && session.role === 'admin';
  $('auth').hidden = signed;
  $('who').textContent = signed ? session.email : '';
  $('logout').hidden = !signed;
  const found = screens.map((screen) => ({ screen, match: screen.match(location.hash) })).find((s) => s.match);
  for (const s of screens) $(s.section).hidden = !signed || s !== found.screen;
  if (!signed) {
    $('email').focus();
    return;
  }
  current = found;
  found.screen.open(found.match);
}

/** The screen shown has its words again (a new language). */
export function relabel() {
  if (session.signedIn) current?.screen.relabel?.();
}

/** `fn()` runs on signing out, after the session is cleared. */
export function onSignOut(fn) {
  signOutListeners.push(fn);
}

export function signOut() {
  session.clear();
  for (const fn of signOutListeners) fn();
  location.hash = '#/';
  route();
}

/** An API call as the admin; an expired session goes back to the log-in. */
export async function call(method, path, body) {
  try {
    return await api(session, method, path, body);
  } catch (err) {
    if (err.code === 'unauthorized' || err.code === 'forbidden') signOut();
    throw err;
  }
}
