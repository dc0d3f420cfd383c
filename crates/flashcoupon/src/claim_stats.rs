//! Per-campaign claim statistics for the admin dashboard: outcomes per
//! second over the last ten minutes, totals, and the issue latency
//! distribution, kept in memory by the instance that answered the claims.
//!
//! Prometheus (`/metrics`) has the same numbers for all campaigns together;
//! this keeps them per campaign and per second so a dashboard can draw a drop
//! as it happens without a metrics stack. Recording is one short lock on the
//! campaign's own entry, never a storage round trip.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::ids::CampaignId;
use crate::domain::timestamp::Timestamp;

/// How many seconds of per-second counts are kept.
pub const WINDOW_SECS: usize = 600;

/// A campaign with no claim for this long is forgotten (about 35 KB each).
pub const FORGET_AFTER_SECS: i64 = 3_600;

/// How a claim was answered: the API's `claims` keys of a campaign
/// summary, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Issued,
    /// The same Idempotency-Key again: answered with the first coupon.
    Replayed,
    SoldOut,
    LimitReached,
    NotOpen,
    Ended,
    Paused,
    RateLimited,
    /// Could not be decided (storage unavailable) or failed.
    Unavailable,
}

/// How many [`Outcome`]s there are.
pub const OUTCOMES: usize = 9;

impl Outcome {
    pub const ALL: [Outcome; OUTCOMES] = [
        Outcome::Issued,
        Outcome::Replayed,
        Outcome::SoldOut,
        Outcome::LimitReached,
        Outcome::NotOpen,
        Outcome::Ended,
        Outcome::Paused,
        Outcome::RateLimited,
        Outcome::Unavailable,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The API's (and the record's column) name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Issued => "issued",
            Outcome::Replayed => "replayed",
            Outcome::SoldOut => "sold_out",
            Outcome::LimitReached => "limit_reached",
            Outcome::NotOpen => "not_open",
            Outcome::Ended => "ended",
            Outcome::Paused => "paused",
            Outcome::RateLimited => "rate_limited",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// Counts indexed by [`Outcome::index`].
pub type Tally = [u64; OUTCOMES];

/// Coupons issued per minute (`ms / 60,000`).
pub type IssuedByMinute = Vec<(i64, u64)>;

/// Counts by outcome, as the live dashboard groups them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct OutcomeCounts {
    pub issued: u64,
    pub replayed: u64,
    pub sold_out: u64,
    pub limit_reached: u64,
    /// Not open yet, ended or paused.
    pub refused: u64,
    pub rate_limited: u64,
    pub errors: u64,
}

impl OutcomeCounts {
    fn of(c: &Tally) -> Self {
        let at = |o: Outcome| c[o.index()];
        Self {
            issued: at(Outcome::Issued),
            replayed: at(Outcome::Replayed),
            sold_out: at(Outcome::SoldOut),
            limit_reached: at(Outcome::LimitReached),
            refused: at(Outcome::NotOpen) + at(Outcome::Ended) + at(Outcome::Paused),
            rate_limited: at(Outcome::RateLimited),
            errors: at(Outcome::Unavailable),
        }
    }
}

/// Claims per second, oldest first: `issued[i]` counts the second starting
/// at `start + i` seconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Series {
    pub start: Timestamp,
    pub step_secs: u32,
    pub issued: Vec<u64>,
    pub replayed: Vec<u64>,
    pub sold_out: Vec<u64>,
    pub limit_reached: Vec<u64>,
    pub refused: Vec<u64>,
    pub rate_limited: Vec<u64>,
    pub errors: Vec<u64>,
}

impl Series {
    fn push(&mut self, c: OutcomeCounts) {
        self.issued.push(c.issued);
        self.replayed.push(c.replayed);
        self.sold_out.push(c.sold_out);
        self.limit_reached.push(c.limit_reached);
        self.refused.push(c.refused);
        self.rate_limited.push(c.rate_limited);
        self.errors.push(c.errors);
    }
}

/// Issue latency, milliseconds, since this instance started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What the dashboard reads for one campaign.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct CampaignStats {
    pub totals: OutcomeCounts,
    pub per_second: Series,
    pub latency: LatencySummary,
}

#[derive(Debug)]
struct Entry {
    /// `seconds[s % WINDOW_SECS]` holds second `s` if its stamp says so.
    seconds: Vec<(i64, [u32; OUTCOMES])>,
    /// The second of the last claim recorded.
    last: i64,
    totals: Tally,
    /// Counted since the last [`ClaimStats::take_unflushed`]: what the
    /// cluster-wide tally has not been told yet.
    unflushed: Tally,
    /// Issued since the last take, by minute (`ms / 60,000`; almost always
    /// one minute, two across its turn).
    unflushed_minutes: IssuedByMinute,
    /// Microseconds.
    latency: Histogram<u64>,
}

