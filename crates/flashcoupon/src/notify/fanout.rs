//! One changing thing (a campaign's or a sale's live stock) told to a crowd
//! of streams: the latest snapshot per key, rendered to JSON once, sent at
//! most once per [`period`] (longer for a crowd), and handed to the streams
//! a share per [`TICK`] rather than all at once.
//!
//! Streams do not wait on the `watch` itself: one send would wake all of a
//! crowd's ten thousand tasks at once, and a claim arriving then queued
//! behind them (`bench/abuse.sh`). Each stream has its own [`Turn`]; after
//! a publish, a sweep wakes the key's streams a share per tick, spread over
//! the period, so each gets the update once and the runtime never has more
//! than a share of them to run at a time.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::lock;
use crate::domain::timestamp::Timestamp;

/// At most one update per key per this period (10 a second)...
pub const COALESCE: Duration = Duration::from_millis(100);
/// ...and, for a crowd, per this long per watcher: each update is one write
/// per open stream, and at 10 a second ten thousand pages cost the kernel
/// 100,000 socket writes a second on the claims' cores (measured:
/// `bench/abuse.sh`). 100 µs a watcher keeps a key's streams to about
/// 10,000 writes a second in all: 10,000 pages get an update a second.
pub const PER_WATCHER: Duration = Duration::from_micros(100);

/// The coalescing period of a key with `watchers` open streams.
pub fn period(watchers: usize) -> Duration {
    COALESCE.max(PER_WATCHER * watchers.min(1_000_000) as u32)
}

/// How often a sweep wakes its next share of a key's streams: at 10,000
/// streams and a period of 1 s, 50 streams every 5 ms.
pub const TICK: Duration = Duration::from_millis(5);

/// What a live channel carries: serialisable, and stamped with when it was
/// read, which is not part of the state it tells.
pub trait Snapshot: Serialize + Clone + PartialEq + Send + Sync + 'static {
    /// The same state, read at `at`.
    fn stamped(&self, at: Timestamp) -> Self;

    /// Equal apart from when each was read.
    fn same_as(&self, other: &Self) -> bool {
        self.stamped(Timestamp(0)) == other.stamped(Timestamp(0))
    }
}

/// A published snapshot and its event data, rendered once for every stream.
#[derive(Debug)]
pub struct Published<S> {
    pub snapshot: S,
    pub json: Arc<str>,
}

/// A stream's turn to look at its key's latest snapshot, given once per
/// publish by the sweep. A turn given while the stream is busy writing is
/// kept (one permit), so the last snapshot is never missed.
pub type Turn = Arc<Notify>;

/// What a stream holds: the key's latest snapshot, and its turn.
#[derive(Debug)]
pub struct Watcher<S> {
    pub rx: watch::Receiver<Option<Arc<Published<S>>>>,
    pub turn: Turn,
}

/// The turns of a key's streams (a stream that ended leaves a dead one,
/// pruned by the next sweep or [`Fanout::prune`]).
type Turns = Arc<Mutex<Vec<Weak<Notify>>>>;

#[derive(Debug)]
struct Channel<S> {
    tx: watch::Sender<Option<Arc<Published<S>>>>,
    /// When watchers last got a snapshot (tokio's clock, so tests can pause it).
    last_sent: Option<Instant>,
    turns: Turns,
}

/// What [`Fanout::publish`] did with a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// On its way to every stream.
    Sent,
    /// The streams have this state already.
    Same,
    /// Within the period of the last one: not sent; publish it again later.
    TooSoon,
    /// Nobody watches the key.
    Unwatched,
}

/// The live channels of one kind of thing, by key.
#[derive(Debug)]
pub struct Fanout<K, S> {
    channels: Mutex<HashMap<K, Channel<S>>>,
}

