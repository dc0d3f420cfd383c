//! The embedded gate: one [`CampaignGate`] per campaign, in process memory,
//! rebuilt from SQLite at start-up. Every decision is O(1) and never awaits.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::{
    Admission, CampaignGate, Decision, Gate, GateError, Outcome, RestoredCoupon, Settled, Stock,
    StockBelowIssued, Ticket,
};
use crate::domain::campaign::Campaign;
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::timestamp::Timestamp;

/// Every campaign's gate, by id. The map lock is held only to clone an `Arc`,
/// never during a decision.
#[derive(Debug, Default)]
pub struct MemoryGate {
    campaigns: RwLock<HashMap<CampaignId, Arc<CampaignGate>>>,
}

impl MemoryGate {
    /// Add a campaign with what the record already issued for it.
    pub fn restore(&self, campaign: &Campaign, issued: impl IntoIterator<Item = RestoredCoupon>) {
        let gate = CampaignGate::new(campaign);
        gate.restore(issued);
        self.campaigns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(campaign.id, Arc::new(gate));
    }

    fn get(&self, id: CampaignId) -> Result<Arc<CampaignGate>, GateError> {
        self.campaigns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
            .ok_or(GateError::NoSuchCampaign)
    }

    fn settle_one(&self, ticket: Ticket, outcome: Outcome) {
        if let Ok(gate) = self.get(ticket.campaign) {
            // In one process nothing else could learn the answer later, so an
            // unknown outcome is settled as failed: the stock goes back.
            let committed = match outcome {
                Outcome::Committed(id) => Some(id),
                Outcome::Failed | Outcome::Refused | Outcome::Unknown => None,
            };
            gate.settle(ticket, committed);
        }
    }
}

#[async_trait]
impl Gate for MemoryGate {
    async fn open(&self, campaign: &Campaign) -> Result<(), GateError> {
        self.restore(campaign, []);
        Ok(())
    }

    async fn claim(
        &self,
        campaign: &Campaign,
        user: UserId,
        _coupon: CouponId,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Decision, GateError> {
        let gate = self.get(campaign.id)?;
        Ok(match gate.claim(user, key, now) {
            Admission::Admitted(ticket) => Decision::Admitted(ticket),
            Admission::Rejected(r) => Decision::Rejected(r),
            Admission::Replay(id) => Decision::Replay(id),
            Admission::InFlight(mut first) => {
                // The first request with this key is committing: its answer is ours.
                match first.wait_for(Option::is_some).await.map(|v| *v) {
                    Ok(Some(Settled::Issued(id))) => Decision::Replay(id),
                    _ => Decision::Retry(
                        "the first request with this Idempotency-Key failed; nothing was issued, retry",
                    ),
                }
            }
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

    async fn stock(&self, campaign: &Campaign) -> Result<Stock, GateError> {
        let g = self.get(campaign.id)?;
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
        campaign: &Campaign,
        total: u32,
    ) -> Result<Result<u32, StockBelowIssued>, GateError> {
        Ok(self.get(campaign.id)?.set_total(total))
    }

    async fn set_paused(&self, campaign: &Campaign, paused: bool) -> Result<(), GateError> {
        self.get(campaign.id)?.set_paused(paused);
        Ok(())
    }

    async fn set_ends_at(&self, campaign: &Campaign, ends: Timestamp) -> Result<(), GateError> {
        self.get(campaign.id)?.set_ends_at(ends);
        Ok(())
    }
}
