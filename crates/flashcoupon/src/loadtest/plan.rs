//! The plan of a drop: which user claims when, with which `Idempotency-Key`.
//! Deterministic for a seed, so a failing run can be replayed.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// When users arrive, relative to the opening instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// Everyone at the opening instant.
    Burst,
    /// Uniformly at random over a window (open loop).
    Spread(Duration),
    /// A steady `per_sec` users per second.
    Rate { per_sec: u32 },
}

impl Arrival {
    /// When the `user`-th user arrives after the opening (a spread draws
    /// one number from `rng`; the others draw none).
    pub fn offset(self, user: usize, rng: &mut impl Rng) -> Duration {
        match self {
            Arrival::Burst => Duration::ZERO,
            Arrival::Spread(window) => window.mul_f64(rng.r#gen::<f64>()),
            Arrival::Rate { per_sec } => {
                Duration::from_secs_f64(user as f64 / per_sec.max(1) as f64)
            }
        }
    }
}

/// One request of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedClaim {
    pub user: usize,
    pub key: String,
    /// After the opening instant.
    pub at: Duration,
    /// Reuses the key of this user's previous claim.
    pub retry: bool,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub claims: Vec<PlannedClaim>,
    /// Distinct keys per user: how many coupons each may legally take at most
    /// (before the per-user limit).
    pub distinct_keys: Vec<u32>,
}

impl Plan {
    /// Every user fires `claims_per_user` claims at once at their arrival;
    /// each claim after the first is, with probability `retry_share`, a
    /// retry of the previous one (same key) — a double click.
    pub fn new(
        users: usize,
        claims_per_user: u32,
        retry_share: f64,
        arrival: Arrival,
        run: &str,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut claims = Vec::with_capacity(users * claims_per_user as usize);
        let mut distinct_keys = Vec::with_capacity(users);
        for user in 0..users {
            let at = arrival.offset(user, &mut rng);
            let mut keys = 0;
            let mut key = String::new();
            for c in 0..claims_per_user {
                let retry = c > 0 && rng.r#gen::<f64>() < retry_share;
                if !retry {
                    key = format!("{run}-{user}-{c}");
                    keys += 1;
                }
                claims.push(PlannedClaim {
                    user,
                    key: key.clone(),
                    at,
                    retry,
                });
            }
            distinct_keys.push(keys);
        }
        claims.sort_by_key(|c| c.at);
        Plan {
            claims,
            distinct_keys,
        }
    }

    /// The most coupons the users could legally take: min(stock, Σ min(limit, keys)).
    pub fn legal_issue_count(&self, stock: u64, limit: u32) -> u64 {
        let wanted: u64 = self
            .distinct_keys
            .iter()
            .map(|&k| k.min(limit) as u64)
            .sum();
        wanted.min(stock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_plans_every_claim_at_the_opening() {
        let p = Plan::new(10, 3, 0.0, Arrival::Burst, "r", 1);
        assert_eq!(p.claims.len(), 30);
        assert!(p.claims.iter().all(|c| c.at == Duration::ZERO && !c.retry));
        assert_eq!(p.legal_issue_count(1_000, 2), 20);
        assert_eq!(p.legal_issue_count(5, 2), 5);
    }

    #[test]
    fn retries_reuse_the_previous_key_and_do_not_count_as_wanted() {
        let p = Plan::new(200, 3, 1.0, Arrival::Burst, "r", 7);
        assert!(p.distinct_keys.iter().all(|&k| k == 1));
        let first = p.claims.iter().find(|c| c.user == 3).unwrap().key.clone();
        assert!(
            p.claims
                .iter()
                .filter(|c| c.user == 3)
                .all(|c| c.key == first)
        );
    }

    #[test]
    fn spread_and_rate_arrivals_stay_in_their_window() {
        let p = Plan::new(
            1_000,
            1,
            0.0,
            Arrival::Spread(Duration::from_secs(1)),
            "r",
            3,
        );
        assert!(p.claims.iter().all(|c| c.at < Duration::from_secs(1)));
        assert!(
            p.claims.windows(2).all(|w| w[0].at <= w[1].at),
            "sorted by arrival"
        );
        let p = Plan::new(100, 1, 0.0, Arrival::Rate { per_sec: 50 }, "r", 3);
        assert_eq!(
            p.claims.last().unwrap().at,
            Duration::from_secs_f64(99.0 / 50.0)
        );
    }
}
