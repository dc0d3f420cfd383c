//! The plan of a time sale: when each buyer first orders, whether they pay,
//! what they pay with, and when they would try again. Deterministic for a
//! seed, so a failing run can be replayed.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::loadtest::args::SaleArgs;
use crate::loadtest::plan::Arrival;

/// Points earned for each points buyer at set-up, and put on each order.
pub const POINTS_EARNED: i64 = 10_000;
pub const POINTS_PER_ORDER: i64 = 3_000;

/// One buyer of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Buyer {
    pub user: usize,
    /// First order, after the opening.
    pub at: Duration,
    /// Pays as soon as the order is placed; otherwise never.
    pub pays: bool,
    pub points: bool,
    pub coupon: bool,
    /// Before each retry: the wait after the previous answer.
    pub waits: Vec<Duration>,
}

impl Buyer {
    /// The points each of this buyer's orders asks for.
    pub fn points_asked(&self) -> Option<i64> {
        self.points.then_some(POINTS_PER_ORDER)
    }
}

/// Every buyer, by first arrival.
#[derive(Debug, Clone)]
pub struct SalePlan {
    pub buyers: Vec<Buyer>,
}

impl SalePlan {
    /// `users` buyers arriving as `arrival` says; a retry waits
    /// `sale.retry_after()` plus a random part up to `spread`.
    pub fn new(
        users: usize,
        arrival: Arrival,
        sale: &SaleArgs,
        spread: Duration,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut buyers: Vec<Buyer> = (0..users)
            .map(|user| Buyer {
                user,
                at: arrival.offset(user, &mut rng),
                pays: rng.r#gen::<f64>() >= sale.never_pay_share,
                points: rng.r#gen::<f64>() < sale.points_share,
                coupon: rng.r#gen::<f64>() < sale.coupon_share,
                waits: (0..sale.retries)
                    .map(|_| sale.retry_after() + spread.mul_f64(rng.r#gen::<f64>()))
                    .collect(),
            })
            .collect();
        buyers.sort_by_key(|b| b.at);
        SalePlan { buyers }
    }

    /// Buyers with points, with a coupon (by user index).
    pub fn with_points(&self) -> Vec<usize> {
        self.buyers
            .iter()
            .filter(|b| b.points)
            .map(|b| b.user)
            .collect()
    }

    pub fn with_coupon(&self) -> Vec<usize> {
        self.buyers
            .iter()
            .filter(|b| b.coupon)
            .map(|b| b.user)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(never_pay: f64, points: f64, coupons: f64) -> SaleArgs {
        SaleArgs {
            never_pay_share: never_pay,
            points_share: points,
            coupon_share: coupons,
            ..SaleArgs::default()
        }
    }

    #[test]
    fn shares_are_kept_and_retries_wait_at_least_the_payment_time() {
        let sale = args(0.3, 0.1, 0.2);
        let p = SalePlan::new(
            10_000,
            Arrival::Spread(Duration::from_secs(1)),
            &sale,
            Duration::from_secs(1),
            5,
        );
        assert_eq!(p.buyers.len(), 10_000);
        let share = |n: usize| n as f64 / 10_000.0;
        let never = p.buyers.iter().filter(|b| !b.pays).count();
        assert!((share(never) - 0.3).abs() < 0.02, "{never}");
        assert!((share(p.with_points().len()) - 0.1).abs() < 0.02);
        assert!((share(p.with_coupon().len()) - 0.2).abs() < 0.02);
        assert!(p.buyers.windows(2).all(|w| w[0].at <= w[1].at));
        for b in &p.buyers {
            assert!(b.at < Duration::from_secs(1));
            assert_eq!(b.waits.len(), 3);
            assert!(
                b.waits
                    .iter()
                    .all(|w| *w >= Duration::from_secs(3) && *w < Duration::from_secs(4))
            );
        }
        assert_eq!(p.buyers[0].points_asked().is_some(), p.buyers[0].points);
    }

    #[test]
    fn the_same_seed_gives_the_same_plan_and_zero_shares_give_none() {
        let sale = args(0.0, 0.0, 0.0);
        let a = SalePlan::new(50, Arrival::Burst, &sale, Duration::ZERO, 9);
        let b = SalePlan::new(50, Arrival::Burst, &sale, Duration::ZERO, 9);
        assert_eq!(a.buyers, b.buyers);
        assert!(a.buyers.iter().all(|b| b.pays && !b.points && !b.coupon));
        assert!(a.with_points().is_empty() && a.with_coupon().is_empty());
    }
}