impl Entry {
    fn new() -> Self {
        Self {
            seconds: vec![(i64::MIN, [0; OUTCOMES]); WINDOW_SECS],
            last: i64::MIN,
            totals: [0; OUTCOMES],
            unflushed: [0; OUTCOMES],
            unflushed_minutes: Vec::new(),
            latency: Histogram::new_with_bounds(1, 600_000_000, 2).expect("valid bounds"),
        }
    }
}

#[derive(Debug, Default)]
pub struct ClaimStats {
    campaigns: RwLock<HashMap<CampaignId, Arc<Mutex<Entry>>>>,
}

fn second_of(t: Timestamp) -> i64 {
    t.0.div_euclid(1000)
}

fn slot(second: i64) -> usize {
    second.rem_euclid(WINDOW_SECS as i64) as usize
}

impl ClaimStats {
    /// Count one answered claim. Callers only record claims on campaigns
    /// that exist, so the map cannot be grown by made-up ids.
    pub fn record(&self, campaign: CampaignId, outcome: Outcome, took: Duration, now: Timestamp) {
        // The entry is locked under the map's read lock, so `forget_idle`
        // (which takes the write lock) cannot drop it between the two and
        // lose this count.
        loop {
            let campaigns = self.campaigns.read().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = campaigns.get(&campaign) {
                let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
                Self::count(&mut e, outcome, took, now);
                return;
            }
            drop(campaigns);
            self.entry(campaign);
        }
    }

    fn count(e: &mut Entry, outcome: Outcome, took: Duration, now: Timestamp) {
        let second = second_of(now);
        let bucket = &mut e.seconds[slot(second)];
        if bucket.0 != second {
            *bucket = (second, [0; OUTCOMES]);
        }
        bucket.1[outcome.index()] = bucket.1[outcome.index()].saturating_add(1);
        e.last = e.last.max(second);
        e.totals[outcome.index()] += 1;
        e.unflushed[outcome.index()] += 1;
        if outcome == Outcome::Issued {
            let minute = now.0.div_euclid(60_000);
            match e.unflushed_minutes.iter_mut().find(|(m, _)| *m == minute) {
                Some((_, n)) => *n += 1,
                None => e.unflushed_minutes.push((minute, 1)),
            }
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        e.latency.saturating_record(micros.max(1));
    }

    /// How many campaigns have an entry.
    pub fn tracked(&self) -> usize {
        self.campaigns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Drop campaigns with no claim in the last [`FORGET_AFTER_SECS`]: a
    /// long-running shop does not keep every past drop in memory. (The
    /// record still has their winners; the gate their counts.) An entry
    /// whose counts were not taken for the cluster-wide tally yet stays.
    pub fn forget_idle(&self, now: Timestamp) {
        let horizon = second_of(now) - FORGET_AFTER_SECS;
        self.campaigns
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| {
                let e = e.lock().unwrap_or_else(|p| p.into_inner());
                e.last >= horizon || e.unflushed.iter().any(|&n| n > 0)
            });
    }

    /// What was counted since the last call, per campaign (campaigns with
    /// nothing new left out): the outcomes, and the issued by minute. Then
    /// start counting afresh.
    pub fn take_unflushed(&self) -> Vec<(CampaignId, Tally, IssuedByMinute)> {
        let campaigns = self.campaigns.read().unwrap_or_else(|p| p.into_inner());
        campaigns
            .iter()
            .filter_map(|(id, e)| {
                let mut e = e.lock().unwrap_or_else(|p| p.into_inner());
                e.unflushed.iter().any(|&n| n > 0).then(|| {
                    (
                        *id,
                        std::mem::replace(&mut e.unflushed, [0; OUTCOMES]),
                        std::mem::take(&mut e.unflushed_minutes),
                    )
                })
            })
            .collect()
    }

    fn entry(&self, campaign: CampaignId) -> Arc<Mutex<Entry>> {
        if let Some(e) = self
            .campaigns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&campaign)
        {
            return e.clone();
        }
        self.campaigns
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(campaign)
            .or_insert_with(|| Arc::new(Mutex::new(Entry::new())))
            .clone()
    }

