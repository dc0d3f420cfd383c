//! Rate limits (GCRA, from `governor`): claims per user, and sign-ups and
//! log-ins per client address. A limit of 0 turns that limiter off.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::domain::ids::UserId;

/// Refused by a rate limit: try again in `secs` seconds (rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    pub secs: u64,
}

#[derive(Debug)]
pub struct RateLimits {
    claims: Option<DefaultKeyedRateLimiter<UserId>>,
    auth: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

/// `per_second` sustained, with bursts of twice that.
fn quota(per_second: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), RetryAfter> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        RetryAfter {
            secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        }
    })
}

impl RateLimits {
    pub fn new(claims_per_user_per_sec: u32, auth_per_ip_per_sec: u32) -> Self {
        Self {
            claims: quota(claims_per_user_per_sec).map(RateLimiter::keyed),
            auth: quota(auth_per_ip_per_sec).map(RateLimiter::keyed),
        }
    }

    pub fn check_claim(&self, user: UserId) -> Result<(), RetryAfter> {
        check(&self.claims, &user)
    }

    pub fn check_auth(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        check(&self.auth, &ip)
    }

    /// Drop the state of keys that are back to a full quota, so memory does not
    /// grow with every user ever seen.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.claims {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.auth {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}
