//! Webhooks: the shop's endpoints, and the deliveries table that is both
//! their outbox (leased by one instance at a time) and their log.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;
use super::columns::{Columns, parse_id};
use crate::domain::timestamp::Timestamp;

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// The request that caused the event: sent as `X-Request-Id` and
    /// `traceparent`.
    pub trace: Option<std::sync::Arc<crate::trace::Trace>>,
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
    pub trace: Option<std::sync::Arc<crate::trace::Trace>>,
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
    /// The request that caused the event.
    pub request_id: Option<String>,
    pub log: Vec<AttemptRecord>,
}

#[async_trait]
pub trait WebhookStore {
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
     finished_at, last_status_code, last_error, body, request_id";

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
        request_id: row.opt_text("request_id")?,
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

/// Webhook deliveries, inside the caller's transaction; one already there
/// (same endpoint and `once_key`) is left as it is. How many were new.
pub(super) async fn insert_deliveries<S: super::sql::Sql>(
    tx: &mut S,
    rows: &[NewDelivery],
) -> Result<u64, StoreError> {
    let mut written = 0;
    for chunk in rows.chunks(super::outbox::CHUNK) {
        let sql = super::sql::values(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, once_key, body, \
             next_attempt_at, created_at, request_id, traceparent) ",
            chunk.len(),
            10,
            " ON CONFLICT DO NOTHING",
        );
        let mut binds = Vec::with_capacity(chunk.len() * 10);
        for r in chunk {
            binds.extend(super::sql::args![
                r.id.to_string(),
                r.webhook.to_string(),
                r.event_id.to_string(),
                &r.event_type,
                &r.once_key,
                &r.body,
                r.at.0,
                r.at.0,
                r.trace.as_ref().map(|t| t.request_id.as_str()),
                r.trace.as_ref().map(|t| t.traceparent.as_str()),
            ]);
        }
        written += super::sql::execute_rows(tx, &sql, binds, chunk.len()).await?;
    }
    Ok(written)
}

/// [`WebhookStore`] for a store with a `pool` of database `$db`.
macro_rules! webhooks_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::WebhookStore for $store {
            async fn insert_webhook(
                &self,
                w: &$crate::store::WebhookRecord,
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
            ) -> Result<Vec<$crate::store::WebhookRecord>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM webhooks WHERE deleted_at IS NULL ORDER BY id",
                    $crate::store::webhooks::WEBHOOK_COLUMNS
                ))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::webhooks::webhook)
                    .collect::<Result<_, _>>()?)
            }

            async fn webhook(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::store::WebhookRecord>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM webhooks WHERE deleted_at IS NULL AND id = $1",
                    $crate::store::webhooks::WEBHOOK_COLUMNS
                ))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map($crate::store::webhooks::webhook).transpose()?)
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
                rows: &[$crate::store::NewDelivery],
            ) -> Result<u64, StoreError> {
                if rows.is_empty() {
                    return Ok(0);
                }
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                let written = $crate::store::webhooks::insert_deliveries(&mut *tx, rows).await?;
                tx.commit().await?;
                Ok(written)
            }

            async fn lease_deliveries(
                &self,
                now: Timestamp,
                lease_until: Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::store::LeasedDelivery>, StoreError> {
                let _turn = self.write_turn().await;
                // The outer conditions repeat the inner ones: on PostgreSQL a
                // concurrent lease of the same row makes this one wait, then
                // re-check the row as the other left it, and skip it.
                let rows = sqlx::query(
                    "UPDATE webhook_deliveries SET lease_until = $1, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' \
                       AND next_attempt_at <= $2 AND lease_until <= $2 ORDER BY next_attempt_at LIMIT $3) \
                     AND status = 'pending' AND lease_until <= $2 \
                     RETURNING id, webhook_id, event_type, body, attempts, created_at, request_id, traceparent",
                )
                .bind(lease_until.0)
                .bind(now.0)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::LeasedDelivery {
                            id: parse_id(&$crate::store::columns::Columns::text(r, "id")?)?,
                            webhook: parse_id(&$crate::store::columns::Columns::text(r, "webhook_id")?)?,
                            event_type: $crate::store::columns::Columns::text(r, "event_type")?,
                            body: $crate::store::columns::Columns::text(r, "body")?,
                            attempts: $crate::store::columns::Columns::int(r, "attempts")?,
                            created_at: Timestamp($crate::store::columns::Columns::int(r, "created_at")?),
                            trace: $crate::store::outbox::trace_of(r)?,
                        })
                    })
                    .collect()
            }

            async fn record_attempt(
                &self,
                delivery: uuid::Uuid,
                a: &$crate::store::AttemptRecord,
                next: $crate::store::NextStep,
            ) -> Result<(), StoreError> {
                use $crate::store::NextStep;
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
            ) -> Result<Vec<$crate::store::DeliveryRecord>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM webhook_deliveries WHERE webhook_id = $1 AND ($2 IS NULL OR id < $2) \
                     ORDER BY id DESC LIMIT $3",
                    $crate::store::webhooks::DELIVERY_COLUMNS
                ))
                .bind(webhook.to_string())
                .bind(before.map(|b| b.to_string()))
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                let mut out: Vec<$crate::store::DeliveryRecord> = rows
                    .iter()
                    .map($crate::store::webhooks::delivery)
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
                        .map($crate::store::webhooks::attempt)
                        .collect::<Result<_, _>>()?;
                }
                Ok(out)
            }
        }
    };
}
pub(super) use webhooks_queries;
