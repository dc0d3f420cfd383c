//! The public live channel of each campaign (remaining stock and status for
//! the drop page's counter), coalesced: whatever happens, a watcher gets at
//! most one snapshot per [`period`] (100 ms; longer for a crowd).
//!
//! Claims only mark their campaign dirty; the refresher
//! ([`super::Notifier::run_live`]) reads the gate for dirty campaigns once
//! per period and publishes one snapshot into a `watch` channel, which keeps
//! only the latest value, so a slow watcher skips snapshots instead of
//! queueing them. Each snapshot is rendered to JSON once, when published,
//! for every watcher: ten thousand open drop pages cost one serialisation
//! per update, not ten thousand.
//!
//! Streams do not wait on the `watch` itself: one send would wake all of a
//! crowd's ten thousand tasks at once, and a claim arriving then queued
//! behind them (`bench/abuse.sh`). Each stream has its own [`Turn`]; after
//! a publish, a sweep wakes the campaign's streams a share per [`TICK`],
//! spread over the period, so each gets the update once and the runtime
//! never has more than a share of them to run at a time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::lock;

use crate::admission::Stock;
use crate::domain::campaign::{Campaign, CampaignStatus, campaign_status};
use crate::domain::ids::CampaignId;
use crate::domain::timestamp::Timestamp;

/// At most one update per campaign per this period (10 a second)...
pub const COALESCE: Duration = Duration::from_millis(100);
/// ...and, for a crowd, per this long per watcher: each update is one write
/// per open stream, and at 10 a second ten thousand drop pages cost the
/// kernel 100,000 socket writes a second on the claims' cores (measured:
/// `bench/abuse.sh`). 100 µs a watcher keeps a campaign's streams to about
/// 10,000 writes a second in all: 10,000 pages get an update a second.
pub const PER_WATCHER: Duration = Duration::from_micros(100);

/// The coalescing period of a campaign with `watchers` open streams.
pub fn period(watchers: usize) -> Duration {
    COALESCE.max(PER_WATCHER * watchers.min(1_000_000) as u32)
}

/// How often a sweep wakes its next share of a campaign's streams: at 10,000
/// streams and a period of 1 s, 50 streams every 5 ms.
pub const TICK: Duration = Duration::from_millis(5);

/// A stream's turn to look at its campaign's latest snapshot, given once per
/// publish by the sweep. A turn given while the stream is busy writing is
/// kept (one permit), so the last snapshot is never missed.
pub type Turn = Arc<Notify>;

/// What a stream holds: the campaign's latest snapshot, and its turn.
#[derive(Debug)]
pub struct Watcher {
    pub rx: watch::Receiver<Option<Arc<Published>>>,
    pub turn: Turn,
}

/// The turns of a campaign's streams (a stream that ended leaves a dead one,
/// pruned by the next sweep).
type Turns = Arc<Mutex<Vec<Weak<Notify>>>>;

