//! Rate limits (GCRA, from `governor`): claims per user, every other write a
//! shopper makes (subscriptions, mark-read, preview, use) per user,
//! sign-ups and log-ins per client address, and failed code redemptions
//! (guesses) per user and per address. A limit of 0 turns that limiter off.
//!
//! A client address is the peer's, or, when the peer is a configured trusted
//! proxy, the first address in `X-Forwarded-For` (from the right) that is not
//! one: a header anybody else sends is ignored. IPv6 clients are keyed by
//! their /64, the block one subscriber usually holds, so rotating addresses
//! inside it does not buy more attempts.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::guess_budget::GuessBudget;

use crate::domain::ids::UserId;

/// Refused by a rate limit: try again in `secs` seconds (rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    pub secs: u64,
}

#[derive(Debug)]
pub struct RateLimits {
    claims: Option<DefaultKeyedRateLimiter<UserId>>,
    writes: Option<DefaultKeyedRateLimiter<UserId>>,
    auth: Option<DefaultKeyedRateLimiter<IpAddr>>,
    code_guesses_user: GuessBudget<UserId>,
    code_guesses_address: GuessBudget<IpAddr>,
    trusted_proxies: Vec<IpNet>,
}

/// One code redemption between its lookup and its answer.
#[derive(Debug)]
pub struct CodeGuess<'a> {
    limits: &'a RateLimits,
    user: UserId,
    address: IpAddr,
    ended: bool,
}

impl CodeGuess<'_> {
    /// The answer is known: a failure (unknown or used code) is spent by
    /// the user and the address. The failure that spends the last of a
    /// budget still gets its own answer; the next attempt waits.
    pub fn end(mut self, failed: bool) {
        self.ended = true;
        self.limits.code_guesses_user.end(&self.user, failed);
        self.limits.code_guesses_address.end(&self.address, failed);
    }
}

impl Drop for CodeGuess<'_> {
    fn drop(&mut self) {
        if !self.ended {
            // The request went away mid-lookup: give the reservation back.
            self.limits.code_guesses_user.end(&self.user, false);
            self.limits.code_guesses_address.end(&self.address, false);
        }
    }
}

fn retry_after(wait: Duration) -> RetryAfter {
    RetryAfter {
        secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
    }
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
    limiter
        .check_key(key)
        .map_err(|not_until| retry_after(not_until.wait_time_from(DefaultClock::default().now())))
}

impl RateLimits {
    pub fn new(
        claims_per_user_per_sec: u32,
        writes_per_user_per_sec: u32,
        auth_per_ip_per_sec: u32,
        trusted_proxies: Vec<IpNet>,
    ) -> Self {
        Self {
            claims: quota(claims_per_user_per_sec).map(RateLimiter::keyed),
            writes: quota(writes_per_user_per_sec).map(RateLimiter::keyed),
            auth: quota(auth_per_ip_per_sec).map(RateLimiter::keyed),
            code_guesses_user: GuessBudget::new(0, true),
            code_guesses_address: GuessBudget::new(0, false),
            trusted_proxies,
        }
    }

    /// Limit failed code redemptions to this many a minute per user and per
    /// client address (0: no limit).
    pub fn with_code_guesses(mut self, per_user_per_min: u32, per_address_per_min: u32) -> Self {
        // Per user, every attempt reserves a failure (see `GuessBudget`);
        // per address only failures count, or a crowd behind one address
        // redeeming a real shared code would be refused.
        self.code_guesses_user = GuessBudget::new(per_user_per_min, true);
        self.code_guesses_address = GuessBudget::new(per_address_per_min, false);
        self
    }

