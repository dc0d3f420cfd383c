//! Claim answers counted by every instance, in one shared place: each
//! instance writes its running totals (per campaign, since it started) to
//! the record about every second, under an id of its own that changes at
//! every start. A summary sums every incarnation's rows, so every instance
//! answers the same, and a restart keeps what was written.
//!
//! The hot path only bumps [`ClaimStats`]' counters (one short lock it
//! takes anyway); the write is one small transaction per second, off the
//! claim path. What a `kill -9` takes is at most the last second's counts:
//! these are statistics, not promises, and the coupons themselves are in
//! the record whatever happens here.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::claim_stats::{ClaimStats, Tally};
use crate::domain::ids::CampaignId;
use crate::domain::timestamp::Timestamp;
use crate::store::{StatsStore, StoreError};

/// This incarnation's running totals and which of them the record lacks.
#[derive(Debug)]
pub struct ClusterTally {
    /// A new id at every start (UUIDv7): old incarnations' rows stay.
    instance: String,
    totals: Mutex<HashMap<CampaignId, (Tally, bool)>>,
}

impl Default for ClusterTally {
    fn default() -> Self {
        Self {
            instance: uuid::Uuid::now_v7().to_string(),
            totals: Mutex::default(),
        }
    }
}

impl ClusterTally {
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Move what `stats` counted since the last flush into the running
    /// totals, then write the totals the record lacks. A failed write is
    /// tried again at the next flush with the totals of then (a row
    /// replaces the last one, so nothing is counted twice).
    pub async fn flush(
        &self,
        stats: &ClaimStats,
        store: &(dyn StatsStore + Sync),
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let dirty: Vec<(CampaignId, Tally)> = {
            let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
            for (campaign, counted) in stats.take_unflushed() {
                let (total, dirty) = totals.entry(campaign).or_insert(([0; _], false));
                for (t, n) in total.iter_mut().zip(counted) {
                    *t += n;
                }
                *dirty = true;
            }
            totals
                .iter()
                .filter(|(_, (_, dirty))| *dirty)
                .map(|(c, (t, _))| (*c, *t))
                .collect()
        };
        if dirty.is_empty() {
            return Ok(0);
        }
        store.save_claim_counts(&self.instance, &dirty, now).await?;
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        for (campaign, written) in &dirty {
            // Counts that arrived meanwhile keep the entry dirty.
            if let Some((total, dirty)) = totals.get_mut(campaign)
                && total == written
            {
                *dirty = false;
            }
        }
        Ok(dirty.len())
    }
}
