//! The public live channel of each campaign (remaining stock and status for
//! the drop page's counter), coalesced: whatever happens, a watcher gets at
//! most one snapshot per [`period`] (100 ms; longer for a crowd).
//!
//! Claims only mark their campaign dirty; the refresher
//! ([`super::Notifier::run_live`]) reads the gate for dirty campaigns once
//! per period and publishes one snapshot through a [`Fanout`], which renders
//! it once for every watcher, keeps only the latest (a slow watcher skips
//! snapshots instead of queueing them) and wakes a crowd's streams a share
//! at a time.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::Serialize;

use super::fanout::{Fanout, Publish, Snapshot};
use super::lock;

use crate::admission::Stock;
use crate::domain::campaign::{Campaign, CampaignStatus, campaign_status};
use crate::domain::ids::CampaignId;
use crate::domain::timestamp::Timestamp;

/// What a campaign's stream holds.
pub type Watcher = super::fanout::Watcher<LiveSnapshot>;

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
}

impl Snapshot for LiveSnapshot {
    fn stamped(&self, at: Timestamp) -> Self {
        Self { at, ..self.clone() }
    }
}

#[derive(Debug, Default)]
pub struct Live {
    fanout: Fanout<CampaignId, LiveSnapshot>,
    dirty: Mutex<HashSet<CampaignId>>,
}

impl Live {
    /// Watch a campaign: the current snapshot arrives within one period,
    /// and each later one at this watcher's turn.
    pub fn watch(&self, campaign: CampaignId) -> Watcher {
        let watcher = self.fanout.watch(campaign);
        self.mark(campaign);
        watcher
    }

    /// Something changed (a claim, a patch): refresh at the next period.
    pub fn mark(&self, campaign: CampaignId) {
        lock(&self.dirty).insert(campaign);
    }

    /// Mark every watched campaign (statuses change with time alone), and
    /// forget channels nobody watches any more and the turns of streams
    /// that ended.
    pub fn mark_watched(&self) {
        let watched = self.fanout.prune();
        lock(&self.dirty).extend(watched);
    }

    pub fn take_dirty(&self) -> Vec<CampaignId> {
        lock(&self.dirty).drain().collect()
    }

    /// Publish to watchers if it differs from what they last got, at most
    /// once per [`period`]: a snapshot that comes too soon is not sent and
    /// its campaign stays dirty, so the next period sends the latest state.
    pub fn publish(&self, snapshot: LiveSnapshot) {
        let id = snapshot.campaign_id;
        if self.fanout.publish(id, snapshot) == Publish::TooSoon {
            self.mark(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fanout::{COALESCE, TICK, period};
    use super::*;
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
        assert_eq!(live.fanout.turns(c.id), kept.len());
        // Without a publish, the once-a-second mark prunes ended streams.
        let mut kept = kept;
        kept.truncate(100);
        live.mark_watched();
        assert_eq!(live.fanout.turns(c.id), 100);
    }
}
