//! Accounts: users, their password hashes and roles.

use async_trait::async_trait;

use super::StoreError;
use super::columns::{Columns, parse_id};
use crate::domain::account::{Email, Role};
use crate::domain::ids::UserId;
use crate::domain::timestamp::Timestamp;

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: UserId,
    pub password_hash: String,
    pub role: Role,
    /// Revocations so far; tokens carry the epoch they were issued under.
    pub token_epoch: u64,
}

#[async_trait]
pub trait AccountStore {
    /// `Err(StoreError::Unique)` when the e-mail is taken.
    /// A shopper's account comes with its `signup` trigger event (same
    /// transaction).
    async fn insert_user(
        &self,
        id: UserId,
        email: &Email,
        password_hash: &str,
        role: Role,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Many users sharing one password hash, all or none.
    async fn insert_users(
        &self,
        users: &[(UserId, Email)],
        password_hash: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError>;
    async fn user_exists(&self, id: UserId) -> Result<bool, StoreError>;
    /// Make `email` an admin: create it with `create_hash` if absent; if it
    /// exists, promote it and, when a hash is given, reset its password. A
    /// promotion or a reset revokes the account's earlier tokens.
    async fn upsert_admin(
        &self,
        email: &Email,
        create_hash: &str,
        reset_hash: Option<&str>,
        now: Timestamp,
    ) -> Result<(UserId, bool), StoreError>;
    /// The role the record gives a user; `None` if there is no such user.
    async fn user_role(&self, id: UserId) -> Result<Option<Role>, StoreError>;
    /// Every account with a revocation, and its token epoch: its tokens
    /// from an older epoch are refused.
    async fn revoked_accounts(&self) -> Result<Vec<(UserId, u64)>, StoreError>;
    /// This record's generation: `candidate` if it has none yet (the first
    /// start), else the one it keeps.
    async fn record_generation(&self, candidate: &str) -> Result<String, StoreError>;
}

pub(super) const INSERT_USER: &str =
    "INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)";

pub(super) fn user(row: &impl Columns) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        id: parse_id(&row.text("id")?)?,
        password_hash: row.text("password_hash")?,
        role: Role::parse(&row.text("role")?).unwrap_or(Role::User),
        token_epoch: row.int("token_epoch")?.max(0) as u64,
    })
}

/// [`AccountStore`] for a store with a `pool` of database `$db` (the SQL is
/// the same on both backends; only the pool's type differs, and a macro says
/// that without sqlx's generic executor bounds).
macro_rules! account_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AccountStore for $store {
            async fn insert_user(
                &self,
                id: UserId,
                email: &Email,
                password_hash: &str,
                role: Role,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                sqlx::query($crate::store::accounts::INSERT_USER)
                    .bind(id.to_string())
                    .bind(email.as_str())
                    .bind(password_hash)
                    .bind(role.as_str())
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
                if role == Role::User {
                    // The sign-up trigger, with the account or not at all.
                    let (request_id, traceparent) = $crate::store::triggers::trace_binds(
                        $crate::trace::current().as_deref(),
                    );
                    sqlx::query($crate::store::triggers::INSERT_TRIGGER_EVENT)
                        .bind(format!("signup:{id}"))
                        .bind("signup")
                        .bind(id.to_string())
                        .bind("signup")
                        .bind(now.0)
                        .bind(request_id)
                        .bind(traceparent)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn insert_users(
                &self,
                users: &[(UserId, Email)],
                password_hash: &str,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                for (id, email) in users {
                    sqlx::query($crate::store::accounts::INSERT_USER)
                        .bind(id.to_string())
                        .bind(email.as_str())
                        .bind(password_hash)
                        .bind(Role::User.as_str())
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn find_user_by_email(
                &self,
                email: &Email,
            ) -> Result<Option<UserRecord>, StoreError> {
                let row = sqlx::query("SELECT id, password_hash, role, token_epoch FROM users WHERE email = $1")
                    .bind(email.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map($crate::store::accounts::user).transpose()?)
            }

            async fn user_exists(&self, id: UserId) -> Result<bool, StoreError> {
                let row = sqlx::query("SELECT 1 FROM users WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            async fn upsert_admin(
                &self,
                email: &Email,
                create_hash: &str,
                reset_hash: Option<&str>,
                now: Timestamp,
            ) -> Result<(UserId, bool), StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                let existing = sqlx::query("SELECT id, password_hash, role, token_epoch FROM users WHERE email = $1")
                    .bind(email.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let outcome = match existing {
                    Some(row) => {
                        let id = $crate::store::accounts::user(&row)?.id;
                        // Tokens issued until now stop working: the role or
                        // the password they were issued under changed.
                        sqlx::query(
                            "UPDATE users SET role = 'admin', password_hash = COALESCE($1, password_hash), \
                             token_epoch = token_epoch + 1 WHERE id = $2",
                        )
                        .bind(reset_hash)
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await?;
                        (id, false)
                    }
                    None => {
                        let id = UserId::generate();
                        sqlx::query($crate::store::accounts::INSERT_USER)
                            .bind(id.to_string())
                            .bind(email.as_str())
                            .bind(create_hash)
                            .bind(Role::Admin.as_str())
                            .bind(now.0)
                            .execute(&mut *tx)
                            .await?;
                        (id, true)
                    }
                };
                tx.commit().await?;
                Ok(outcome)
            }

            async fn user_role(&self, id: UserId) -> Result<Option<Role>, StoreError> {
                let row = sqlx::query("SELECT role FROM users WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some(
                        Role::parse(&$crate::store::columns::Columns::text(&row, "role")?)
                            .unwrap_or(Role::User),
                    ),
                    None => None,
                })
            }

            async fn revoked_accounts(&self) -> Result<Vec<(UserId, u64)>, StoreError> {
                let rows = sqlx::query("SELECT id, token_epoch FROM users WHERE token_epoch > 0")
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        use $crate::store::columns::Columns;
                        Ok((
                            parse_id(&row.text("id")?)?,
                            row.int("token_epoch")?.max(0) as u64,
                        ))
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(Into::into)
            }

            async fn record_generation(&self, candidate: &str) -> Result<String, StoreError> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "INSERT INTO record_meta (key, value) VALUES ('generation', $1) ON CONFLICT (key) DO NOTHING",
                )
                .bind(candidate)
                .execute(&self.pool)
                .await?;
                let row = sqlx::query("SELECT value FROM record_meta WHERE key = 'generation'")
                    .fetch_one(&self.pool)
                    .await?;
                Ok($crate::store::columns::Columns::text(&row, "value")?)
            }
        }
    };
}
pub(super) use account_queries;