    /// The last `seconds` seconds up to and including the current one
    /// (at most [`WINDOW_SECS`]), with totals and latency.
    pub fn read(&self, campaign: CampaignId, seconds: usize, now: Timestamp) -> CampaignStats {
        let seconds = seconds.clamp(1, WINDOW_SECS);
        let last = second_of(now);
        let first = last - seconds as i64 + 1;
        let mut per_second = Series {
            start: Timestamp(first * 1000),
            step_secs: 1,
            ..Series::default()
        };
        // A campaign without claims reads like a fresh entry: all zeros.
        let entry = self
            .campaigns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&campaign)
            .cloned()
            .unwrap_or_else(|| Arc::new(Mutex::new(Entry::new())));
        let e = entry.lock().unwrap_or_else(|p| p.into_inner());
        for s in first..=last {
            let (stamp, counts) = e.seconds[slot(s)];
            let c = if stamp == s { counts } else { [0; OUTCOMES] };
            per_second.push(OutcomeCounts::of(&c.map(u64::from)));
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        let latency = if e.latency.is_empty() {
            LatencySummary::default()
        } else {
            LatencySummary {
                count: e.latency.len(),
                p50_ms: ms(e.latency.value_at_quantile(0.50)),
                p99_ms: ms(e.latency.value_at_quantile(0.99)),
                max_ms: ms(e.latency.max()),
            }
        };
        CampaignStats {
            totals: OutcomeCounts::of(&e.totals),
            per_second,
            latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn outcomes_land_in_their_second_and_old_seconds_fall_out() {
        let stats = ClaimStats::default();
        let c = CampaignId::generate();
        let t0 = Timestamp(1_000_000);
        for _ in 0..3 {
            stats.record(c, Outcome::Issued, MS, t0);
        }
        stats.record(c, Outcome::SoldOut, MS, t0.plus_millis(1_500));
        stats.record(c, Outcome::Unavailable, MS, t0.plus_millis(1_999));
        let read = stats.read(c, 3, t0.plus_millis(2_000));
        assert_eq!(read.per_second.start, t0);
        assert_eq!(read.per_second.issued, vec![3, 0, 0]);
        assert_eq!(read.per_second.sold_out, vec![0, 1, 0]);
        assert_eq!(read.per_second.errors, vec![0, 1, 0]);
        assert_eq!(
            (read.totals.issued, read.totals.sold_out, read.totals.errors),
            (3, 1, 1)
        );

        // A full window later the slot is reused: the old second reads 0,
        // the totals keep counting.
        let later = t0.plus_millis(WINDOW_SECS as i64 * 1000);
        stats.record(c, Outcome::LimitReached, MS, later);
        let read = stats.read(c, WINDOW_SECS, later);
        assert_eq!(read.per_second.issued.iter().sum::<u64>(), 0);
        assert_eq!(read.per_second.limit_reached.last(), Some(&1));
        assert_eq!(read.totals.issued, 3);
        assert_eq!(read.per_second.issued.len(), WINDOW_SECS);
    }

    #[test]
    fn campaigns_idle_for_an_hour_are_forgotten_and_busy_ones_kept() {
        let stats = ClaimStats::default();
        let (idle, busy) = (CampaignId::generate(), CampaignId::generate());
        let t0 = Timestamp(10_000_000);
        stats.record(idle, Outcome::Issued, MS, t0);
        let later = t0.plus_millis(FORGET_AFTER_SECS * 1000 + 1000);
        stats.record(busy, Outcome::Issued, MS, later);
        // Once the cluster-wide tally has taken their counts.
        stats.take_unflushed();
        stats.forget_idle(later);
        assert_eq!(stats.read(idle, 1, later).totals.issued, 0);
        assert_eq!(stats.read(busy, 1, later).totals.issued, 1);
    }

    #[test]
    fn latency_percentiles_come_from_the_recorded_durations() {
        let stats = ClaimStats::default();
        let c = CampaignId::generate();
        for ms in 1..=100u64 {
            stats.record(c, Outcome::Issued, Duration::from_millis(ms), Timestamp(0));
        }
        let l = stats.read(c, 1, Timestamp(0)).latency;
        assert_eq!(l.count, 100);
        assert!((49.0..=51.0).contains(&l.p50_ms), "{l:?}");
        assert!((98.0..=100.5).contains(&l.p99_ms), "{l:?}");
        assert!(l.max_ms >= 99.0, "{l:?}");
    }

    #[test]
    fn unflushed_counts_are_taken_once_and_keep_an_idle_entry() {
        let stats = ClaimStats::default();
        let c = CampaignId::generate();
        let t0 = Timestamp(10_000_000);
        stats.record(c, Outcome::Issued, MS, t0);
        stats.record(c, Outcome::Paused, MS, t0);
        stats.record(c, Outcome::Paused, MS, t0);
        // An hour later the entry is idle, but its counts are not out yet.
        stats.forget_idle(t0.plus_millis(FORGET_AFTER_SECS * 1000 + 1000));
        let taken = stats.take_unflushed();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0, c);
        assert_eq!(taken[0].1[Outcome::Issued.index()], 1);
        assert_eq!(taken[0].1[Outcome::Paused.index()], 2);
        assert_eq!(taken[0].2, vec![(t0.0 / 60_000, 1)], "the issue's minute");
        assert!(stats.take_unflushed().is_empty(), "taken once");
        // The dashboard still groups not_open, ended and paused as refused.
        assert_eq!(stats.read(c, 1, t0).totals.refused, 2);
        stats.forget_idle(t0.plus_millis(FORGET_AFTER_SECS * 1000 + 1000));
        assert_eq!(stats.tracked(), 0);
    }

    #[test]
    fn an_unseen_campaign_reads_as_zeros() {
        let stats = ClaimStats::default();
        let read = stats.read(CampaignId::generate(), 60, Timestamp(5_000));
        assert_eq!(read.per_second.issued, vec![0; 60]);
        assert_eq!(read.latency.count, 0);
    }
}
