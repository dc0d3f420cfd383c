//! HS256 bearer tokens.
//!
//! The signing secret comes from `FLASHCOUPON_JWT_SECRET`, or is generated on
//! first start and kept in `<data dir>/jwt_secret` (mode 0600), so tokens
//! survive restarts. Only HS256 is accepted: `alg: none` and every other
//! algorithm fail validation.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::domain::account::Role;
use crate::domain::ids::UserId;

const SECRET_FILE: &str = "jwt_secret";
const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub role: Role,
    pub iat: u64,
    pub exp: u64,
    /// The account's token epoch when it was issued: a revocation moves the
    /// account's epoch on, and tokens from older ones are refused.
    #[serde(default)]
    pub tep: u64,
    /// The generation of the record that issued it (see `store::AccountStore::record_generation`).
    #[serde(default)]
    pub generation: String,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    /// Tokens of another record (same secret, other database) are refused.
    generation: String,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The secret from configuration, else the one stored in `data_dir`, else a new one stored there.
pub fn load_or_create_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        anyhow::ensure!(
            secret.len() >= MIN_SECRET_LEN,
            "FLASHCOUPON_JWT_SECRET must be at least {MIN_SECRET_LEN} characters"
        );
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(stored) => {
            let stored = stored.trim();
            anyhow::ensure!(
                stored.len() >= MIN_SECRET_LEN,
                "{} is too short",
                path.display()
            );
            Ok(stored.as_bytes().to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            crate::data_dir::create_private(data_dir)?;
            let mut file =
                secret_file(&path).with_context(|| format!("creating {}", path.display()))?;
            file.write_all(hex.as_bytes())?;
            file.sync_all()?;
            Ok(hex.into_bytes())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(unix)]
fn secret_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn secret_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenKeys {
    pub fn new(secret: &[u8], ttl: Duration, generation: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            generation: generation.to_owned(),
        }
    }

    /// A token for `user` under the account's current token `epoch` (see
    /// `UserRecord::token_epoch`; 0 for an account never revoked).
    pub fn issue(&self, user: UserId, role: Role, epoch: u64) -> String {
        let iat = unix_now();
        self.issue_with_expiry(user, role, epoch, iat, iat + self.ttl.as_secs())
    }

    /// A token with an explicit expiry (also how tests make expired ones).
    pub fn issue_with_expiry(
        &self,
        user: UserId,
        role: Role,
        epoch: u64,
        iat: u64,
        exp: u64,
    ) -> String {
        let claims = Claims {
            sub: user,
            role,
            iat,
            exp,
            tep: epoch,
            generation: self.generation.clone(),
        };
        // Encoding HS256 with a valid key cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
            .filter(|claims| claims.generation == self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32], Duration::from_secs(60), "g1")
    }

    #[test]
    fn a_token_round_trips() {
        let user = UserId::generate();
        let claims = keys().verify(&keys().issue(user, Role::Admin, 0)).unwrap();
        assert_eq!((claims.sub, claims.role), (user, Role::Admin));
    }

    #[test]
    fn expired_forged_and_unsigned_tokens_are_refused() {
        let k = keys();
        let now = unix_now();
        assert!(
            k.verify(&k.issue_with_expiry(UserId::generate(), Role::User, 0, now - 100, now - 1))
                .is_none()
        );
        let other = TokenKeys::new(&[8u8; 32], Duration::from_secs(60), "g1");
        assert!(
            k.verify(&other.issue(UserId::generate(), Role::User, 0))
                .is_none()
        );
        // {"alg":"none"} with a payload and no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIwMTkzMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDAiLCJyb2xlIjoiYWRtaW4iLCJpYXQiOjAsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(k.verify(none).is_none());
        assert!(k.verify("not.a.token").is_none());
        // The same secret, another record: refused.
        let elsewhere = TokenKeys::new(&[7u8; 32], Duration::from_secs(60), "g2");
        assert!(
            k.verify(&elsewhere.issue(UserId::generate(), Role::User, 0))
                .is_none()
        );
    }

    #[test]
    fn a_generated_secret_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret(None, dir.path()).unwrap();
        assert_eq!(load_or_create_secret(None, dir.path()).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(load_or_create_secret(Some("short"), dir.path()).is_err());
    }
}
