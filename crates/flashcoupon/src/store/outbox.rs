//! The outbox (promise 11): outbound events written in the same transaction
//! as the change they report, then leased, published and deleted by the
//! relay (`broker::relay`). Also [`Reports`], what a change writes beside
//! itself: its webhook deliveries and its outbox rows.

use async_trait::async_trait;
use uuid::Uuid;

use super::sql::{Sql, args, values};
use super::{NewDelivery, StoreError};
use crate::domain::timestamp::Timestamp;

/// One outbound event: its id (consumers deduplicate on it), its type (the
/// routing key) and the JSON body `{id, type, at, data}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: Uuid,
    pub event_type: String,
    pub body: String,
    pub created_at: Timestamp,
    /// The request that caused it: published as the headers `x-request-id`
    /// and `traceparent`.
    pub trace: Option<std::sync::Arc<crate::trace::Trace>>,
}

/// What a change writes in its own transaction besides itself, so that a
/// crash keeps all of it or none: the webhook deliveries and the outbound
/// events that report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reports {
    pub deliveries: Vec<NewDelivery>,
    pub outbox: Vec<OutboxRow>,
}

impl Reports {
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty() && self.outbox.is_empty()
    }
}

#[async_trait]
pub trait OutboxStore {
    /// Write outbound events on their own (a change already committed whose
    /// report is retried until written, e.g. a hold's expiry).
    async fn enqueue_outbox(&self, rows: &[OutboxRow]) -> Result<(), StoreError>;
    /// Delete `published` (the broker confirmed them), then lease up to
    /// `limit` events not leased by anyone past `now`, oldest first, until
    /// `lease_until`: each lease goes to one relay at a time. One write.
    async fn lease_outbox(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
        published: &[Uuid],
    ) -> Result<Vec<OutboxRow>, StoreError>;
    /// The broker confirmed these: they are done.
    async fn delete_outbox(&self, ids: &[Uuid]) -> Result<(), StoreError>;
    /// Publishing these failed: give their lease back, for the next try.
    async fn release_outbox(&self, ids: &[Uuid]) -> Result<(), StoreError>;
    /// Events not published yet, and the oldest one's time.
    async fn outbox_backlog(&self) -> Result<(i64, Option<Timestamp>), StoreError>;
}

pub(super) fn outbox_row(row: &impl super::columns::Columns) -> Result<OutboxRow, sqlx::Error> {
    Ok(OutboxRow {
        id: super::columns::parse_id(&row.text("id")?)?,
        event_type: row.text("event_type")?,
        body: row.text("body")?,
        created_at: Timestamp(row.int("created_at")?),
        trace: trace_of(row)?,
    })
}

/// The columns `request_id` and `traceparent` of an outbox row, a webhook
/// delivery or a trigger event (dropped unless still sane).
pub(super) fn trace_of(
    row: &impl super::columns::Columns,
) -> Result<Option<std::sync::Arc<crate::trace::Trace>>, sqlx::Error> {
    Ok(
        match (row.opt_text("request_id")?, row.opt_text("traceparent")?) {
            (Some(request_id), Some(traceparent)) => {
                crate::trace::Trace::stored(request_id, traceparent).map(std::sync::Arc::new)
            }
            _ => None,
        },
    )
}

/// Rows one INSERT writes at most: under SQLite's 32,766 parameters and
/// PostgreSQL's 65,535 (a webhook delivery has ten columns).
pub(super) const CHUNK: usize = 2_000;

/// Write `reports` inside the caller's transaction.
pub(super) async fn insert_reports<S: Sql>(
    tx: &mut S,
    reports: &Reports,
) -> Result<(), StoreError> {
    super::webhooks::insert_deliveries(tx, &reports.deliveries).await?;
    insert_outbox(tx, &reports.outbox).await?;
    Ok(())
}

/// The head of every outbox insert: the rows and `ON CONFLICT DO NOTHING`
/// follow (see [`insert_outbox`]).
const INSERT_OUTBOX: &str =
    "INSERT INTO outbox (id, event_type, body, created_at, request_id, traceparent) ";

