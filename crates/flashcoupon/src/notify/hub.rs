//! The WebSocket connections of this instance, by user: an event for a user
//! is serialised once and handed to each of their sockets' queues.
//!
//! Each queue is bounded. A client that does not read fills it, and is then
//! cut off (its socket closes with [`CLOSE_SLOW`]) rather than letting the
//! server buffer without limit; the inbox still has every event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::domain::ids::UserId;

/// The socket is closed because the client read too slowly.
pub const CLOSE_SLOW: u16 = 4429;

#[derive(Debug)]
struct Conn {
    id: u64,
    tx: mpsc::Sender<Arc<str>>,
    overflowed: Arc<AtomicBool>,
}

#[derive(Debug)]
pub struct Hub {
    conns: Mutex<HashMap<UserId, Vec<Conn>>>,
    next_id: AtomicU64,
    queue: usize,
    connected: prometheus::IntGauge,
    pushed: prometheus::IntCounter,
    cut_off: prometheus::IntCounter,
}

/// One registered socket: its queue, and whether the hub cut it off.
/// Dropping it unregisters the socket.
#[derive(Debug)]
pub struct Registration {
    hub: Arc<Hub>,
    user: UserId,
    id: u64,
    pub rx: mpsc::Receiver<Arc<str>>,
    overflowed: Arc<AtomicBool>,
}

impl Registration {
    /// The queue closed because the client fell behind.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.remove(self.user, self.id);
    }
}

impl Hub {
    pub fn new(queue: usize, metrics: &crate::metrics::Metrics) -> Self {
        Self {
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            queue: queue.max(1),
            connected: metrics.ws_connections.clone(),
            pushed: metrics.notifications_pushed.clone(),
            cut_off: metrics.ws_cut_off.clone(),
        }
    }

    pub fn register(self: &Arc<Self>, user: UserId) -> Registration {
        let (tx, rx) = mpsc::channel(self.queue);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let overflowed = Arc::new(AtomicBool::new(false));
        self.lock().entry(user).or_default().push(Conn {
            id,
            tx,
            overflowed: overflowed.clone(),
        });
        self.connected.inc();
        Registration {
            hub: self.clone(),
            user,
            id,
            rx,
            overflowed,
        }
    }

    fn remove(&self, user: UserId, id: u64) {
        let mut conns = self.lock();
        if let Some(list) = conns.get_mut(&user) {
            let before = list.len();
            list.retain(|c| c.id != id);
            if list.len() < before {
                self.connected.dec();
            }
            if list.is_empty() {
                conns.remove(&user);
            }
        }
    }

    /// Queue `json` on every socket of `user`; cut off sockets whose queue is full.
    pub fn send(&self, user: UserId, json: &Arc<str>) {
        let mut conns = self.lock();
        let Some(list) = conns.get_mut(&user) else {
            return;
        };
        list.retain(|c| match c.tx.try_send(json.clone()) {
            Ok(()) => {
                self.pushed.inc();
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                c.overflowed.store(true, Ordering::Release);
                self.cut_off.inc();
                self.connected.dec();
                // Dropping the sender closes the queue: the socket task sees
                // the end, reads `overflowed` and closes with CLOSE_SLOW.
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.connected.dec();
                false
            }
        });
        if list.is_empty() {
            conns.remove(&user);
        }
    }

    /// Sockets of this user on this instance.
    pub fn connections(&self, user: UserId) -> usize {
        self.lock().get(&user).map_or(0, Vec::len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Vec<Conn>>> {
        super::lock(&self.conns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that falls behind is cut off, not buffered for: its queue
    /// holds what fitted, then ends, and the registration says why.
    #[tokio::test]
    async fn a_full_queue_cuts_the_socket_off_and_others_keep_receiving() {
        let metrics = crate::metrics::Metrics::new();
        let hub = Arc::new(Hub::new(4, &metrics));
        let user = UserId::generate();
        let mut slow = hub.register(user);
        let mut other = hub.register(user);
        let event: Arc<str> = Arc::from("{}");
        for _ in 0..4 {
            hub.send(user, &event);
            other.rx.recv().await.unwrap();
        }
        assert!(!slow.overflowed());
        hub.send(user, &event);
        assert!(slow.overflowed());
        for _ in 0..4 {
            assert!(slow.rx.recv().await.is_some());
        }
        assert!(
            slow.rx.recv().await.is_none(),
            "the queue ends after what fitted"
        );
        assert_eq!(other.rx.recv().await.as_deref(), Some("{}"));
        assert!(!other.overflowed());
        assert_eq!(hub.connections(user), 1);
        assert_eq!(metrics.ws_cut_off.get(), 1);
        drop(other);
        assert_eq!(hub.connections(user), 0);
        assert_eq!(metrics.ws_connections.get(), 0);
    }
}
