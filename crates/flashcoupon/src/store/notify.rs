//! The notification record: subscriptions, the inbox (with the once-only
//! keys that make scheduled events exactly once), webhooks and their
//! delivery log. The SQL is the same on both backends; [`notify_queries`]
//! implements [`NotifyStore`] for each pool, like `rows::common_queries`.

use async_trait::async_trait;
use uuid::Uuid;

use super::rows::Columns;
use super::{StoreError, parse_id};
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::timestamp::Timestamp;

/// One event for one user's inbox.
#[derive(Debug, Clone)]
pub struct NotificationRow {
    /// The pushed event's id.
    pub id: Uuid,
    pub user: UserId,
    pub kind: String,
    pub campaign: Option<CampaignId>,
    /// The event's payload, as JSON.
    pub payload: String,
    pub at: Timestamp,
    /// `<kind>:<object>` for events that must exist once per user.
    pub once_key: Option<String>,
}

/// An inbox entry as read back.
#[derive(Debug, Clone)]
pub struct StoredNotification {
    pub id: Uuid,
    pub kind: String,
    pub campaign: Option<CampaignId>,
    pub payload: String,
    pub at: Timestamp,
    pub read_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct WebhookRecord {
    pub id: Uuid,
    pub url: String,
    pub secret: String,
    pub events: Vec<String>,
    /// `json`, `discord` or `slack`.
    pub format: String,
    pub stock_low_threshold: Option<i64>,
    pub created_at: Timestamp,
}

/// One event to POST to one endpoint.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: Uuid,
    pub webhook: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// Unique per endpoint: the same event is enqueued once however many
    /// instances notice it.
    pub once_key: String,
    /// The request body, already in the endpoint's format.
    pub body: String,
    pub at: Timestamp,
}

/// A delivery this instance leased to send now.
#[derive(Debug, Clone)]
pub struct LeasedDelivery {
    pub id: Uuid,
    pub webhook: Uuid,
    pub event_type: String,
    pub body: String,
    /// Including the one about to be made.
    pub attempts: i64,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: i64,
    pub at: Timestamp,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(Timestamp),
    GiveUp,
}

/// A delivery with its attempts, for the log.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub body: String,
    pub log: Vec<AttemptRecord>,
}

/// An available coupon whose expiry is near.
#[derive(Debug, Clone)]
pub struct ExpiringCoupon {
    pub id: CouponId,
    pub user: UserId,
    pub valid_until: Timestamp,
}

