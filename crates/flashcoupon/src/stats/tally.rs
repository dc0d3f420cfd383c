//! Claim answers counted by every instance, in one shared place: each
//! instance writes its running totals (per campaign, since it started) to
//! the record about every second, under an id of its own that changes at
//! every start. A summary sums every incarnation's rows, so every instance
//! answers the same, and a restart keeps what was written.
//!
//! The coupons issued are also counted per minute (the summary's issue
//! curve), the same way: a row per campaign, instance and minute.
//!
//! The hot path only bumps [`ClaimStats`]' counters (one short lock it
//! takes anyway); the write is one small transaction per second, off the
//! claim path. What a `kill -9` takes is at most the last second's counts:
//! these are statistics, not promises, and the coupons themselves are in
//! the record whatever happens here.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::stats::MINUTE_MS;

use crate::claim_stats::{ClaimStats, Tally};
use crate::domain::ids::CampaignId;
use crate::domain::timestamp::Timestamp;
use crate::store::{StatsStore, StoreError};

/// How long a minute's issue count is kept in memory once written: claims
/// are counted at the minute they are answered, so a minute that has passed
/// gets no more (its row is final); the margin covers a clock moved back.
const KEEP_MINUTES: i64 = 120;

/// This incarnation's running totals and which of them the record lacks.
#[derive(Debug)]
pub struct ClusterTally {
    /// A new id at every start (UUIDv7): old incarnations' rows stay.
    instance: String,
    running: Mutex<Running>,
    /// One flush at a time (the loop's and the one at shutdown): two
    /// writes landing out of order would leave the older totals in the
    /// record while the newer ones are marked written.
    flushing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Running {
    /// Per campaign: the outcomes, and whether the record lacks them.
    totals: HashMap<CampaignId, (Tally, bool)>,
    /// Per campaign and minute: coupons issued, and whether the record lacks it.
    minutes: HashMap<(CampaignId, i64), (u64, bool)>,
}

/// What one flush writes.
pub type Minutes = Vec<(CampaignId, i64, u64)>;

impl Default for ClusterTally {
    fn default() -> Self {
        Self {
            instance: uuid::Uuid::now_v7().to_string(),
            running: Mutex::default(),
            flushing: tokio::sync::Mutex::new(()),
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
        let _one = self.flushing.lock().await;
        let (dirty, minutes): (Vec<(CampaignId, Tally)>, Minutes) = {
            let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
            for (campaign, counted, issued) in stats.take_unflushed() {
                let (total, dirty) = r.totals.entry(campaign).or_insert(([0; _], false));
                for (t, n) in total.iter_mut().zip(counted) {
                    *t += n;
                }
                *dirty = true;
                for (minute, n) in issued {
                    let (total, dirty) = r.minutes.entry((campaign, minute)).or_insert((0, false));
                    *total += n;
                    *dirty = true;
                }
            }
            // Written minutes long past get no more counts: forget them.
            let horizon = now.0.div_euclid(MINUTE_MS) - KEEP_MINUTES;
            r.minutes
                .retain(|(_, m), (_, dirty)| *dirty || *m >= horizon);
            (
                r.totals
                    .iter()
                    .filter(|(_, (_, dirty))| *dirty)
                    .map(|(c, (t, _))| (*c, *t))
                    .collect(),
                r.minutes
                    .iter()
                    .filter(|(_, (_, dirty))| *dirty)
                    .map(|((c, m), (n, _))| (*c, *m, *n))
                    .collect(),
            )
        };
        if dirty.is_empty() && minutes.is_empty() {
            return Ok(0);
        }
        store
            .save_claim_counts(&self.instance, &dirty, &minutes, now)
            .await?;
        let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for (campaign, written) in &dirty {
            // Counts that arrived meanwhile keep the entry dirty.
            if let Some((total, dirty)) = r.totals.get_mut(campaign)
                && total == written
            {
                *dirty = false;
            }
        }
        for (campaign, minute, written) in &minutes {
            if let Some((total, dirty)) = r.minutes.get_mut(&(*campaign, *minute))
                && total == written
            {
                *dirty = false;
            }
        }
        Ok(dirty.len())
    }
}
