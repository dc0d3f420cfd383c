//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes).
//!
//! Hashing is deliberately slow and memory-hungry, so it runs on the blocking
//! pool behind a semaphore: a flood of logins queues instead of spawning
//! hundreds of 19 MiB hashing threads.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

/// Hash a password (blocking; call from the blocking pool or a CLI).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?
        .to_string())
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Verified against when the e-mail is unknown, so "no such user" takes
    /// as long as "wrong password" and does not reveal which e-mails exist.
    decoy: Arc<str>,
}

impl PasswordHasher {
    pub fn new() -> anyhow::Result<Self> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            permits: Arc::new(Semaphore::new(workers * 2)),
            decoy: hash_password("decoy password, never matches")?.into(),
        })
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(move || hash_password(&password)).await?
    }

    /// `hash: None` verifies against the decoy and returns false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.to_string());
        let ok = tokio::task::spawn_blocking(move || verify(&password, &hash)).await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_only_its_password() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
    }
}
