//! Service keys: `fck_` and 64 hex digits (256 bits from the OS's CSPRNG),
//! for shop back ends calling server to server. The record keeps only the
//! key's SHA-256; every request looks its hash up, so a deleted key is
//! refused at once on every instance. Service calls are few next to claims.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::domain::timestamp::Timestamp;
use crate::store::{ServiceKeyRecord, Store, StoreError};

pub const PREFIX: &str = "fck_";

/// How stale `last_used_at` may get before a use writes it again.
const TOUCH_EVERY_MS: i64 = 60_000;

/// A new key, to show once.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{PREFIX}{}", hex::encode(bytes))
}

/// What the record keeps of a key.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Is this bearer credential shaped like a service key (rather than a token)?
pub fn is_service_key(bearer: &str) -> bool {
    bearer.starts_with(PREFIX)
}

/// The live key this credential is, if any; notes the use now and then.
pub async fn verify(
    store: &std::sync::Arc<dyn Store>,
    bearer: &str,
    now: Timestamp,
) -> Result<Option<ServiceKeyRecord>, StoreError> {
    let well_formed = bearer.len() == PREFIX.len() + 64
        && bearer[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit());
    if !is_service_key(bearer) || !well_formed {
        return Ok(None);
    }
    let Some(key) = store.service_key_by_hash(&hash(bearer)).await? else {
        return Ok(None);
    };
    if key
        .last_used_at
        .is_none_or(|at| now.0 - at.0 >= TOUCH_EVERY_MS)
    {
        // Bookkeeping, not part of the answer: a failure only delays it.
        let (store, id) = (store.clone(), key.id);
        tokio::spawn(async move {
            if let Err(e) = store.touch_service_key(id, now).await {
                tracing::debug!(error = %e, "could not note a service key's use");
            }
        });
    }
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fresh_well_formed_and_stored_only_as_a_hash() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(is_service_key(&a) && a.len() == 68, "{a}");
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        assert!(!hash(&a).contains(&a[PREFIX.len()..]));
    }
}
