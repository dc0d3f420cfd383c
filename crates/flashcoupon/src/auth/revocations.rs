//! Revoked tokens. A password reset or a role change sets the account's
//! `tokens_valid_after` in the record; every instance polls the accounts
//! changed lately (through a partial index, so the poll costs nothing when
//! nobody changed) and refuses their older tokens. A claim checks only this
//! in-memory map: no record read on the hot path. A revocation reaches every
//! instance within one poll (`POLL`).

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::domain::ids::UserId;
use crate::store::{Store, StoreError};

/// How often each instance looks for new revocations.
pub const POLL: Duration = Duration::from_secs(1);
/// Each poll also re-reads the last minute of revocations, so one written
/// with a slightly older timestamp (another instance's clock, a commit that
/// landed late) is not missed.
const SLACK_MS: i64 = 60_000;

#[derive(Debug, Default)]
pub struct Revocations {
    /// Per revoked account: tokens issued before this (ms) are refused.
    valid_after: RwLock<HashMap<UserId, i64>>,
    /// The latest revocation seen (ms).
    seen: AtomicI64,
}

impl Revocations {
    /// Was this token (its user and its `iat`, seconds) revoked?
    pub fn is_revoked(&self, user: UserId, iat_secs: u64) -> bool {
        let map = self.valid_after.read().unwrap_or_else(|e| e.into_inner());
        map.get(&user)
            .is_some_and(|&after| (iat_secs as i64).saturating_mul(1000) < after)
    }

    /// Read the revocations changed lately (all of them, the first time).
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let seen = self.seen.load(Ordering::Acquire);
        let since = if seen == 0 {
            0
        } else {
            (seen - SLACK_MS).max(0)
        };
        let changed = store.revocations_since(since).await?;
        let mut map = self.valid_after.write().unwrap_or_else(|e| e.into_inner());
        for (user, after) in changed {
            let entry = map.entry(user).or_insert(after);
            *entry = (*entry).max(after);
            self.seen.fetch_max(after, Ordering::AcqRel);
        }
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
            .insert(user, 1_700_000_000_000);
        assert!(r.is_revoked(user, 1_699_999_999));
        assert!(!r.is_revoked(user, 1_700_000_000));
        assert!(!r.is_revoked(other, 0));
    }
}