/// Give each live turn once, a share per [`TICK`] across `period`: the first
/// share now, the last within the period.
fn sweep(turns: &Turns, period: Duration) {
    let live: Vec<Turn> = {
        let mut turns = lock(turns);
        turns.retain(|t| t.strong_count() > 0);
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

/// What the live channel streams.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LiveSnapshot {
    pub campaign_id: CampaignId,
    pub status: CampaignStatus,
    pub total_quantity: u32,
    pub remaining_quantity: u32,
    pub issued_count: u32,
    pub paused: bool,
    pub issue_starts_at: Timestamp,
    pub issue_ends_at: Timestamp,
    /// When the gate was read; the SSE streams send the time of sending
    /// instead (the state still holds then: see `stock_events`).
    pub at: Timestamp,
}

impl LiveSnapshot {
    pub fn new(c: &Campaign, stock: &Stock, now: Timestamp) -> Self {
        Self {
            campaign_id: c.id,
            status: campaign_status(
                now,
                c.issue_starts_at,
                stock.ends_at,
                stock.paused,
                stock.remaining,
            ),
            total_quantity: stock.total,
            remaining_quantity: stock.remaining,
            issued_count: stock.issued,
            paused: stock.paused,
            issue_starts_at: c.issue_starts_at,
            issue_ends_at: stock.ends_at,
            at: now,
        }
    }

    /// Equal apart from the time it was read.
    fn same_as(&self, other: &Self) -> bool {
        Self {
            at: other.at,
            ..self.clone()
        } == *other
    }
}

/// A published snapshot and its `stock` event data, rendered once.
#[derive(Debug)]
pub struct Published {
    pub snapshot: LiveSnapshot,
    pub json: Arc<str>,
}

#[derive(Debug)]
struct Channel {
    tx: watch::Sender<Option<Arc<Published>>>,
    /// When watchers last got a snapshot (tokio's clock, so tests can pause it).
    last_sent: Option<Instant>,
    turns: Turns,
}

#[derive(Debug, Default)]
pub struct Live {
    channels: Mutex<HashMap<CampaignId, Channel>>,
    dirty: Mutex<HashSet<CampaignId>>,
}

impl Live {
    /// Watch a campaign: the current snapshot arrives within one period,
    /// and each later one at this watcher's turn.
    pub fn watch(&self, campaign: CampaignId) -> Watcher {
        let turn = Turn::default();
        let rx = {
            let mut channels = lock(&self.channels);
            let channel = channels.entry(campaign).or_insert_with(|| Channel {
                tx: watch::channel(None).0,
                last_sent: None,
                turns: Turns::default(),
            });
            lock(&channel.turns).push(Arc::downgrade(&turn));
            channel.tx.subscribe()
        };
        self.mark(campaign);
        Watcher { rx, turn }
    }

    /// Something changed (a claim, a patch): refresh at the next period.
    pub fn mark(&self, campaign: CampaignId) {
        lock(&self.dirty).insert(campaign);
    }

    /// Mark every watched campaign (statuses change with time alone), and
    /// forget channels nobody watches any more and the turns of streams
    /// that ended (a campaign that no longer changes has no sweep to prune
    /// them, and its reconnecting pages would pile them up).
    pub fn mark_watched(&self) {
        let mut channels = lock(&self.channels);
        channels.retain(|_, c| c.tx.receiver_count() > 0);
        for c in channels.values() {
            lock(&c.turns).retain(|t| t.strong_count() > 0);
        }
        lock(&self.dirty).extend(channels.keys().copied());
    }

    pub fn take_dirty(&self) -> Vec<CampaignId> {
        lock(&self.dirty).drain().collect()
    }

    /// Publish to watchers if it differs from what they last got, at most
    /// once per [`period`]: a snapshot that comes too soon is not sent and
    /// its campaign stays dirty, so the next period sends the latest state.
    pub fn publish(&self, snapshot: LiveSnapshot) {
        let id = snapshot.campaign_id;
        let mut channels = lock(&self.channels);
        let Some(channel) = channels.get_mut(&id) else {
            return;
        };
        let now = Instant::now();
        let period = period(channel.tx.receiver_count());
        if channel
            .last_sent
            .is_some_and(|at| now.duration_since(at) < period)
        {
            drop(channels);
            self.mark(id);
            return;
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
        if sent {
            channel.last_sent = Some(now);
            sweep(&channel.turns, period);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crowd_gets_fewer_updates_a_second() {
        assert_eq!(period(1), COALESCE);
        assert_eq!(period(1_000), COALESCE);
        assert_eq!(period(10_000), Duration::from_secs(1));
        assert_eq!(period(100_000), Duration::from_secs(10));
    }
    use crate::domain::campaign::{CouponTerms, Validity};
    use crate::domain::discount::Discount;

    fn campaign() -> Campaign {
        Campaign {
            id: CampaignId::generate(),
            name: "drop".into(),
            terms: CouponTerms {
                discount: Discount::Fixed { amount: 1000 },
                min_order_amount: 0,
                validity: Validity::Days(7),
            },
            issuance: Default::default(),
            code: None,
            trigger: None,
            total_quantity: 10_000,
            per_user_limit: 1,
            issue_starts_at: Timestamp(0),
            issue_ends_at: Timestamp(i64::MAX),
            paused: false,
            created_at: Timestamp(0),
        }
    }

    fn stock(remaining: u32) -> Stock {
        Stock {
            total: 10_000,
            remaining,
            issued: 10_000 - remaining,
            paused: false,
            ends_at: Timestamp(i64::MAX),
        }
    }

    /// A change every millisecond for a second reaches a watcher at most
    /// ten times, and the last state is not lost.
    #[tokio::test(start_paused = true)]
    async fn snapshots_are_coalesced_to_ten_a_second_and_the_last_one_arrives() {
        let live = Live::default();
        let c = campaign();
        let mut rx = live.watch(c.id).rx;
        let mut seen = 0;
        for ms in 0..1_000u32 {
            live.publish(LiveSnapshot::new(
                &c,
                &stock(10_000 - ms),
                Timestamp(ms.into()),
            ));
            if rx.has_changed().unwrap_or(false) {
                rx.borrow_and_update();
                seen += 1;
            }
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(seen <= 10, "{seen} updates in one second");
        assert!(seen >= 9, "only {seen} updates in one second");
        // The refresher sends the campaign again next period: the final state arrives.
        assert!(live.take_dirty().contains(&c.id));
        tokio::time::advance(COALESCE).await;
        live.publish(LiveSnapshot::new(&c, &stock(9_001), Timestamp(1_000)));
        let last = rx.borrow_and_update().clone().unwrap();
        assert_eq!(last.snapshot.remaining_quantity, 9_001);
        let json: serde_json::Value = serde_json::from_str(&last.json).unwrap();
        assert_eq!(
            json["remaining_quantity"], 9_001,
            "rendered once, as published"
        );
    }

    /// One publish gives each of a crowd's streams its turn once, a share
    /// per tick across the period: never the whole crowd at once.
    #[tokio::test(start_paused = true)]
    async fn a_publish_wakes_a_crowd_a_share_per_tick_each_once() {
        use futures_util::FutureExt;
        let live = Live::default();
        let c = campaign();
        let watchers: Vec<Watcher> = (0..2_000).map(|_| live.watch(c.id)).collect();
        let p = period(watchers.len());
        assert_eq!(p, Duration::from_millis(200));
        let share = 2_000 / (p.as_millis() / TICK.as_millis()) as usize;
        // A turn given is taken once: count those waiting now.
        let ready = |ws: &[Watcher]| {
            ws.iter()
                .filter(|w| w.turn.notified().now_or_never().is_some())
                .count()
        };
        live.publish(LiveSnapshot::new(&c, &stock(9_999), Timestamp(0)));
        tokio::task::yield_now().await;
        assert_eq!(ready(&watchers), share, "the first share, and only it");
        let mut total = share;
        for _ in 1..(p.as_millis() / TICK.as_millis()) {
            tokio::time::advance(TICK).await;
            tokio::task::yield_now().await;
            let now = ready(&watchers);
            assert_eq!(now, share, "one share per tick");
            total += now;
        }
        assert_eq!(total, watchers.len(), "every stream had its turn");
        tokio::time::advance(p).await;
        tokio::task::yield_now().await;
        assert_eq!(ready(&watchers), 0, "each once");
        // Streams that ended are pruned by the next sweep; the rest get it.
        let mut watchers = watchers;
        let kept = watchers.split_off(1_500);
        drop(watchers);
        live.publish(LiveSnapshot::new(&c, &stock(9_000), Timestamp(1)));
        for _ in 0..=(p.as_millis() / TICK.as_millis()) {
            tokio::task::yield_now().await;
            tokio::time::advance(TICK).await;
        }
        tokio::task::yield_now().await;
        assert_eq!(ready(&kept), kept.len());
        assert_eq!(lock(&lock(&live.channels)[&c.id].turns).len(), kept.len());
        // Without a publish, the once-a-second mark prunes ended streams.
        let mut kept = kept;
        kept.truncate(100);
        live.mark_watched();
        assert_eq!(lock(&lock(&live.channels)[&c.id].turns).len(), 100);
    }
}
