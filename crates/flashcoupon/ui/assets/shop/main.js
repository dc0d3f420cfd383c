// The shoppers' page, put together: drops with a countdown and live stock,
// time sales with orders, the wallet with the code box and points, and the
// inbox. Each part lives in its own module; this one starts them and keeps
// the clocks ticking.

import { $, applyLabels, onLangChange, setupLangToggle } from '../common.js';
import { setupAccount, signedIn } from './account.js';
import { renderRedeem, setupCodeBox, tickRedeem } from './codes.js';
import { setupDrops, updateCards } from './drops.js';
import { loadInbox, setupInbox } from './inbox.js';
import { renderOrders, updateOrders } from './orders.js';
import { currentView, session, showView } from './page.js';
import { setupPoints } from './points.js';
import { setupSalesFeed } from './sales-feed.js';
import { relabelSales, updateSaleCards } from './sales.js';
import { loadWallet } from './wallet.js';

function start() {
  setupLangToggle($('lang'));
  onLangChange(() => {
    updateCards();
    relabelSales();
    renderOrders();
    renderRedeem();
    if (currentView() === 'wallet' && session.signedIn) loadWallet();
    if (currentView() === 'inbox' && session.signedIn) loadInbox();
  });
  applyLabels();
  setupCodeBox();
  setupAccount();
  setupInbox();
  setupPoints();
  setupSalesFeed();
  window.addEventListener('hashchange', showView);
  showView();
  setupDrops();
  if (session.signedIn) signedIn();
  // Countdowns tick on their own; stock changes arrive on the live streams.
  setInterval(() => {
    updateCards();
    if (currentView() === 'sales') {
      updateSaleCards();
      updateOrders();
    }
    tickRedeem();
  }, 250);
}

start();