#[async_trait]
pub trait NotifyStore {
    /// Store inbox rows; rows already there (same id, or same user and once
    /// key) are skipped. Returns the ids that were inserted now.
    async fn insert_notifications(&self, rows: &[NotificationRow])
    -> Result<Vec<Uuid>, StoreError>;
    /// Newest first; `before` is the last id of the previous page.
    async fn inbox(
        &self,
        user: UserId,
        unread_only: bool,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<StoredNotification>, StoreError>;
    async fn unread_count(&self, user: UserId) -> Result<u64, StoreError>;
    /// Mark the user's notifications read: these ids, or all when `None`.
    async fn mark_read(
        &self,
        user: UserId,
        ids: Option<&[Uuid]>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

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
    /// Available coupons of a campaign expiring in `(after, until]` whose
    /// owner has no `coupon.expiring_soon:<id>` notification yet.
    async fn expiring_unreminded(
        &self,
        campaign: CampaignId,
        after: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ExpiringCoupon>, StoreError>;

    async fn insert_webhook(&self, w: &WebhookRecord) -> Result<(), StoreError>;
    /// Registered and not deleted, oldest first.
    async fn webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError>;
    async fn webhook(&self, id: Uuid) -> Result<Option<WebhookRecord>, StoreError>;
    /// `true` if it existed. Its pending deliveries are dropped; the log stays.
    async fn delete_webhook(&self, id: Uuid, now: Timestamp) -> Result<bool, StoreError>;
    /// Enqueue deliveries; ones already enqueued (same endpoint and once key)
    /// are skipped. Returns how many are new.
    async fn enqueue_deliveries(&self, rows: &[NewDelivery]) -> Result<u64, StoreError>;
    /// Lease up to `limit` due deliveries until `lease_until`; a delivery is
    /// leased by one instance at a time.
    async fn lease_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<LeasedDelivery>, StoreError>;
    /// Log an attempt and move the delivery on, if this instance still holds
    /// the lease it made the attempt under (`attempt.attempt` is the count the
    /// lease set); a lease that expired meanwhile belongs to someone else.
    async fn record_attempt(
        &self,
        delivery: Uuid,
        attempt: &AttemptRecord,
        next: NextStep,
    ) -> Result<(), StoreError>;
    /// Newest first, with each one's attempts.
    async fn deliveries(
        &self,
        webhook: Uuid,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
}

pub(super) const INBOX_COLUMNS: &str = "id, kind, campaign_id, payload, created_at, read_at";

pub(super) fn notification(row: &impl Columns) -> Result<StoredNotification, sqlx::Error> {
    Ok(StoredNotification {
        id: parse_id(&row.text("id")?)?,
        kind: row.text("kind")?,
        campaign: row
            .opt_text("campaign_id")?
            .map(|c| parse_id(&c))
            .transpose()?,
        payload: row.text("payload")?,
        at: Timestamp(row.int("created_at")?),
        read_at: row.opt_int("read_at")?.map(Timestamp),
    })
}

pub(super) const WEBHOOK_COLUMNS: &str =
    "id, url, secret, events, format, stock_low_threshold, created_at";

pub(super) fn webhook(row: &impl Columns) -> Result<WebhookRecord, sqlx::Error> {
    Ok(WebhookRecord {
        id: parse_id(&row.text("id")?)?,
        url: row.text("url")?,
        secret: row.text("secret")?,
        events: row
            .text("events")?
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        format: row.text("format")?,
        stock_low_threshold: row.opt_int("stock_low_threshold")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}

pub(super) const DELIVERY_COLUMNS: &str = "id, event_id, event_type, status, attempts, next_attempt_at, created_at, \
     finished_at, last_status_code, last_error, body";

pub(super) fn delivery(row: &impl Columns) -> Result<DeliveryRecord, sqlx::Error> {
    Ok(DeliveryRecord {
        id: parse_id(&row.text("id")?)?,
        event_id: parse_id(&row.text("event_id")?)?,
        event_type: row.text("event_type")?,
        status: row.text("status")?,
        attempts: row.int("attempts")?,
        next_attempt_at: Timestamp(row.int("next_attempt_at")?),
        created_at: Timestamp(row.int("created_at")?),
        finished_at: row.opt_int("finished_at")?.map(Timestamp),
        last_status_code: row.opt_int("last_status_code")?,
        last_error: row.opt_text("last_error")?,
        body: row.text("body")?,
        log: Vec::new(),
    })
}

pub(super) fn attempt(row: &impl Columns) -> Result<AttemptRecord, sqlx::Error> {
    Ok(AttemptRecord {
        attempt: row.int("attempt")?,
        at: Timestamp(row.int("at")?),
        status_code: row.opt_int("status_code")?,
        error: row.opt_text("error")?,
        duration_ms: row.int("duration_ms")?,
    })
}

/// [`NotifyStore`] for a store with a `pool` of database `$db`.
macro_rules! notify_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::notify::NotifyStore for $store {
            async fn insert_notifications(
                &self,
                rows: &[$crate::store::notify::NotificationRow],
            ) -> Result<Vec<uuid::Uuid>, StoreError> {
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                let _turn = self.write_turn().await;
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO notifications (id, user_id, kind, campaign_id, payload, created_at, once_key) ",
                );
                q.push_values(rows, |mut b, r| {
                    b.push_bind(r.id.to_string())
                        .push_bind(r.user.to_string())
                        .push_bind(r.kind.clone())
                        .push_bind(r.campaign.map(|c| c.to_string()))
                        .push_bind(r.payload.clone())
                        .push_bind(r.at.0)
                        .push_bind(r.once_key.clone());
                });
                q.push(" ON CONFLICT DO NOTHING RETURNING id");
                let done = q.build().fetch_all(&self.pool).await?;
                done.iter()
                    .map(|row| Ok(parse_id(&rows::Columns::text(row, "id")?)?))
                    .collect()
            }

            async fn inbox(
                &self,
                user: UserId,
                unread_only: bool,
                limit: u32,
                before: Option<uuid::Uuid>,
            ) -> Result<Vec<$crate::store::notify::StoredNotification>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM notifications WHERE user_id = $1 AND ($2 IS NULL OR id < $2) \
                     AND ($3 = 0 OR read_at IS NULL) ORDER BY id DESC LIMIT $4",
                    $crate::store::notify::INBOX_COLUMNS
                ))
                .bind(user.to_string())
                .bind(before.map(|b| b.to_string()))
                .bind(unread_only as i64)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::notify::notification)
                    .collect::<Result<_, _>>()?)
            }

