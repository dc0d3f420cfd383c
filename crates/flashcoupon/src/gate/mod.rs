//! The admission gate (embedded mode): decides every claim in memory, in
//! O(1), with no database round trip.
//!
//! The gate is a fast, exact cache of the record: at start-up it is rebuilt
//! from the coupons table ([`CampaignGate::restore`]), and afterwards every
//! admitted claim is either committed by the group commit or released back
//! ([`CampaignGate::settle`]). The database constraints stay the last line of
//! defence if the gate were ever wrong (promise 7).

mod campaign_gate;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use campaign_gate::{
    Admission, CampaignGate, Rejection, RestoredCoupon, Settled, StockBelowIssued, Ticket,
};

use crate::domain::ids::CampaignId;

/// Every campaign's gate, by id. The map lock is held only to clone an `Arc`,
/// never during a decision.
#[derive(Debug, Default)]
pub struct MemoryGate {
    campaigns: RwLock<HashMap<CampaignId, Arc<CampaignGate>>>,
}

impl MemoryGate {
    pub fn insert(&self, gate: CampaignGate) -> Arc<CampaignGate> {
        let gate = Arc::new(gate);
        self.campaigns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(gate.id, gate.clone());
        gate
    }

    pub fn get(&self, id: CampaignId) -> Option<Arc<CampaignGate>> {
        self.campaigns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<CampaignGate>> {
        self.campaigns
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
