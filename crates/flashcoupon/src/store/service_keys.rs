//! Service keys: what the record keeps of the keys shop back ends call with
//! (a name and the key's hash, never the key).

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;
use super::columns::{Columns, parse_id};
use crate::domain::timestamp::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceKeyRecord {
    pub id: Uuid,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

#[async_trait]
pub trait ServiceKeyStore {
    async fn insert_service_key(
        &self,
        key: &ServiceKeyRecord,
        key_hash: &str,
    ) -> Result<(), StoreError>;
    /// The live keys, oldest first.
    async fn service_keys(&self) -> Result<Vec<ServiceKeyRecord>, StoreError>;
    /// `true` if a live key was deleted.
    async fn delete_service_key(&self, id: Uuid, now: Timestamp) -> Result<bool, StoreError>;
    /// The live key with this hash, if any.
    async fn service_key_by_hash(
        &self,
        key_hash: &str,
    ) -> Result<Option<ServiceKeyRecord>, StoreError>;
    /// Note a use (callers do it at most once a minute per key).
    async fn touch_service_key(&self, id: Uuid, now: Timestamp) -> Result<(), StoreError>;
}

pub(super) const SERVICE_KEY_COLUMNS: &str = "id, name, created_at, last_used_at";

pub(super) fn service_key(row: &impl Columns) -> Result<ServiceKeyRecord, sqlx::Error> {
    Ok(ServiceKeyRecord {
        id: parse_id(&row.text("id")?)?,
        name: row.text("name")?,
        created_at: Timestamp(row.int("created_at")?),
        last_used_at: row.opt_int("last_used_at")?.map(Timestamp),
    })
}

/// [`ServiceKeyStore`] for a store with a `pool` of database `$db`.
macro_rules! service_key_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ServiceKeyStore for $store {
            async fn insert_service_key(
                &self,
                key: &$crate::store::ServiceKeyRecord,
                key_hash: &str,
            ) -> Result<(), StoreError> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "INSERT INTO api_keys (id, name, key_hash, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(key.id.to_string())
                .bind(&key.name)
                .bind(key_hash)
                .bind(key.created_at.0)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn service_keys(
                &self,
            ) -> Result<Vec<$crate::store::ServiceKeyRecord>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM api_keys WHERE deleted_at IS NULL ORDER BY id",
                    $crate::store::service_keys::SERVICE_KEY_COLUMNS
                ))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::service_keys::service_key)
                    .collect::<Result<_, _>>()?)
            }

            async fn delete_service_key(
                &self,
                id: uuid::Uuid,
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                let _turn = self.write_turn().await;
                let done = sqlx::query(
                    "UPDATE api_keys SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
                )
                .bind(now.0)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn service_key_by_hash(
                &self,
                key_hash: &str,
            ) -> Result<Option<$crate::store::ServiceKeyRecord>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM api_keys WHERE key_hash = $1 AND deleted_at IS NULL",
                    $crate::store::service_keys::SERVICE_KEY_COLUMNS
                ))
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row
                    .as_ref()
                    .map($crate::store::service_keys::service_key)
                    .transpose()?)
            }

            async fn touch_service_key(
                &self,
                id: uuid::Uuid,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                let _turn = self.write_turn().await;
                sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                    .bind(now.0)
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(super) use service_key_queries;
