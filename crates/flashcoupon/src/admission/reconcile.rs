//! The reconciler (scale-out): every instance looks for claims left in
//! flight longer than `after` (their instance died between the gate and the
//! commit, or committed but could not reach Redis to settle) and settles
//! them from the record. The settle script only acts on claims still in
//! flight, so concurrent passes on several instances are harmless.

use std::sync::Arc;
use std::time::Duration;

use super::{DropId, Gate, Stockpile};

/// Run reconciliation rounds over every drop of every kind, forever. A gate
/// that settles every claim itself ([`Gate::needs_reconciler`] is false)
/// returns at once.
pub async fn reconcile_forever(
    gate: Arc<dyn Gate>,
    stockpiles: Vec<Arc<dyn Stockpile>>,
    after: Duration,
) {
    if !gate.needs_reconciler() {
        return;
    }
    let mut every = tokio::time::interval((after / 4).max(Duration::from_millis(100)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        for stock in &stockpiles {
            let ids = match stock.drops().await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::debug!(error = %e, "reconciler: the record is unreachable");
                    continue;
                }
            };
            let kind = stock.kind();
            for id in ids {
                let drop = DropId { kind, id };
                if let Err(e) = gate.reconcile(drop, after).await {
                    tracing::debug!(error = %e, %drop, "reconciler: will retry");
                }
            }
        }
    }
}
