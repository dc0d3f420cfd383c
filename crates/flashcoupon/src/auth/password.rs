//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes).
//!
//! Hashing is deliberately slow and memory-hungry, so it runs on the blocking
//! pool within a budget: a few at once, a bounded queue behind them, and
//! `Busy` (503) beyond, so a flood of logins can neither spawn hundreds of
//! 19 MiB hashing threads nor queue without end.

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

/// Why a hash or a check did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot is taken or queued for: answer 503, retry later.
    #[error("too many sign-ins at once; retry shortly")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    /// Hashes running at once (each ~19 MiB and a core for a while).
    running: Arc<Semaphore>,
    /// Hashes running or waiting: the global budget. Beyond it, `Busy`.
    admitted: Arc<Semaphore>,
    /// Verified against when the e-mail is unknown, so "no such user" takes
    /// as long as "wrong password" and does not reveal which e-mails exist.
    decoy: Arc<str>,
}

/// Hashes that may wait for a running slot before callers are told `Busy`.
const QUEUE: usize = 64;

impl PasswordHasher {
    pub fn new() -> anyhow::Result<Self> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_budget(workers * 2, QUEUE)
    }

    /// `running` at once, and at most `queued` more waiting.
    pub fn with_budget(running: usize, queued: usize) -> anyhow::Result<Self> {
        Ok(Self {
            running: Arc::new(Semaphore::new(running)),
            admitted: Arc::new(Semaphore::new(running + queued)),
            decoy: hash_password("decoy password, never matches")?.into(),
        })
    }

    /// Run `job` within the budget. The permits belong to a task of its own,
    /// not to the caller's future: a client that hangs up mid-hash (its
    /// request future dropped) cannot free its slot while the hash still
    /// burns a core, so the budget counts every hash really running.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let running = self.running.clone();
        let task = tokio::spawn(async move {
            let _admitted = admitted;
            let _running = running.acquire_owned().await?;
            anyhow::Ok(tokio::task::spawn_blocking(job).await?)
        });
        Ok(task.await.map_err(anyhow::Error::from)??)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        Ok(self.run(move || hash_password(&password)).await??)
    }

    /// `hash: None` verifies against the decoy and returns false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.to_string());
        let ok = self.run(move || verify(&password, &hash)).await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_budget_callers_are_told_busy_and_abandoned_hashes_still_count() {
        let hasher = PasswordHasher::with_budget(1, 1).unwrap();
        // Two hashes in the budget (one running, one queued), started and
        // then abandoned by their callers, as a client hanging up would.
        let first = tokio::spawn({
            let h = hasher.clone();
            async move { h.hash("one".into()).await }
        });
        let second = tokio::spawn({
            let h = hasher.clone();
            async move { h.hash("two".into()).await }
        });
        while hasher.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        first.abort();
        second.abort();
        assert!(
            matches!(hasher.hash("three".into()).await, Err(HashError::Busy)),
            "the abandoned hashes still hold the budget"
        );
        // Once they finish, the budget is back.
        while hasher.admitted.available_permits() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let h = hasher.hash("four".into()).await.unwrap();
        assert!(hasher.verify("four".into(), Some(h)).await.unwrap());
    }

    #[test]
    fn a_hash_verifies_only_its_password() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
    }
}
