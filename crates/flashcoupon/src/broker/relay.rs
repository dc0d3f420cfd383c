//! The outbox relay (promise 11), one per instance: lease a batch of
//! outbox rows, publish each to the topic exchange `flashcoupon.events`
//! (routing key = its type, persistent, `message_id` = its id) with
//! publisher confirms, and delete the rows the broker confirmed. An event a
//! request caused carries that request's `x-request-id` and `traceparent`
//! headers (see `crate::trace`).
//!
//! At least once: a relay that dies after publishing and before deleting
//! leaves its rows leased; when the lease runs out another relay (or this
//! one, restarted) publishes them again, with the same id for consumers to
//! deduplicate on. A failed publish gives its lease back at once.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};

use super::{BrokerError, BrokerSettings, connect, declare, reconnecting, timely};
use crate::domain::timestamp::Timestamp;
use crate::state::AppState;
use crate::store::OutboxRow;
use crate::tasks::Shutdown;

/// Rows leased at once.
const BATCH: u32 = 1_000;
/// How long a lease keeps other relays off a row: longer than a batch may
/// take ([`BATCH_DEADLINE`]), so no other relay publishes it meanwhile; and
/// how late, at worst, the rows of a relay that crashed go out.
const LEASE: Duration = Duration::from_secs(10);
/// A batch's publishes and confirms all finish within this, or the rest is
/// given back (a broker that blocks publishers, a lost connection).
const BATCH_DEADLINE: Duration = Duration::from_secs(8);
/// Look for rows at least this often, even with no wake-up (another
/// instance's writes, a lease run out).
const POLL: Duration = Duration::from_millis(250);

pub async fn run(state: AppState, settings: BrokerSettings, shutdown: Shutdown) {
    let settings = Arc::new(settings);
    reconnecting("outbox relay", shutdown, |shutdown| {
        session(state.clone(), settings.clone(), shutdown)
    })
    .await;
}

async fn session(
    state: AppState,
    settings: Arc<BrokerSettings>,
    mut shutdown: Shutdown,
) -> Result<(), BrokerError> {
    let conn = connect(&settings.url, "flashcoupon outbox relay").await?;
    let channel = timely(conn.create_channel()).await?;
    declare(&channel, &settings.names).await?;
    timely(channel.confirm_select(ConfirmSelectOptions::default())).await?;
    tracing::info!(exchange = %settings.names.events, "publishing the outbox");
    let wake = state.notifier.outbox_waker();
    // Rows the broker confirmed, deleted by the next lease's write (one
    // write per round: on SQLite every write waits its turn behind the
    // group commit, so a storm would otherwise halve the relay's pace).
    let mut confirmed: Vec<uuid::Uuid> = Vec::new();
    let ended = loop {
        if shutdown.is_begun() {
            break Ok(());
        }
        let now = state.clock.now();
        let rows = match state
            .store
            .lease_outbox(
                now,
                now.plus_millis(LEASE.as_millis() as i64),
                BATCH,
                &confirmed,
            )
            .await
        {
            Ok(rows) => {
                confirmed.clear();
                rows
            }
            Err(e) => {
                tracing::debug!(error = %e, "outbox relay: the record is unreachable; will retry");
                Vec::new()
            }
        };
        if rows.len() as u32 == BATCH {
            // More are waiting: no pause.
        } else if rows.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.begun() => break Ok(()),
            }
            continue;
        }
        let (done, failed) = publish(&state, &channel, &settings.names.events, &rows).await;
        confirmed.extend(done);
        if let Some(e) = failed {
            break Err(e);
        }
    };
    // Deleting fails only with the record: those rows stay leased and are
    // published again after the lease (at least once).
    if let Err(e) = state.store.delete_outbox(&confirmed).await {
        tracing::warn!(error = %e, "outbox relay: could not delete published events; they will be published again");
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "bye".into())).await;
    ended
}

/// Publish a leased batch and wait for every confirm; give back the lease
/// of what the broker did not confirm. Returns the ids it confirmed (for
/// the caller to delete), and what went wrong.
async fn publish(
    state: &AppState,
    channel: &Channel,
    exchange: &str,
    rows: &[OutboxRow],
) -> (Vec<uuid::Uuid>, Option<BrokerError>) {
    let deadline = tokio::time::Instant::now() + BATCH_DEADLINE;
    let timed_out = || BrokerError::Timeout(BATCH_DEADLINE);
    let mut confirms = Vec::with_capacity(rows.len());
    let mut failed: Option<BrokerError> = None;
    for row in rows {
        let mut properties = BasicProperties::default()
            .with_message_id(row.id.to_string().into())
            .with_content_type("application/json".into())
            .with_type(row.event_type.as_str().into())
            .with_timestamp((row.created_at.0 / 1000).max(0) as u64)
            .with_delivery_mode(2);
        if let Some(trace) = &row.trace {
            properties = properties.with_headers(trace_headers(trace));
        }
        let published = tokio::time::timeout_at(
            deadline,
            channel.basic_publish(
                ShortString::from(exchange),
                row.event_type.as_str().into(),
                BasicPublishOptions::default(),
                row.body.as_bytes(),
                properties,
            ),
        )
        .await;
        match published {
            Ok(Ok(confirm)) => confirms.push((row, confirm)),
            Ok(Err(e)) => {
                failed = Some(e.into());
                break;
            }
            Err(_) => {
                failed = Some(timed_out());
                break;
            }
        }
    }
    let mut done = Vec::with_capacity(confirms.len());
    let mut undone: Vec<uuid::Uuid> = rows.iter().skip(confirms.len()).map(|r| r.id).collect();
    for (row, confirm) in confirms {
        if matches!(failed, Some(BrokerError::Timeout(_))) {
            undone.push(row.id); // past the deadline: give it back
            continue;
        }
        match tokio::time::timeout_at(deadline, confirm).await {
            Ok(Ok(c)) if c.is_ack() => done.push(row),
            Ok(Ok(_)) => {
                undone.push(row.id);
                failed.get_or_insert(BrokerError::Lost("the broker refused an event".into()));
            }
            Ok(Err(e)) => {
                undone.push(row.id);
                failed.get_or_insert(e.into());
            }
            Err(_) => {
                undone.push(row.id);
                failed = Some(timed_out());
            }
        }
    }
    let ids: Vec<uuid::Uuid> = done.iter().map(|r| r.id).collect();
    let now = state.clock.now();
    for row in &done {
        state.metrics.outbox_published.inc();
        state
            .metrics
            .outbox_lag
            .observe(lag_secs(row.created_at, now));
    }
    if !undone.is_empty() {
        let _ = state.store.release_outbox(&undone).await;
    }
    (ids, failed)
}

/// The headers that let a consumer follow an event back to its request.
pub fn trace_headers(trace: &crate::trace::Trace) -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-request-id".into(),
        AMQPValue::LongString(trace.request_id.as_str().into()),
    );
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(trace.traceparent.as_str().into()),
    );
    headers
}

fn lag_secs(created: Timestamp, now: Timestamp) -> f64 {
    (now.0 - created.0).max(0) as f64 / 1000.0
}
