//! Subscriptions: who asked to hear about a campaign or a time sale
//! ("notify me").

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ids::{CampaignId, SaleId, UserId};
use crate::domain::timestamp::Timestamp;

/// What a user can subscribe to. Each has its own table (so the record's
/// foreign key names the object), with the same shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Campaign(CampaignId),
    Sale(SaleId),
}

impl Topic {
    /// The table and its object column.
    pub(super) fn table(self) -> (&'static str, &'static str) {
        match self {
            Topic::Campaign(_) => ("subscriptions", "campaign_id"),
            Topic::Sale(_) => ("sale_subscriptions", "sale_id"),
        }
    }

    /// The campaign an event about this topic belongs to, if any.
    pub fn campaign(self) -> Option<CampaignId> {
        match self {
            Topic::Campaign(c) => Some(c),
            Topic::Sale(_) => None,
        }
    }

    pub fn id(self) -> String {
        match self {
            Topic::Campaign(c) => c.to_string(),
            Topic::Sale(s) => s.to_string(),
        }
    }
}

#[async_trait]
pub trait SubscriptionStore {
    /// `true` if the subscription is new.
    async fn subscribe(
        &self,
        user: UserId,
        topic: Topic,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// `true` if there was one.
    async fn unsubscribe(&self, user: UserId, topic: Topic) -> Result<bool, StoreError>;

    /// When the user subscribed, if they did.
    async fn subscription(
        &self,
        user: UserId,
        topic: Topic,
    ) -> Result<Option<Timestamp>, StoreError>;

    /// Subscribers of a topic without a notification of `once_key` yet.
    async fn subscribers_missing(
        &self,
        topic: Topic,
        once_key: &str,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError>;
}

/// [`SubscriptionStore`] for a store with a `pool` of database `$db`.
/// The statements name their table from [`Topic::table`] (two fixed names).
macro_rules! subscriptions_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::SubscriptionStore for $store {
            async fn subscribe(
                &self,
                user: UserId,
                topic: $crate::store::Topic,
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                let (table, column) = topic.table();
                let sql = format!(
                    "INSERT INTO {table} ({column}, user_id, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING"
                );
                // Toggled at will, so it must cost a drop nothing: it
                // rides a batch's transaction where there is one.
                let changed = self
                    .small_write(sql, $crate::store::sql::args![topic.id(), user.to_string(), now.0])
                    .await?;
                Ok(changed == 1)
            }

            async fn unsubscribe(
                &self,
                user: UserId,
                topic: $crate::store::Topic,
            ) -> Result<bool, StoreError> {
                let (table, column) = topic.table();
                let sql = format!("DELETE FROM {table} WHERE {column} = $1 AND user_id = $2");
                let changed = self
                    .small_write(sql, $crate::store::sql::args![topic.id(), user.to_string()])
                    .await?;
                Ok(changed == 1)
            }

            async fn subscription(
                &self,
                user: UserId,
                topic: $crate::store::Topic,
            ) -> Result<Option<Timestamp>, StoreError> {
                let (table, column) = topic.table();
                let sql =
                    format!("SELECT created_at FROM {table} WHERE {column} = $1 AND user_id = $2");
                let row = sqlx::query(&sql)
                    .bind(topic.id())
                    .bind(user.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row
                    .map(|r| $crate::store::columns::Columns::int(&r, "created_at"))
                    .transpose()?
                    .map(Timestamp))
            }

            async fn subscribers_missing(
                &self,
                topic: $crate::store::Topic,
                once_key: &str,
                limit: u32,
            ) -> Result<Vec<UserId>, StoreError> {
                let (table, column) = topic.table();
                let sql = format!(
                    "SELECT s.user_id FROM {table} s WHERE s.{column} = $1 AND NOT EXISTS \
                     (SELECT 1 FROM notifications n WHERE n.user_id = s.user_id AND n.once_key = $2) \
                     ORDER BY s.user_id LIMIT $3"
                );
                let rows = sqlx::query(&sql)
                    .bind(topic.id())
                    .bind(once_key)
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok(parse_id(&$crate::store::columns::Columns::text(r, "user_id")?)?))
                    .collect()
            }
        }
    };
}
pub(super) use subscriptions_queries;