    /// Before a code is looked up: refused while the user or the address is
    /// out of failed redemptions. On `Ok`, the attempt must be ended with
    /// [`CodeGuess::end`] (dropping it ends it as no failure).
    pub fn begin_code_guess(
        &self,
        user: UserId,
        client: IpAddr,
    ) -> Result<CodeGuess<'_>, RetryAfter> {
        let address = address_key(client);
        self.code_guesses_address.begin(&address)?;
        self.code_guesses_user.begin(&user)?;
        Ok(CodeGuess {
            limits: self,
            user,
            address,
            ended: false,
        })
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy
    /// (see the module's doc).
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_for.unwrap_or("").rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if trusted(&ip) => client = ip,
                Ok(ip) => return ip,
                // Garbage where an address belongs: trust nothing further left.
                Err(_) => return client,
            }
        }
        client
    }

    pub fn check_claim(&self, user: UserId) -> Result<(), RetryAfter> {
        check(&self.claims, &user)
    }

    /// A shopper's write other than a claim.
    pub fn check_write(&self, user: UserId) -> Result<(), RetryAfter> {
        check(&self.writes, &user)
    }

    pub fn check_auth(&self, client: IpAddr) -> Result<(), RetryAfter> {
        check(&self.auth, &address_key(client))
    }

    /// Drop the state of keys that are back to a full quota, so memory does not
    /// grow with every user ever seen.
    pub fn forget_idle(&self) {
        for l in [&self.claims, &self.writes].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.auth {
            l.retain_recent();
            l.shrink_to_fit();
        }
        self.code_guesses_user.forget_idle();
        self.code_guesses_address.forget_idle();
    }
}

/// The key a client address is limited under: IPv4 as is (also when mapped
/// into IPv6), IPv6 by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address_key(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
        let limits = RateLimits::new(0, 0, 1, vec![]);
        // A burst of two for the whole /64, whichever address asks.
        assert!(limits.check_auth(ip("2001:db8:1:2::1")).is_ok());
        assert!(limits.check_auth(ip("2001:db8:1:2::2")).is_ok());
        assert!(limits.check_auth(ip("2001:db8:1:2::3")).is_err());
        assert!(limits.check_auth(ip("2001:db8:9:9::1")).is_ok());
    }

    #[test]
    fn code_guesses_are_counted_per_user_and_per_address() {
        let limits = RateLimits::new(0, 0, 0, vec![]).with_code_guesses(3, 100);
        let (user, other) = (UserId::generate(), UserId::generate());
        let addr = ip("203.0.113.9");
        for _ in 0..3 {
            limits.begin_code_guess(user, addr).unwrap().end(true);
        }
        assert!(limits.begin_code_guess(user, addr).is_err());
        // Another user from the same address is not held by that user's count.
        assert!(limits.begin_code_guess(other, addr).is_ok());
        // An address runs out on its own count, whoever guesses from it.
        let limits = RateLimits::new(0, 0, 0, vec![]).with_code_guesses(100, 2);
        for _ in 0..2 {
            limits
                .begin_code_guess(UserId::generate(), addr)
                .unwrap()
                .end(true);
        }
        assert!(limits.begin_code_guess(UserId::generate(), addr).is_err());
        assert!(
            limits
                .begin_code_guess(UserId::generate(), ip("198.51.100.1"))
                .is_ok()
        );
        // Successes cost the address nothing, however many at once.
        let limits = RateLimits::new(0, 0, 0, vec![]).with_code_guesses(100, 2);
        let held: Vec<_> = (0..50)
            .map(|_| limits.begin_code_guess(UserId::generate(), addr).unwrap())
            .collect();
        for g in held {
            g.end(false);
        }
        assert!(limits.begin_code_guess(UserId::generate(), addr).is_ok());
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let proxies = vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ];
        let limits = RateLimits::new(0, 0, 1, proxies);
        let xff = Some("198.51.100.1, 203.0.113.5, 10.1.1.1");
        // From the proxy: the right-most address that is not a proxy.
        assert_eq!(limits.client(ip("127.0.0.1"), xff), ip("203.0.113.5"));
        // From anybody else: the header is theirs to forge, and ignored.
        assert_eq!(limits.client(ip("192.0.2.9"), xff), ip("192.0.2.9"));
        // No header, or garbage: the last trusted hop.
        assert_eq!(limits.client(ip("127.0.0.1"), None), ip("127.0.0.1"));
        assert_eq!(
            limits.client(ip("127.0.0.1"), Some("nonsense, 10.2.2.2")),
            ip("10.2.2.2")
        );
    }
}
