//! Subscriptions: who asked to hear about a campaign ("notify me").

use async_trait::async_trait;

use super::StoreError;
use crate::domain::ids::{CampaignId, UserId};
use crate::domain::timestamp::Timestamp;

#[async_trait]
pub trait SubscriptionStore {
    /// `true` if the subscription is new.
    async fn subscribe(
        &self,
        user: UserId,
        campaign: CampaignId,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// `true` if there was one.
    async fn unsubscribe(&self, user: UserId, campaign: CampaignId) -> Result<bool, StoreError>;

    /// When the user subscribed, if they did.
    async fn subscription(
        &self,
        user: UserId,
        campaign: CampaignId,
    ) -> Result<Option<Timestamp>, StoreError>;

    /// Subscribers of a campaign without a notification of `once_key` yet.
    async fn subscribers_missing(
        &self,
        campaign: CampaignId,
        once_key: &str,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError>;
}

/// [`SubscriptionStore`] for a store with a `pool` of database `$db`.
macro_rules! subscriptions_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::SubscriptionStore for $store {
            async fn subscribe(
                &self,
                user: UserId,
                campaign: CampaignId,
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                let _turn = self.write_turn().await;
                let done = sqlx::query(
                    "INSERT INTO subscriptions (campaign_id, user_id, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(campaign.to_string())
                .bind(user.to_string())
                .bind(now.0)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn unsubscribe(
                &self,
                user: UserId,
                campaign: CampaignId,
            ) -> Result<bool, StoreError> {
                let _turn = self.write_turn().await;
                let done =
                    sqlx::query("DELETE FROM subscriptions WHERE campaign_id = $1 AND user_id = $2")
                        .bind(campaign.to_string())
                        .bind(user.to_string())
                        .execute(&self.pool)
                        .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn subscription(
                &self,
                user: UserId,
                campaign: CampaignId,
            ) -> Result<Option<Timestamp>, StoreError> {
                let row = sqlx::query(
                    "SELECT created_at FROM subscriptions WHERE campaign_id = $1 AND user_id = $2",
                )
                .bind(campaign.to_string())
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
                campaign: CampaignId,
                once_key: &str,
                limit: u32,
            ) -> Result<Vec<UserId>, StoreError> {
                let rows = sqlx::query(
                    "SELECT s.user_id FROM subscriptions s WHERE s.campaign_id = $1 AND NOT EXISTS \
                     (SELECT 1 FROM notifications n WHERE n.user_id = s.user_id AND n.once_key = $2) \
                     ORDER BY s.user_id LIMIT $3",
                )
                .bind(campaign.to_string())
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
