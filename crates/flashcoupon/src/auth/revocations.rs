//! Revoked tokens. A password reset or a role change sets the account's
//! `tokens_valid_after` (ms) in the record; every instance reads the revoked
//! accounts once a second (through a partial index: only accounts that ever
//! had a revocation, so few) and refuses their tokens issued before it. The
//! whole list is read each time rather than "what changed since": a
//! watermark taken from timestamps written by other hosts' clocks would miss
//! revocations stamped by a slower one. A claim checks only this in-memory
//! map: no record read on the hot path.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use crate::domain::ids::UserId;
use crate::store::{Store, StoreError};

/// How often each instance looks for new revocations.
pub const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Revocations {
    /// Per revoked account: tokens issued before this (ms) are refused.
    valid_after: RwLock<HashMap<UserId, i64>>,
}

impl Revocations {
    /// Was this token (its user and when it was issued, ms) revoked?
    pub fn is_revoked(&self, user: UserId, issued_ms: u64) -> bool {
        let map = self.valid_after.read().unwrap_or_else(|e| e.into_inner());
        map.get(&user)
            .is_some_and(|&after| (issued_ms as i64) < after)
    }

    /// Read every revoked account.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let revoked: HashMap<UserId, i64> = store.revocations_since(0).await?.into_iter().collect();
        *self.valid_after.write().unwrap_or_else(|e| e.into_inner()) = revoked;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_issued_before_the_cut_is_revoked_and_one_after_is_not() {
        let r = Revocations::default();
        let (user, other) = (UserId::generate(), UserId::generate());
        r.valid_after
            .write()
            .unwrap()
            .insert(user, 1_700_000_000_500);
        assert!(
            r.is_revoked(user, 1_700_000_000_499),
            "a millisecond before"
        );
        assert!(!r.is_revoked(user, 1_700_000_000_500));
        assert!(!r.is_revoked(other, 0));
    }
}
