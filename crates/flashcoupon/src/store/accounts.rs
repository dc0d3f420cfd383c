//! SQL for users.

use sqlx::Row;

use super::{Store, StoreError, parse_id};
use crate::domain::account::{Email, Role};
use crate::domain::ids::UserId;
use crate::domain::timestamp::Timestamp;

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: UserId,
    pub password_hash: String,
    pub role: Role,
}

impl Store {
    /// `Err(StoreError::Unique)` when the e-mail is taken.
    pub async fn insert_user(
        &self,
        id: UserId,
        email: &Email,
        password_hash: &str,
        role: Role,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(email.as_str())
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Many users sharing one password hash, all or none.
    pub async fn insert_users(
        &self,
        users: &[(UserId, Email)],
        password_hash: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (id, email) in users {
            sqlx::query("INSERT INTO users (id, email, password_hash, role, created_at) VALUES (?, ?, ?, 'user', ?)")
                .bind(id.to_string())
                .bind(email.as_str())
                .bind(password_hash)
                .bind(now.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn find_user_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query("SELECT id, password_hash, role FROM users WHERE email = ?")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(UserRecord {
                id: parse_id(row.try_get("id")?)?,
                password_hash: row.try_get("password_hash")?,
                role: Role::parse(row.try_get("role")?).unwrap_or(Role::User),
            })
        })
        .transpose()
    }

    pub async fn user_exists(&self, id: UserId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM users WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Make `email` an admin: create it with `password_hash` if absent; if it
    /// exists, promote it and, when a hash is given, reset its password.
    pub async fn upsert_admin(
        &self,
        email: &Email,
        create_hash: &str,
        reset_hash: Option<&str>,
        now: Timestamp,
    ) -> Result<(UserId, bool), StoreError> {
        let mut tx = self.pool.begin().await?;
        let existing = sqlx::query("SELECT id FROM users WHERE email = ?")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let outcome = match existing {
            Some(row) => {
                let id: UserId = parse_id(row.try_get("id")?)?;
                sqlx::query("UPDATE users SET role = 'admin', password_hash = COALESCE(?, password_hash) WHERE id = ?")
                    .bind(reset_hash)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                (id, false)
            }
            None => {
                let id = UserId::generate();
                sqlx::query("INSERT INTO users (id, email, password_hash, role, created_at) VALUES (?, ?, ?, 'admin', ?)")
                    .bind(id.to_string())
                    .bind(email.as_str())
                    .bind(create_hash)
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await?;
                (id, true)
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}
