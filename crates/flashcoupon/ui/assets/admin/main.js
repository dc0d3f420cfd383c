// The admin console, put together: the log-in, and the screens by hash
// (campaigns and their dashboards, time sales and their pages, service keys,
// members' points, a member's page, the overview). Each screen lives in its
// own module; this one starts them.

import { $, api, applyLabels, onLangChange, setupLangToggle, t } from '../common.js';
import { campaignsScreen, setupCampaigns } from './campaigns.js';
import { relabel, route, session, setScreens, signOut } from './console.js';
import { dashboardScreen, setupDashboard } from './dashboard.js';
import { overviewScreen } from './overview.js';
import { pointsScreen, setupPoints } from './points.js';
import { salePageScreen, setupSalePage } from './sale-page.js';
import { salesScreen, setupSales } from './sales.js';
import { keysScreen, setupKeys } from './service-keys.js';
import { setupUserPage, userScreen } from './user-page.js';

async function login(e) {
  e.preventDefault();
  $('auth-error').textContent = '';
  const email = $('email').value.trim();
  try {
    const r = await api(null, 'POST', '/api/v1/auth/login', { email, password: $('password').value });
    if (r.role !== 'admin') {
      $('auth-error').textContent = t('auth.not_admin');
      return;
    }
    session.save({ token: r.token, email, userId: r.user_id, role: r.role });
    $('password').value = '';
    route();
  } catch (err) {
    $('auth-error').textContent = err.text;
  }
}

function start() {
  // The campaign list is the default: last.
  setScreens([dashboardScreen, keysScreen, pointsScreen, salesScreen, salePageScreen, userScreen, overviewScreen, campaignsScreen]);
  setupLangToggle($('lang'));
  onLangChange(relabel);
  applyLabels();
  $('auth-form').addEventListener('submit', login);
  $('logout').addEventListener('click', signOut);
  setupCampaigns();
  setupDashboard();
  setupKeys();
  setupPoints();
  setupSales();
  setupSalePage();
  setupUserPage();
  window.addEventListener('hashchange', route);
  route();
}

start();
