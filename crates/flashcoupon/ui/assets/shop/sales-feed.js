// Keeping the sales on screen current: one Server-Sent Events stream per
// sale card in view (the countdown's clock, status and remaining stock move
// as they change), closed once the card leaves the view or the page is
// hidden; and a read of the list (new sales, my pending orders, and for
// upcoming sales newly listed whether I asked to hear of them), seldom while
// every sale in view streams, more often while one cannot.

import { api, toast } from '../common.js';
import { watchSale } from '../live.js';
import { hasPendingOrder, loadOrders, updateOrders } from './orders.js';
import { currentView, onViewChange, session } from './page.js';
import { loadSaleSubscriptions } from './sale-notify.js';
import { patchSale, renderSales, saleCardOf, saleIds, setSales } from './sales.js';

/** Browsers open at most six HTTP/1.1 connections per host, for all of a
 * shopper's windows: the API's calls (and a second window) need the rest. */
const MAX_STREAMS = 2;
/** How often the list is read while every sale in view streams… */
const REFRESH_MS = 30_000;
/** …and while one does not (its stream is down, or more are in view than streams). */
const FALLBACK_MS = 5_000;
/** What a sale's stream says of it. */
const STREAMED = ['status', 'total_quantity', 'remaining_quantity', 'sold_count', 'paused', 'starts_at', 'ends_at'];

/** Per sale streamed: `{stop(), live, last}` (`last`: its last snapshot's fields). */
const streams = new Map();
/** The sales whose cards are in view. */
const inView = new Set();
const watcher = new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (e.isIntersecting) inView.add(e.target.dataset.sale);
    else inView.delete(e.target.dataset.sale);
  }
  syncStreams();
});
/** The list's reads while the sales are on screen: `{timer, due, running, tick}`; null otherwise. */
let poll = null;
/** Whether the last read failed (said once per outage, not every read). */
let failed = false;

onViewChange(watchSales);

export function setupSalesFeed() {
  document.addEventListener('visibilitychange', watchSales);
}

function onScreen() {
  return currentView() === 'sales' && document.visibilityState === 'visible';
}

/** Read the sales now; streams and reads follow while their view is on screen. */
function watchSales() {
  if (poll) clearTimeout(poll.timer);
  poll = null;
  syncStreams();
  if (!onScreen()) return;
  const p = { timer: null, due: Infinity, running: false };
  p.tick = async () => {
    p.timer = null;
    p.due = Infinity;
    p.running = true;
    await loadSales();
    // A pending order moves by itself (paid by the shop, expired): follow it.
    if (session.signedIn && hasPendingOrder()) await loadOrders();
    p.running = false;
    if (poll === p) schedule();
  };
  poll = p;
  p.tick();
}

/** The next read: sooner if a sale in view has no live stream; never later than one already due. */
function schedule() {
  const p = poll;
  if (!p || p.running) return;
  const blind = saleIds().some((id) => inView.has(id) && !streams.get(id)?.live);
  const wait = blind ? FALLBACK_MS : REFRESH_MS;
  if (p.timer !== null && p.due <= Date.now() + wait) return;
  clearTimeout(p.timer);
  p.due = Date.now() + wait;
  p.timer = setTimeout(p.tick, wait);
}

/** Stream the first sales in view (in the list's order), and no others. */
function syncStreams() {
  const wanted = onScreen() ? saleIds().filter((id) => inView.has(id)).slice(0, MAX_STREAMS) : [];
  for (const [id, stream] of streams) {
    if (!wanted.includes(id)) {
      stream.stop();
      streams.delete(id);
    }
  }
  for (const id of wanted) {
    if (streams.has(id)) continue;
    // Live until it says otherwise: a read of the list the moment it opens would be wasted.
    const stream = { live: true, last: null };
    stream.stop = watchSale(id, (snapshot) => {
      stream.last = Object.fromEntries(STREAMED.map((k) => [k, snapshot[k]]));
      patchSale(id, stream.last);
    }, (live) => {
      stream.live = live;
      schedule();
    });
    streams.set(id, stream);
  }
  schedule();
}

export async function loadSales() {
  let list;
  try {
    list = await api(null, 'GET', '/api/v1/sales');
  } catch (err) {
    if (!failed) toast(err.text, 'error');
    failed = true;
    return;
  }
  failed = false;
  // A live stream is newer than a read that may have started before its
  // last change (it sends only changes: an older read would stay).
  setSales(list.sales.map((s) => {
    const stream = streams.get(s.id);
    return stream?.live && stream.last ? { ...s, ...stream.last } : s;
  }));
  renderSales();
  for (const id of saleIds()) watcher.observe(saleCardOf(id).card);
  for (const id of inView) {
    if (!saleCardOf(id)) inView.delete(id);
  }
  syncStreams();
  // Orders name their sale: a sale read only now names them.
  updateOrders();
  loadSaleSubscriptions();
}
