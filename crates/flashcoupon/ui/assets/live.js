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
 * Live stock snapshots of some campaigns over one Server-Sent Events stream.
 * EventSource retries by itself after a dropped connection, but gives up for
 * good on an error answer (a 503 while a server restarts): then it is
 * reopened here, with backoff. `onState(live)` reports the connection.
 */
export function watchStock(ids, onSnapshot, onState = () => {}) {
  if (ids.length === 0) return () => {};
  let source = null;
  let stopped = false;
  let delay = 1000;
  const open = () => {
    if (stopped) return;
    source = new EventSource(`/api/v1/live?campaigns=${ids.map(encodeURIComponent).join(',')}`);
    source.addEventListener('open', () => {
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
      syncServerTime(s.at);
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
