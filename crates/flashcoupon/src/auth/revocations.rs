//! Revoked tokens. A password reset or a role change moves the account's
//! `token_epoch` on in the record, and every token carries the epoch it was
//! issued under; every instance reads the revoked accounts once a second
//! (through a partial index: only accounts that ever had a revocation, so
//! few) and refuses their tokens from older epochs. No clock is compared, so
//! hosts whose clocks disagree agree on which tokens are revoked. A claim
//! checks only this in-memory map: no record read on the hot path.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use crate::domain::ids::UserId;
use crate::store::{Store, StoreError};

/// How often each instance looks for new revocations.
pub const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Revocations {
    /// Per revoked account: its token epoch; tokens from older ones are refused.
    epochs: RwLock<HashMap<UserId, u64>>,
}

impl Revocations {
    /// Was this token (its user and the epoch it was issued under) revoked?
    pub fn is_revoked(&self, user: UserId, epoch: u64) -> bool {
        let map = self.epochs.read().unwrap_or_else(|e| e.into_inner());
        map.get(&user).is_some_and(|&now| epoch < now)
    }

    /// Read every revoked account.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let revoked: HashMap<UserId, u64> = store.revoked_accounts().await?.into_iter().collect();
        *self.epochs.write().unwrap_or_else(|e| e.into_inner()) = revoked;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_from_an_older_epoch_is_revoked_and_one_from_the_current_is_not() {
        let r = Revocations::default();
        let (user, other) = (UserId::generate(), UserId::generate());
        r.epochs.write().unwrap().insert(user, 2);
        assert!(r.is_revoked(user, 0));
        assert!(r.is_revoked(user, 1), "one revocation behind");
        assert!(!r.is_revoked(user, 2));
        assert!(!r.is_revoked(other, 0), "never revoked");
    }
}