/// Outbox rows, inside the caller's transaction; an event already there
/// (same id) is left as it is. How many were new.
pub(super) async fn insert_outbox<S: Sql>(
    tx: &mut S,
    rows: &[OutboxRow],
) -> Result<u64, StoreError> {
    let mut written = 0;
    for chunk in rows.chunks(CHUNK) {
        let sql = values(INSERT_OUTBOX, chunk.len(), 6, " ON CONFLICT DO NOTHING");
        let mut binds = Vec::with_capacity(chunk.len() * 6);
        for r in chunk {
            binds.extend(args![
                r.id.to_string(),
                &r.event_type,
                &r.body,
                r.created_at.0,
                r.trace.as_ref().map(|t| t.request_id.as_str()),
                r.trace.as_ref().map(|t| t.traceparent.as_str()),
            ]);
        }
        written += super::sql::execute_rows(tx, &sql, binds, chunk.len()).await?;
    }
    Ok(written)
}

/// [`OutboxStore`] for a store with a `pool` of database `$db`.
macro_rules! outbox_queries {
    ($store:ty, $db:ty) => {
        impl $store {
            /// `statement` (ending in `IN (`) over these ids.
            async fn outbox_by_ids(
                &self,
                statement: &str,
                ids: &[uuid::Uuid],
            ) -> Result<(), StoreError> {
                if ids.is_empty() {
                    return Ok(());
                }
                let _turn = self.write_turn().await;
                let mut q = sqlx::QueryBuilder::<$db>::new(statement);
                let mut list = q.separated(", ");
                for id in ids {
                    list.push_bind(id.to_string());
                }
                q.push(")");
                q.build().execute(&self.pool).await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::OutboxStore for $store {
            async fn enqueue_outbox(
                &self,
                rows: &[$crate::store::OutboxRow],
            ) -> Result<(), StoreError> {
                if rows.is_empty() {
                    return Ok(());
                }
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                $crate::store::outbox::insert_outbox(&mut *tx, rows).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn lease_outbox(
                &self,
                now: Timestamp,
                lease_until: Timestamp,
                limit: u32,
                published: &[uuid::Uuid],
            ) -> Result<Vec<$crate::store::OutboxRow>, StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                if !published.is_empty() {
                    let mut q =
                        sqlx::QueryBuilder::<$db>::new("DELETE FROM outbox WHERE id IN (");
                    let mut list = q.separated(", ");
                    for id in published {
                        list.push_bind(id.to_string());
                    }
                    q.push(")");
                    q.build().execute(&mut *tx).await?;
                }
                // The outer condition repeats the inner one: on PostgreSQL a
                // concurrent lease of the same row makes this one wait, then
                // re-check the row as the other left it, and skip it.
                let rows = sqlx::query(
                    "UPDATE outbox SET lease_until = $1, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM outbox WHERE lease_until IS NULL OR lease_until <= $2 \
                       ORDER BY created_at, id LIMIT $3) \
                     AND (lease_until IS NULL OR lease_until <= $2) \
                     RETURNING id, event_type, body, created_at, request_id, traceparent",
                )
                .bind(lease_until.0)
                .bind(now.0)
                .bind(limit as i64)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                let mut leased = rows
                    .iter()
                    .map($crate::store::outbox::outbox_row)
                    .collect::<Result<Vec<_>, _>>()?;
                // RETURNING has no order: publish oldest first.
                leased.sort_by_key(|r| (r.created_at, r.id));
                Ok(leased)
            }

            async fn delete_outbox(&self, ids: &[uuid::Uuid]) -> Result<(), StoreError> {
                self.outbox_by_ids("DELETE FROM outbox WHERE id IN (", ids).await
            }

            async fn release_outbox(&self, ids: &[uuid::Uuid]) -> Result<(), StoreError> {
                self.outbox_by_ids("UPDATE outbox SET lease_until = NULL WHERE id IN (", ids)
                    .await
            }

            async fn outbox_backlog(&self) -> Result<(i64, Option<Timestamp>), StoreError> {
                let row = sqlx::query("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox")
                    .fetch_one(&self.pool)
                    .await?;
                Ok((
                    $crate::store::columns::Columns::int(&row, "n")?,
                    $crate::store::columns::Columns::opt_int(&row, "oldest")?.map(Timestamp),
                ))
            }
        }
    };
}
pub(super) use outbox_queries;