impl<K, S> Default for Fanout<K, S> {
    fn default() -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Copy + Eq + Hash, S: Snapshot> Fanout<K, S> {
    /// Watch a key: its latest snapshot at once if there is one, and each
    /// later one at this watcher's turn.
    pub fn watch(&self, key: K) -> Watcher<S> {
        let turn = Turn::default();
        let mut channels = lock(&self.channels);
        let channel = channels.entry(key).or_insert_with(|| Channel {
            tx: watch::channel(None).0,
            last_sent: None,
            turns: Turns::default(),
        });
        lock(&channel.turns).push(Arc::downgrade(&turn));
        Watcher {
            rx: channel.tx.subscribe(),
            turn,
        }
    }

    /// Forget keys nobody watches any more and the turns of streams that
    /// ended (a key that no longer changes has no sweep to prune them, and
    /// reconnecting pages would pile them up); the keys still watched.
    pub fn prune(&self) -> Vec<K> {
        let mut channels = lock(&self.channels);
        channels.retain(|_, c| c.tx.receiver_count() > 0);
        for c in channels.values() {
            drop_ended(&mut lock(&c.turns));
        }
        channels.keys().copied().collect()
    }

    /// Forget `key` if nobody watches it; whether it is gone. A key kept
    /// loses the turns of its streams that ended (one that no longer
    /// changes has no sweep to prune them).
    pub fn forget(&self, key: K) -> bool {
        let mut channels = lock(&self.channels);
        match channels.get(&key) {
            Some(c) if c.tx.receiver_count() > 0 => {
                drop_ended(&mut lock(&c.turns));
                false
            }
            Some(_) => {
                channels.remove(&key);
                true
            }
            None => true,
        }
    }

    /// End `key`'s streams (its channel closed, each woken to see it).
    pub fn close(&self, key: K) {
        let Some(channel) = lock(&self.channels).remove(&key) else {
            return;
        };
        let turns: Vec<Turn> = lock(&channel.turns)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        drop(channel);
        turns.iter().for_each(|t| t.notify_one());
    }

    /// Publish to the key's watchers if it differs from what they last got,
    /// at most once per [`period`].
    pub fn publish(&self, key: K, snapshot: S) -> Publish {
        let mut channels = lock(&self.channels);
        let Some(channel) = channels.get_mut(&key) else {
            return Publish::Unwatched;
        };
        let now = Instant::now();
        let period = period(channel.tx.receiver_count());
        if channel
            .last_sent
            .is_some_and(|at| now.duration_since(at) < period)
        {
            return Publish::TooSoon;
        }
        let sent = channel.tx.send_if_modified(|current| {
            if current
                .as_deref()
                .is_some_and(|c| c.snapshot.same_as(&snapshot))
            {
                return false;
            }
            // Plain fields: serialising cannot fail.
            let json = serde_json::to_string(&snapshot).unwrap_or_default().into();
            *current = Some(Arc::new(Published { snapshot, json }));
            true
        });
        if !sent {
            return Publish::Same;
        }
        channel.last_sent = Some(now);
        sweep(&channel.turns, period);
        Publish::Sent
    }

    /// How many turns a key holds, dead ones included.
    #[cfg(test)]
    pub(super) fn turns(&self, key: K) -> usize {
        lock(&lock(&self.channels)[&key].turns).len()
    }
}

/// Forget the turns of streams that ended.
fn drop_ended(turns: &mut Vec<Weak<Notify>>) {
    turns.retain(|t| t.strong_count() > 0);
}

/// Give each live turn once, a share per [`TICK`] across `period`: the first
/// share now, the last within the period.
fn sweep(turns: &Turns, period: Duration) {
    let live: Vec<Turn> = {
        let mut turns = lock(turns);
        drop_ended(&mut turns);
        turns.iter().filter_map(Weak::upgrade).collect()
    };
    let ticks = (period.as_micros() / TICK.as_micros()).max(1) as usize;
    let share = live.len().div_ceil(ticks).max(1);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime to pace it (cannot happen in the server): all at once.
        live.iter().for_each(|t| t.notify_one());
        return;
    };
    runtime.spawn(async move {
        let mut at = Instant::now();
        for (i, turns) in live.chunks(share).enumerate() {
            if i > 0 {
                at += TICK;
                tokio::time::sleep_until(at).await;
            }
            turns.iter().for_each(|t| t.notify_one());
        }
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_crowd_gets_fewer_updates_a_second() {
        assert_eq!(period(1), COALESCE);
        assert_eq!(period(1_000), COALESCE);
        assert_eq!(period(10_000), Duration::from_secs(1));
        assert_eq!(period(100_000), Duration::from_secs(10));
    }

    /// A stock reading: `at` is when, `left` is the state.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub(crate) struct Reading {
        pub left: u32,
        pub at: Timestamp,
    }

    impl Snapshot for Reading {
        fn stamped(&self, at: Timestamp) -> Self {
            Self { at, ..self.clone() }
        }
    }

    pub(crate) fn reading(left: u32, at: i64) -> Reading {
        Reading {
            left,
            at: Timestamp(at),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_publish_is_sent_once_per_period_and_only_when_the_state_changed() {
        let fanout = Fanout::<u8, Reading>::default();
        assert_eq!(fanout.publish(1, reading(10, 0)), Publish::Unwatched);
        let mut w = fanout.watch(1);
        assert_eq!(fanout.publish(1, reading(10, 0)), Publish::Sent);
        let first = w.rx.borrow_and_update().clone().unwrap();
        assert_eq!(
            *first.json,
            serde_json::to_string(&reading(10, 0)).unwrap(),
            "rendered once"
        );
        assert_eq!(fanout.publish(1, reading(9, 1)), Publish::TooSoon);
        tokio::time::advance(COALESCE).await;
        // Read again later, nothing changed: nothing to send.
        assert_eq!(fanout.publish(1, reading(10, 2)), Publish::Same);
        assert!(!w.rx.has_changed().unwrap());
        assert_eq!(fanout.publish(1, reading(9, 3)), Publish::Sent);
        assert_eq!(w.rx.borrow_and_update().as_ref().unwrap().snapshot.left, 9);
    }

    #[test]
    fn a_key_is_forgotten_only_once_nobody_watches_it() {
        let fanout = Fanout::<u8, Reading>::default();
        assert!(fanout.forget(1), "never watched");
        let w = fanout.watch(1);
        let other = fanout.watch(2);
        let gone = fanout.watch(1);
        drop(gone);
        assert_eq!(fanout.turns(1), 2);
        assert!(!fanout.forget(1));
        assert_eq!(
            fanout.turns(1),
            1,
            "a kept key loses its ended streams' turns"
        );
        assert_eq!(fanout.prune().len(), 2);
        drop(w);
        assert!(fanout.forget(1));
        assert_eq!(fanout.prune(), vec![2]);
        drop(other);
        assert!(fanout.prune().is_empty());
    }

    #[tokio::test]
    async fn closing_a_key_ends_its_streams() {
        let fanout = Fanout::<u8, Reading>::default();
        let w = fanout.watch(1);
        fanout.close(1);
        w.turn.notified().await;
        assert!(w.rx.has_changed().is_err(), "the channel is closed");
        assert!(fanout.forget(1), "and forgotten");
    }
}