            async fn unread_count(&self, user: UserId) -> Result<u64, StoreError> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n FROM notifications WHERE user_id = $1 AND read_at IS NULL",
                )
                .bind(user.to_string())
                .fetch_one(&self.pool)
                .await?;
                Ok(rows::Columns::int(&row, "n")? as u64)
            }

            async fn mark_read(
                &self,
                user: UserId,
                ids: Option<&[uuid::Uuid]>,
                now: Timestamp,
            ) -> Result<u64, StoreError> {
                let _turn = self.write_turn().await;
                let mut q = sqlx::QueryBuilder::<$db>::new("UPDATE notifications SET read_at = ");
                q.push_bind(now.0)
                    .push(" WHERE read_at IS NULL AND user_id = ")
                    .push_bind(user.to_string());
                if let Some(ids) = ids {
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    q.push(" AND id IN (");
                    let mut list = q.separated(", ");
                    for id in ids {
                        list.push_bind(id.to_string());
                    }
                    q.push(")");
                }
                Ok(q.build().execute(&self.pool).await?.rows_affected())
            }

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
                    .map(|r| rows::Columns::int(&r, "created_at"))
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
                    .map(|r| Ok(parse_id(&rows::Columns::text(r, "user_id")?)?))
                    .collect()
            }

            async fn expiring_unreminded(
                &self,
                campaign: CampaignId,
                after: Timestamp,
                until: Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::store::notify::ExpiringCoupon>, StoreError> {
                let rows = sqlx::query(
                    "SELECT c.id, c.user_id, c.valid_until FROM coupons c \
                     WHERE c.campaign_id = $1 AND c.status = 'available' \
                     AND c.valid_until > $2 AND c.valid_until <= $3 AND NOT EXISTS \
                     (SELECT 1 FROM notifications n WHERE n.user_id = c.user_id \
                      AND n.once_key = 'coupon.expiring_soon:' || c.id) \
                     ORDER BY c.seq LIMIT $4",
                )
                .bind(campaign.to_string())
                .bind(after.0)
                .bind(until.0)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::notify::ExpiringCoupon {
                            id: parse_id(&rows::Columns::text(r, "id")?)?,
                            user: parse_id(&rows::Columns::text(r, "user_id")?)?,
                            valid_until: Timestamp(rows::Columns::int(r, "valid_until")?),
                        })
                    })
                    .collect()
            }

            async fn insert_webhook(
                &self,
                w: &$crate::store::notify::WebhookRecord,
            ) -> Result<(), StoreError> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "INSERT INTO webhooks (id, url, secret, events, format, stock_low_threshold, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(w.id.to_string())
                .bind(&w.url)
                .bind(&w.secret)
                .bind(w.events.join(","))
                .bind(&w.format)
                .bind(w.stock_low_threshold)
                .bind(w.created_at.0)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn webhooks(
                &self,
            ) -> Result<Vec<$crate::store::notify::WebhookRecord>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM webhooks WHERE deleted_at IS NULL ORDER BY id",
                    $crate::store::notify::WEBHOOK_COLUMNS
                ))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::notify::webhook)
                    .collect::<Result<_, _>>()?)
            }

            async fn webhook(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::store::notify::WebhookRecord>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM webhooks WHERE deleted_at IS NULL AND id = $1",
                    $crate::store::notify::WEBHOOK_COLUMNS
                ))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map($crate::store::notify::webhook).transpose()?)
            }

            async fn delete_webhook(&self, id: uuid::Uuid, now: Timestamp) -> Result<bool, StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE webhooks SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
                )
                .bind(now.0)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'failed', finished_at = $1, \
                     last_error = 'the endpoint was deleted' WHERE webhook_id = $2 AND status = 'pending'",
                )
                .bind(now.0)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn enqueue_deliveries(
                &self,
                rows: &[$crate::store::notify::NewDelivery],
            ) -> Result<u64, StoreError> {
                if rows.is_empty() {
                    return Ok(0);
                }
                let _turn = self.write_turn().await;
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, once_key, body, \
                     next_attempt_at, created_at) ",
                );
                q.push_values(rows, |mut b, r| {
                    b.push_bind(r.id.to_string())
                        .push_bind(r.webhook.to_string())
                        .push_bind(r.event_id.to_string())
                        .push_bind(r.event_type.clone())
                        .push_bind(r.once_key.clone())
                        .push_bind(r.body.clone())
                        .push_bind(r.at.0)
                        .push_bind(r.at.0);
                });
                q.push(" ON CONFLICT DO NOTHING");
                Ok(q.build().execute(&self.pool).await?.rows_affected())
            }

            async fn lease_deliveries(
                &self,
                now: Timestamp,
                lease_until: Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::store::notify::LeasedDelivery>, StoreError> {
                let _turn = self.write_turn().await;
                // The outer conditions repeat the inner ones: on PostgreSQL a
                // concurrent lease of the same row makes this one wait, then
                // re-check the row as the other left it, and skip it.
                let rows = sqlx::query(
                    "UPDATE webhook_deliveries SET lease_until = $1, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' \
                       AND next_attempt_at <= $2 AND lease_until <= $2 ORDER BY next_attempt_at LIMIT $3) \
                     AND status = 'pending' AND lease_until <= $2 \
                     RETURNING id, webhook_id, event_type, body, attempts, created_at",
                )
                .bind(lease_until.0)
                .bind(now.0)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::notify::LeasedDelivery {
                            id: parse_id(&rows::Columns::text(r, "id")?)?,
                            webhook: parse_id(&rows::Columns::text(r, "webhook_id")?)?,
                            event_type: rows::Columns::text(r, "event_type")?,
                            body: rows::Columns::text(r, "body")?,
                            attempts: rows::Columns::int(r, "attempts")?,
                            created_at: Timestamp(rows::Columns::int(r, "created_at")?),
                        })
                    })
                    .collect()
            }

            async fn record_attempt(
                &self,
                delivery: uuid::Uuid,
                a: &$crate::store::notify::AttemptRecord,
                next: $crate::store::notify::NextStep,
            ) -> Result<(), StoreError> {
                use $crate::store::notify::NextStep;
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(delivery.to_string())
                .bind(a.attempt)
                .bind(a.at.0)
                .bind(a.status_code)
                .bind(a.error.clone())
                .bind(a.duration_ms)
                .execute(&mut *tx)
                .await?;
                let (status, next_at, finished) = match next {
                    NextStep::Delivered => ("delivered", a.at.0, Some(a.at.0)),
                    NextStep::RetryAt(at) => ("pending", at.0, None),
                    NextStep::GiveUp => ("failed", a.at.0, Some(a.at.0)),
                };
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, finished_at = $3, \
                     lease_until = 0, last_status_code = $4, last_error = $5 \
                     WHERE id = $6 AND status = 'pending' AND attempts = $7",
                )
                .bind(status)
                .bind(next_at)
                .bind(finished)
                .bind(a.status_code)
                .bind(a.error.clone())
                .bind(delivery.to_string())
                .bind(a.attempt)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn deliveries(
                &self,
                webhook: uuid::Uuid,
                limit: u32,
                before: Option<uuid::Uuid>,
            ) -> Result<Vec<$crate::store::notify::DeliveryRecord>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM webhook_deliveries WHERE webhook_id = $1 AND ($2 IS NULL OR id < $2) \
                     ORDER BY id DESC LIMIT $3",
                    $crate::store::notify::DELIVERY_COLUMNS
                ))
                .bind(webhook.to_string())
                .bind(before.map(|b| b.to_string()))
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<$crate::store::notify::DeliveryRecord> = rows
                    .iter()
                    .map($crate::store::notify::delivery)
                    .collect::<Result<_, _>>()?;
                for d in &mut out {
                    let attempts = sqlx::query(
                        "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts \
                         WHERE delivery_id = $1 ORDER BY attempt",
                    )
                    .bind(d.id.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                    d.log = attempts
                        .iter()
                        .map($crate::store::notify::attempt)
                        .collect::<Result<_, _>>()?;
                }
                Ok(out)
            }
        }
    };
}
pub(super) use notify_queries;
