//! Live stock of time sales for Server-Sent Events: one poller per watched
//! sale on this instance (not one per stream), reading the gate every
//! [`POLL`] while anyone watches and publishing a snapshot when it changed,
//! through the same [`Fanout`] as campaigns' live stock: rendered once,
//! coalesced for a crowd, and handed to ten thousand streams a share at a
//! time. In scale-out mode each instance polls Redis once per period per
//! watched sale, whatever the number of its streams.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::drop_of;
use crate::admission::Stock;
use crate::domain::campaign::{CampaignStatus, campaign_status};
use crate::domain::ids::SaleId;
use crate::domain::timestamp::Timestamp;
use crate::notify::fanout::{Fanout, Snapshot, Watcher};
use crate::state::AppState;

/// How often a watched sale's stock is read.
pub const POLL: Duration = Duration::from_millis(250);

/// What a `stock` event of a sale carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaleSnapshot {
    pub sale_id: SaleId,
    pub status: CampaignStatus,
    pub total_quantity: u32,
    pub remaining_quantity: u32,
    pub sold_count: u32,
    pub paused: bool,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    /// When it was read.
    pub at: Timestamp,
}

impl SaleSnapshot {
    fn of(sale: SaleId, starts_at: Timestamp, stock: &Stock, now: Timestamp) -> Self {
        Self {
            sale_id: sale,
            status: campaign_status(now, starts_at, stock.ends_at, stock.paused, stock.remaining),
            total_quantity: stock.total,
            remaining_quantity: stock.remaining,
            sold_count: stock.total.saturating_sub(stock.remaining),
            paused: stock.paused,
            starts_at,
            ends_at: stock.ends_at,
            at: now,
        }
    }
}

impl Snapshot for SaleSnapshot {
    fn stamped(&self, at: Timestamp) -> Self {
        Self { at, ..self.clone() }
    }
}

/// This instance's live sales: their channels, and the sales polled.
#[derive(Debug, Default)]
pub struct SaleLive {
    fanout: Fanout<SaleId, SaleSnapshot>,
    polled: Mutex<HashSet<SaleId>>,
}

impl SaleLive {
    /// Watch `sale`, its poller started if none runs.
    pub fn watch(
        &self,
        state: &AppState,
        sale: SaleId,
        starts_at: Timestamp,
    ) -> Watcher<SaleSnapshot> {
        // Under `polled`: a poller that finds no watcher and stops does so
        // under it too, so a stream never watches a sale nobody polls.
        let mut polled = self.polled.lock().unwrap_or_else(|e| e.into_inner());
        let watcher = self.fanout.watch(sale);
        if polled.insert(sale) {
            tokio::spawn(poll(state.clone(), sale, starts_at));
        }
        watcher
    }
}

/// Read the sale's stock every [`POLL`] while someone watches; publish
/// changes (one that comes too soon for the crowd is sent by a later read).
/// Ends once the last stream went away.
async fn poll(state: AppState, sale: SaleId, starts_at: Timestamp) {
    /// However the poller ends (a panic too), the sale is no longer polled
    /// and its streams end, so the next stream starts a poller again.
    struct Polling<'a> {
        live: &'a SaleLive,
        sale: SaleId,
        ended: bool,
    }
    impl Drop for Polling<'_> {
        fn drop(&mut self) {
            if !self.ended {
                let mut polled = self.live.polled.lock().unwrap_or_else(|e| e.into_inner());
                self.live.fanout.close(self.sale);
                polled.remove(&self.sale);
            }
        }
    }
    let live = &state.sale_live;
    let mut polling = Polling {
        live,
        sale,
        ended: false,
    };
    let mut every = tokio::time::interval(POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        {
            let mut polled = live.polled.lock().unwrap_or_else(|e| e.into_inner());
            if live.fanout.forget(sale) {
                polled.remove(&sale);
                polling.ended = true;
                return;
            }
        }
        // Unreadable now (Redis away): the streams keep the last snapshot.
        let Ok(stock) = state.gate.stock(drop_of(sale)).await else {
            continue;
        };
        let snapshot = SaleSnapshot::of(sale, starts_at, &stock, state.clock.now());
        live.fanout.publish(sale, snapshot);
    }
}
