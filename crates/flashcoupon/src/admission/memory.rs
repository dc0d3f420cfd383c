//! The embedded gate: one [`DropGate`] per drop, in process memory, rebuilt
//! from the record at start-up. Every decision is O(1) and never awaits.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::{
    Admission, Decision, DropGate, DropId, Gate, GateError, Held, Outcome, Settled, Stock,
    StockBelowIssued, Stockpile, Terms, Ticket, UnitId,
};
use crate::domain::ids::UserId;
use crate::domain::timestamp::Timestamp;

/// What a key whose first claim could not be confirmed answers.
const UNSETTLED: &str =
    "the first request with this Idempotency-Key could not be confirmed; retry later";

/// Every drop's gate, by id. The map lock is held only to clone an `Arc`,
/// never during a decision.
#[derive(Debug, Default)]
pub struct MemoryGate {
    drops: RwLock<HashMap<DropId, Arc<DropGate>>>,
}

impl MemoryGate {
    /// Add a drop with what the record already holds for it.
    pub fn restore(&self, drop: DropId, terms: &Terms, held: impl IntoIterator<Item = Held>) {
        let gate = DropGate::new(drop, terms);
        gate.restore(held);
        self.drops
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(drop, Arc::new(gate));
    }

    /// Add every drop of one kind of stock, as its record holds them.
    pub async fn load(&self, stock: &dyn Stockpile) -> anyhow::Result<()> {
        let kind = stock.kind();
        for (id, terms, held) in stock.load_all().await? {
            self.restore(DropId { kind, id }, &terms, held);
        }
        Ok(())
    }

    fn get(&self, id: DropId) -> Result<Arc<DropGate>, GateError> {
        self.drops
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
            .ok_or(GateError::NoSuchDrop)
    }

    fn settle_one(&self, ticket: Ticket, outcome: Outcome) {
        if let Ok(gate) = self.get(ticket.drop) {
            gate.settle(ticket, outcome);
        }
    }
}

#[async_trait]
impl Gate for MemoryGate {
    async fn open(&self, drop: DropId, terms: &Terms) -> Result<(), GateError> {
        self.restore(drop, terms, []);
        Ok(())
    }

    async fn claim(
        &self,
        drop: DropId,
        user: UserId,
        unit: UnitId,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Decision, GateError> {
        let gate = self.get(drop)?;
        Ok(match gate.claim(user, unit, key, now) {
            Admission::Admitted(ticket) => Decision::Admitted(ticket),
            Admission::Rejected(r) => Decision::Rejected(r),
            Admission::Replay(id) => Decision::Replay(id),
            Admission::InFlight(mut first) => {
                // The first request with this key is committing: its answer is ours.
                match first.wait_for(Option::is_some).await.map(|v| *v) {
                    Ok(Some(Settled::Issued(id))) => Decision::Replay(id),
                    Ok(Some(Settled::Unsettled)) => Decision::Retry(UNSETTLED),
                    _ => Decision::Retry(
                        "the first request with this Idempotency-Key failed; nothing was issued, retry",
                    ),
                }
            }
            Admission::Unsettled => Decision::Retry(UNSETTLED),
        })
    }

    async fn settle(&self, claims: Vec<(Ticket, Outcome)>) {
        for (ticket, outcome) in claims {
            self.settle_one(ticket, outcome);
        }
    }

    fn abandon(&self, ticket: Ticket) {
        self.settle_one(ticket, Outcome::Failed);
    }

    async fn stock(&self, drop: DropId) -> Result<Stock, GateError> {
        let g = self.get(drop)?;
        Ok(Stock {
            total: g.total(),
            remaining: g.remaining(),
            issued: g.issued(),
            paused: g.paused(),
            ends_at: g.ends_at(),
        })
    }

    async fn set_total(
        &self,
        drop: DropId,
        total: u32,
    ) -> Result<Result<u32, StockBelowIssued>, GateError> {
        Ok(self.get(drop)?.set_total(total))
    }

    async fn set_paused(&self, drop: DropId, paused: bool) -> Result<(), GateError> {
        self.get(drop)?.set_paused(paused);
        Ok(())
    }

    async fn set_ends_at(&self, drop: DropId, ends: Timestamp) -> Result<(), GateError> {
        self.get(drop)?.set_ends_at(ends);
        Ok(())
    }

    async fn give_back(&self, drop: DropId, unit: &Held) -> Result<bool, GateError> {
        Ok(self.get(drop)?.give_back(unit))
    }
}
