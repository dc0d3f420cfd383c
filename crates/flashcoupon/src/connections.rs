//! Caps on long-lived connections (notification sockets and live streams):
//! in all, per client address, per signed-in user, and for sockets still
//! waiting for their token. Each open connection holds a [`Slot`] that gives
//! its place back when dropped, however the connection ends. Without caps,
//! one client could hold thousands of idle sockets (each a task and a
//! queue) and starve a drop of memory and file descriptors.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::domain::ids::UserId;

/// The limits; 0 = no limit.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub total: usize,
    pub per_address: usize,
    pub per_user: usize,
    /// Sockets connected but not yet signed in.
    pub waiting: usize,
}

/// Which cap a connection hit (its text goes to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error("the server holds as many live connections as it takes; retry shortly")]
    Total,
    #[error("too many live connections from this address")]
    Address,
    #[error("too many live connections for this account; close one (another tab?)")]
    User,
    #[error("too many connections waiting to sign in; retry shortly")]
    Waiting,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    waiting: usize,
    /// Live streams: the connections opened public (not waiting to sign in).
    streams: usize,
    by_address: HashMap<IpAddr, usize>,
    by_user: HashMap<UserId, usize>,
}

#[derive(Debug)]
pub struct Connections {
    caps: Caps,
    counts: Mutex<Counts>,
}

/// One open connection's place; freed on drop.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<Connections>,
    address: IpAddr,
    user: Option<UserId>,
    waiting: bool,
    stream: bool,
}

fn over(count: usize, cap: usize) -> bool {
    cap > 0 && count >= cap
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Connections {
    pub fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Self {
            caps,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Each section is a few counter updates: a panic cannot leave them half-done.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection from `address`; `waiting` until it signs in (sockets),
    /// or public at once (live streams).
    pub fn open(self: &Arc<Self>, address: IpAddr, waiting: bool) -> Result<Slot, Full> {
        let mut c = self.counts();
        if over(c.total, self.caps.total) {
            return Err(Full::Total);
        }
        if over(
            c.by_address.get(&address).copied().unwrap_or(0),
            self.caps.per_address,
        ) {
            return Err(Full::Address);
        }
        if waiting && over(c.waiting, self.caps.waiting) {
            return Err(Full::Waiting);
        }
        c.total += 1;
        *c.by_address.entry(address).or_default() += 1;
        c.waiting += usize::from(waiting);
        c.streams += usize::from(!waiting);
        Ok(Slot {
            owner: self.clone(),
            address,
            user: None,
            waiting,
            stream: !waiting,
        })
    }

    /// How many connections are open (for metrics and tests).
    pub fn open_count(&self) -> usize {
        self.counts().total
    }

    /// How many of them are live streams (for `flashcoupon_sse_connections`).
    pub fn stream_count(&self) -> usize {
        self.counts().streams
    }
}

impl Slot {
    /// The connection signed in as `user`: it stops waiting and counts
    /// against that user's cap.
    pub fn signed_in(&mut self, user: UserId) -> Result<(), Full> {
        let owner = self.owner.clone();
        let mut c = owner.counts();
        if over(
            c.by_user.get(&user).copied().unwrap_or(0),
            owner.caps.per_user,
        ) {
            return Err(Full::User);
        }
        *c.by_user.entry(user).or_default() += 1;
        if std::mem::take(&mut self.waiting) {
            c.waiting -= 1;
        }
        self.user = Some(user);
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.owner.counts();
        c.total -= 1;
        c.waiting -= usize::from(self.waiting);
        c.streams -= usize::from(self.stream);
        decrement(&mut c.by_address, &self.address);
        if let Some(user) = self.user {
            decrement(&mut c.by_user, &user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_cap_holds_and_a_dropped_slot_gives_its_place_back() {
        let conns = Connections::new(Caps {
            total: 4,
            per_address: 2,
            per_user: 1,
            waiting: 3,
        });
        let a1 = conns.open(ip("192.0.2.1"), true).unwrap();
        let mut a2 = conns.open(ip("192.0.2.1"), true).unwrap();
        assert_eq!(
            conns.open(ip("192.0.2.1"), true).unwrap_err(),
            Full::Address
        );
        let mut b = conns.open(ip("192.0.2.2"), true).unwrap();
        assert_eq!(
            conns.open(ip("192.0.2.3"), true).unwrap_err(),
            Full::Waiting
        );
        let public = conns.open(ip("192.0.2.3"), false).unwrap();
        assert_eq!(conns.stream_count(), 1, "only the public one is a stream");
        assert_eq!(conns.open(ip("192.0.2.4"), false).unwrap_err(), Full::Total);
        let user = UserId::generate();
        a2.signed_in(user).unwrap();
        assert_eq!(b.signed_in(user).unwrap_err(), Full::User);
        drop(a2);
        b.signed_in(user).unwrap();
        drop((a1, b, public));
        assert_eq!(conns.open_count(), 0);
        assert!(conns.counts().by_address.is_empty() && conns.counts().by_user.is_empty());
        assert_eq!(conns.counts().waiting, 0);
        assert_eq!(conns.stream_count(), 0);
    }
}
