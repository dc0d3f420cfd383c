// What reaches both pages without being asked for: the signed-in user's
// notifications over the WebSocket, and live stock over Server-Sent Events.

import { syncServerTime } from './common.js';

/**
 * The signed-in user's events over the WebSocket, signed in with the first
 * message (browsers cannot set headers on it); reconnects with backoff.
 * Returns a function that closes it for good.
 */
export function connectNotifications(session, onEvent, onState) {
  let socket = null;
  let stopped = false;
  let delay = 1000;
  const open = () => {
    if (stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/notifications/ws`);
    socket.addEventListener('open', () => socket.send(JSON.stringify({ type: 'auth', token: session.token })));
    socket.addEventListener('message', (m) => {
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return;
      }
      if (msg.type === 'ready') {
        delay = 1000;
        onState(true);
      } else if (msg.type !== 'pong') {
        onEvent(msg);
      }
    });
    socket.addEventListener('close', (e) => {
      onState(false);
      if (e.code === 4401) {
        onEvent({ type: 'session.expired' });
        return;
      }
      if (!stopped) setTimeout(open, delay);
      delay = Math.min(delay * 2, 30000);
    });
  };
  open();
  return () => {
    stopped = true;
    socket?.close();
  };
}

/**
 * `stock` snapshots from the Server-Sent Events stream at `url`, each
 * setting the countdowns' clock from its `at` (but the first of each
 * connection when `firstIsOld`: a stream that hands over the last snapshot
 * as published may send one read long ago). EventSource retries by itself
 * after a dropped connection, but gives up for good on an error answer (a
 * 503 while a server restarts, or too many live connections): then it is
 * reopened here, with backoff. `onState(live)` reports the connection.
 * Returns a function that closes it for good.
 */
function watchLive(url, onSnapshot, onState, firstIsOld = false) {
  let source = null;
  let stopped = false;
  let delay = 1000;
  const open = () => {
    if (stopped) return;
    source = new EventSource(url);
    let first = true;
    source.addEventListener('open', () => {
      first = true;
      delay = 1000;
      onState(true);
    });
    source.addEventListener('stock', (e) => {
      let s;
      try {
        s = JSON.parse(e.data);
      } catch {
        return;
      }
      if (!first || !firstIsOld) syncServerTime(s.at);
      first = false;
      onSnapshot(s);
    });
    source.addEventListener('error', () => {
      onState(false);
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 30000);
      }
    });
  };
  open();
  return () => {
    stopped = true;
    source?.close();
  };
}

/** Live stock of some campaigns over one stream (a page of drops: browsers
 * open at most six connections per host, so not one per card). */
export function watchStock(ids, onSnapshot, onState = () => {}) {
  if (ids.length === 0) return () => {};
  return watchLive(`/api/v1/live?campaigns=${ids.map(encodeURIComponent).join(',')}`, onSnapshot, onState);
}

/** Live stock of one campaign (its dashboard). */
export function watchCampaign(id, onSnapshot, onState = () => {}) {
  return watchLive(`/api/v1/campaigns/${encodeURIComponent(id)}/live`, onSnapshot, onState);
}

/** Live stock and status of one time sale: `status`, `total_quantity`,
 * `remaining_quantity`, `sold_count`, `paused`, `starts_at`, `ends_at`.
 * Its first snapshot is the last one published, `at` included. */
export function watchSale(id, onSnapshot, onState = () => {}) {
  return watchLive(`/api/v1/sales/${encodeURIComponent(id)}/live`, onSnapshot, onState, true);
}
