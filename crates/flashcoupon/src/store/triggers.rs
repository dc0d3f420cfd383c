//! Trigger events: the inbox of events that issue coupons by themselves (a
//! sign-up, a shop's custom event), leased by the runner until done.

use async_trait::async_trait;

use super::StoreError;
use super::columns::{Columns, parse_id};
use crate::domain::ids::{CampaignId, UserId};
use crate::domain::timestamp::Timestamp;

/// A trigger event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerEvent {
    pub event_id: String,
    /// `signup`, `first_order_paid` or `custom:<name>`.
    pub name: String,
    pub user_id: UserId,
    /// `signup`, `order`, `http` or `amqp`.
    pub source: String,
    pub received_at: Timestamp,
    pub done_at: Option<Timestamp>,
    /// What it did, once done, e.g. `issued 1, sold_out 1`.
    pub outcome: Option<String>,
    /// The request (or message) it came with: the coupons its runner
    /// issues later carry it (see `crate::trace`).
    pub trace: Option<std::sync::Arc<crate::trace::Trace>>,
}

#[async_trait]
pub trait TriggerStore {
    /// Take an event in, once per `event_id`: `Ok(None)` if new, else the
    /// event already there (nothing written).
    async fn insert_trigger_event(
        &self,
        event: &TriggerEvent,
    ) -> Result<Option<TriggerEvent>, StoreError>;
    async fn get_trigger_event(&self, event_id: &str) -> Result<Option<TriggerEvent>, StoreError>;
    /// Lease up to `limit` events not done and not leased past `now`,
    /// oldest first, until `until`.
    async fn lease_trigger_events(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<TriggerEvent>, StoreError>;
    async fn finish_trigger_event(
        &self,
        event_id: &str,
        outcome: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// The campaigns issued by this trigger that existed when the event
    /// `happened` and whose issuing has not ended by `now`.
    async fn trigger_campaigns(
        &self,
        name: &str,
        happened: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<CampaignId>, StoreError>;
}

/// Binds: event id, name, user, source, received at, then the request's
/// id and `traceparent` (see [`trace_binds`]).
pub(super) const INSERT_TRIGGER_EVENT: &str = "INSERT INTO trigger_events \
     (event_id, name, user_id, source, received_at, request_id, traceparent) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";

pub(super) const TRIGGER_COLUMNS: &str =
    "event_id, name, user_id, source, received_at, done_at, outcome, request_id, traceparent";

/// The request id and `traceparent` columns of a trace.
pub(super) fn trace_binds(trace: Option<&crate::trace::Trace>) -> (Option<String>, Option<String>) {
    (
        trace.map(|t| t.request_id.clone()),
        trace.map(|t| t.traceparent.clone()),
    )
}

pub(super) fn trigger_event(row: &impl Columns) -> Result<TriggerEvent, sqlx::Error> {
    Ok(TriggerEvent {
        event_id: row.text("event_id")?,
        name: row.text("name")?,
        user_id: parse_id(&row.text("user_id")?)?,
        source: row.text("source")?,
        received_at: Timestamp(row.int("received_at")?),
        done_at: row.opt_int("done_at")?.map(Timestamp),
        outcome: row.opt_text("outcome")?,
        trace: super::outbox::trace_of(row)?,
    })
}

/// [`TriggerStore`] for a store with a `pool` of database `$db`.
macro_rules! trigger_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::TriggerStore for $store {
            async fn insert_trigger_event(
                &self,
                e: &$crate::store::TriggerEvent,
            ) -> Result<Option<$crate::store::TriggerEvent>, StoreError> {
                {
                    let _turn = self.write_turn().await;
                    let (request_id, traceparent) =
                        $crate::store::triggers::trace_binds(e.trace.as_deref());
                    let added = sqlx::query($crate::store::triggers::INSERT_TRIGGER_EVENT)
                        .bind(&e.event_id)
                        .bind(&e.name)
                        .bind(e.user_id.to_string())
                        .bind(&e.source)
                        .bind(e.received_at.0)
                        .bind(request_id)
                        .bind(traceparent)
                        .execute(&self.pool)
                        .await?;
                    if added.rows_affected() == 1 {
                        return Ok(None);
                    }
                }
                self.get_trigger_event(&e.event_id).await
            }

            async fn get_trigger_event(
                &self,
                event_id: &str,
            ) -> Result<Option<$crate::store::TriggerEvent>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM trigger_events WHERE event_id = $1",
                    $crate::store::triggers::TRIGGER_COLUMNS
                ))
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row
                    .as_ref()
                    .map($crate::store::triggers::trigger_event)
                    .transpose()?)
            }

            async fn lease_trigger_events(
                &self,
                now: Timestamp,
                until: Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::store::TriggerEvent>, StoreError> {
                let _turn = self.write_turn().await;
                // The outer condition repeats the inner one (see lease_outbox).
                let rows = sqlx::query(&format!(
                    "UPDATE trigger_events SET lease_until = $1 \
                     WHERE event_id IN (SELECT event_id FROM trigger_events WHERE done_at IS NULL \
                       AND (lease_until IS NULL OR lease_until <= $2) ORDER BY received_at LIMIT $3) \
                     AND done_at IS NULL AND (lease_until IS NULL OR lease_until <= $2) \
                     RETURNING {}",
                    $crate::store::triggers::TRIGGER_COLUMNS
                ))
                .bind(until.0)
                .bind(now.0)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::triggers::trigger_event)
                    .collect::<Result<_, _>>()?)
            }

            async fn finish_trigger_event(
                &self,
                event_id: &str,
                outcome: &str,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "UPDATE trigger_events SET done_at = $1, outcome = $2, lease_until = NULL \
                     WHERE event_id = $3 AND done_at IS NULL",
                )
                .bind(now.0)
                .bind(outcome)
                .bind(event_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn trigger_campaigns(
                &self,
                name: &str,
                happened: Timestamp,
                now: Timestamp,
            ) -> Result<Vec<CampaignId>, StoreError> {
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM campaigns WHERE trigger_name = $1 AND created_at <= $2 \
                     AND issue_ends_at > $3 ORDER BY id",
                )
                .bind(name)
                .bind(happened.0)
                .bind(now.0)
                .fetch_all(&self.pool)
                .await?;
                Ok(ids
                    .iter()
                    .map(|id| $crate::store::columns::parse_id(id))
                    .collect::<Result<_, _>>()?)
            }
        }
    };
}
pub(super) use trigger_queries;
