//! A budget of failures (wrong codes) per key, that concurrency cannot
//! outrun: each attempt reserves a failure before it may look anything up,
//! and gives the reservation back if it succeeded. So however many requests
//! one user sends at once, at most the budget's worth can miss; a key out of
//! budget is refused before any lookup, so it learns nothing more.
//!
//! A token bucket: `per_minute` failures, all usable at once, refilled
//! evenly. governor cannot give a cell back, which a reservation needs.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::rate_limit::RetryAfter;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures still allowed, as of `at`.
    tokens: f64,
    at: Instant,
    /// Attempts looking up right now, each holding one token in reserve.
    in_flight: u32,
}

#[derive(Debug)]
pub struct GuessBudget<K> {
    /// `None`: no limit.
    per_minute: Option<f64>,
    /// Reserve a failure for every attempt (per user); otherwise only count
    /// failures after the fact (per address: a crowd behind one address
    /// redeeming a real shared code at once must not be refused for it).
    reserve: bool,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> GuessBudget<K> {
    pub fn new(per_minute: u32, reserve: bool) -> Self {
        Self {
            per_minute: (per_minute > 0).then_some(per_minute as f64),
            reserve,
            buckets: Mutex::default(),
        }
    }

    fn buckets(&self) -> std::sync::MutexGuard<'_, HashMap<K, Bucket>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bucket of `key`, refilled up to now.
    fn refilled<'a>(
        buckets: &'a mut HashMap<K, Bucket>,
        key: &K,
        per_minute: f64,
        now: Instant,
    ) -> &'a mut Bucket {
        let b = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: per_minute,
            at: now,
            in_flight: 0,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * per_minute / 60.0;
        b.tokens = (b.tokens + refill).min(per_minute);
        b.at = now;
        b
    }

    /// How long until one more failure fits in `b`.
    fn wait(b: &Bucket, per_minute: f64) -> RetryAfter {
        let short = (1.0 + b.in_flight as f64 - b.tokens).max(0.0);
        let secs = short * 60.0 / per_minute;
        RetryAfter {
            secs: Duration::from_secs_f64(secs).as_secs().max(1),
        }
    }

    /// Before a lookup: refused while the key has no failure left to risk
    /// (counting the attempts already in flight if it reserves).
    pub fn begin(&self, key: &K) -> Result<(), RetryAfter> {
        let Some(per_minute) = self.per_minute else {
            return Ok(());
        };
        let mut buckets = self.buckets();
        let b = Self::refilled(&mut buckets, key, per_minute, Instant::now());
        let reserved = if self.reserve {
            b.in_flight as f64
        } else {
            0.0
        };
        if b.tokens - reserved < 1.0 {
            return Err(Self::wait(b, per_minute));
        }
        if self.reserve {
            b.in_flight += 1;
        }
        Ok(())
    }

    /// After the lookup `begin` allowed (also when it was abandoned: pass
    /// `failed: false`): give the reservation back, and spend a failure.
    pub fn end(&self, key: &K, failed: bool) {
        let Some(per_minute) = self.per_minute else {
            return;
        };
        let mut buckets = self.buckets();
        let b = Self::refilled(&mut buckets, key, per_minute, Instant::now());
        if self.reserve {
            b.in_flight = b.in_flight.saturating_sub(1);
        }
        if failed {
            b.tokens = (b.tokens - 1.0).max(0.0);
        }
    }

    /// Forget keys that are full again with nothing in flight.
    pub fn forget_idle(&self) {
        let Some(per_minute) = self.per_minute else {
            return;
        };
        let now = Instant::now();
        self.buckets().retain(|_, b| {
            let refill = now.duration_since(b.at).as_secs_f64() * per_minute / 60.0;
            b.in_flight > 0 || b.tokens + refill < per_minute
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_in_flight_hold_the_budget_so_a_burst_cannot_outrun_it() {
        let budget = GuessBudget::new(3, true);
        // Three at once are let through; the fourth waits for one of them.
        for _ in 0..3 {
            budget.begin(&"u").unwrap();
        }
        assert!(budget.begin(&"u").is_err());
        // One succeeded: its reservation comes back, nothing spent.
        budget.end(&"u", false);
        budget.begin(&"u").unwrap();
        // Three misses spend the budget.
        for _ in 0..3 {
            budget.end(&"u", true);
        }
        let wait = budget.begin(&"u").unwrap_err();
        assert!((1..=20).contains(&wait.secs), "{wait:?}");
        // Another key is untouched.
        budget.begin(&"v").unwrap();
    }

    #[test]
    fn without_reservations_only_failures_count() {
        let budget = GuessBudget::new(2, false);
        for _ in 0..100 {
            budget.begin(&"addr").unwrap();
        }
        budget.end(&"addr", true);
        budget.begin(&"addr").unwrap();
        budget.end(&"addr", true);
        assert!(budget.begin(&"addr").is_err());
        let off = GuessBudget::new(0, true);
        for _ in 0..100 {
            off.begin(&"x").unwrap();
            off.end(&"x", true);
        }
    }

    #[test]
    fn full_idle_keys_are_forgotten() {
        let budget = GuessBudget::new(5, true);
        budget.begin(&"idle").unwrap();
        budget.end(&"idle", false);
        budget.begin(&"busy").unwrap();
        budget.begin(&"spent").unwrap();
        budget.end(&"spent", true);
        budget.forget_idle();
        let kept: Vec<&str> = budget.buckets().keys().copied().collect();
        assert!(
            kept.contains(&"busy") && kept.contains(&"spent"),
            "{kept:?}"
        );
        assert!(!kept.contains(&"idle"));
    }
}
