//! Live stock of time sales for Server-Sent Events: one poller per watched
//! sale on this instance (not one per stream), reading the gate every
//! [`POLL`] while anyone watches and publishing a snapshot only when it
//! changed; streams subscribe to that one channel. In scale-out mode each
//! instance polls Redis once per period per watched sale, whatever the
//! number of its streams.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::drop_of;
use crate::admission::Stock;
use crate::domain::campaign::{CampaignStatus, campaign_status};
use crate::domain::ids::SaleId;
use crate::domain::timestamp::Timestamp;
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
            sold_count: stock.total - stock.remaining,
            paused: stock.paused,
            starts_at,
            ends_at: stock.ends_at,
            at: now,
        }
    }

    /// The same state, whenever it was read.
    fn same(&self, other: &Self) -> bool {
        Self {
            at: other.at,
            ..self.clone()
        } == *other
    }
}

type Channel = watch::Receiver<Option<SaleSnapshot>>;

/// This instance's pollers, by sale.
#[derive(Debug, Default)]
pub struct SaleLive {
    watched: Mutex<HashMap<SaleId, Channel>>,
}

impl SaleLive {
    /// A channel of `sale`'s snapshots, its poller started if none runs.
    pub fn watch(&self, state: &AppState, sale: SaleId, starts_at: Timestamp) -> Channel {
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = watched.get(&sale)
            && rx.has_changed().is_ok()
        {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(None);
        watched.insert(sale, rx.clone());
        tokio::spawn(poll(state.clone(), sale, starts_at, tx));
        rx
    }
}

/// Read the sale's stock every [`POLL`] while someone watches; publish
/// changes. Ends (dropping its sender, which closes the channel) once the
/// last stream went away.
async fn poll(
    state: AppState,
    sale: SaleId,
    starts_at: Timestamp,
    tx: watch::Sender<Option<SaleSnapshot>>,
) {
    let mut every = tokio::time::interval(POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        // The map holds one receiver: more means a stream is watching.
        if tx.receiver_count() <= 1 {
            let mut watched = state
                .sale_live
                .watched
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if tx.receiver_count() <= 1 {
                watched.remove(&sale);
                return;
            }
        }
        // Unreadable now (Redis away): the streams keep the last snapshot.
        let Ok(stock) = state.gate.stock(drop_of(sale)).await else {
            continue;
        };
        let snapshot = SaleSnapshot::of(sale, starts_at, &stock, state.clock.now());
        tx.send_if_modified(|current| match current {
            // Unchanged: no event, but a stream that starts now opens with
            // this read's time, not the time the state last changed.
            Some(old) if old.same(&snapshot) => {
                old.at = snapshot.at;
                false
            }
            _ => {
                *current = Some(snapshot);
                true
            }
        });
    }
}
