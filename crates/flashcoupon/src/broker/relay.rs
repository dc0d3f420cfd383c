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
//! deduplicate on. A failed publish gives its lease back at once. Up to
//! [`IN_FLIGHT`] batches wait for their confirms while the next go out.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use std::task::Poll;

use futures_util::FutureExt;
use futures_util::future::{Either, join_all, ready};
use futures_util::stream::{FuturesOrdered, StreamExt};
use lapin::{BasicProperties, Channel, PublisherConfirm};

use super::{BrokerError, BrokerSettings, connect, declare, reconnecting, timely};
use crate::domain::timestamp::Timestamp;
use crate::state::AppState;
use crate::store::OutboxRow;
use crate::tasks::Shutdown;

/// Rows leased at once.
const BATCH: u32 = 1_000;
/// How long a lease keeps other relays off a row: longer than a batch may
/// take ([`BATCH_DEADLINE`], counted from before the lease), so no other
/// relay publishes it meanwhile; and how late, at worst, the rows of a
/// relay that crashed go out. A confirmed row is deleted by a later lease:
/// if the session ends while a later batch waits out its deadline, the
/// delete may come after the lease ran out and another relay may publish
/// the row again (at least once: consumers deduplicate by id).
const LEASE: Duration = Duration::from_secs(10);
/// A batch's publishes and confirms all finish within this, or the rest is
/// given back (a broker that blocks publishers, a lost connection).
const BATCH_DEADLINE: Duration = Duration::from_secs(8);
/// Batches sent and waiting for their confirms at once, while the next are
/// leased and sent. A consumer has an event as soon as the broker routes
/// it, but RabbitMQ confirms a persistent message only once its store has
/// synced it, in batches up to a few hundred milliseconds apart under load:
/// a relay that waited for each batch's confirms before leasing the next
/// made every event behind it wait for the broker's fsync.
const IN_FLIGHT: usize = 4;
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
    let mut owed = Owed::default();
    // Batches sent whose confirms are still coming, oldest first. They
    // touch no store: a future here runs only while the loop polls it, and
    // one that waited for the write turn could hold it while the loop waits
    // for the same turn.
    let mut in_flight = FuturesOrdered::new();
    let ended = loop {
        // Confirms already in, without waiting.
        if let Err(e) = settled(&mut in_flight, &mut owed, false).await {
            break Err(e);
        }
        if shutdown.is_begun() {
            break Ok(());
        }
        if in_flight.len() >= IN_FLIGHT {
            match settled(&mut in_flight, &mut owed, true).await {
                Ok(()) => continue,
                Err(e) => break Err(e),
            }
        }
        owed.give_back(&state).await;
        // A batch's deadline is counted from before its lease is asked
        // for, so it always ends before the lease does, however long the
        // lease waited for its write turn.
        let deadline = tokio::time::Instant::now() + BATCH_DEADLINE;
        let now = state.clock.now();
        let rows = match state
            .store
            .lease_outbox(
                now,
                now.plus_millis(LEASE.as_millis() as i64),
                BATCH,
                &owed.confirmed,
            )
            .await
        {
            Ok(rows) => {
                owed.confirmed.clear();
                rows
            }
            Err(e) => {
                tracing::debug!(error = %e, "outbox relay: the record is unreachable; will retry");
                Vec::new()
            }
        };
        let full = rows.len() as u32 == BATCH;
        if !rows.is_empty() {
            let sent = send(&channel, &settings.names.events, rows, deadline).await;
            let broken = sent.failed.is_some();
            in_flight.push_back(confirm(state.clone(), sent));
            if broken {
                // The rest of this batch was given back; the session ends
                // once what went out is settled (below).
                break Ok(());
            }
        }
        if full {
            continue; // more are waiting: no pause
        }
        // Everything written so far is out: wait for the next commit (its
        // wake-up may already be here), a confirm or the poll.
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            // A batch confirmed: its rows are deleted by the next lease.
            settling = settled(&mut in_flight, &mut owed, true), if !in_flight.is_empty() => {
                if let Err(e) = settling {
                    break Err(e);
                }
            }
            _ = shutdown.begun() => break Ok(()),
        }
    };
    // What went out is settled (each batch within its deadline) before the
    // connection closes: confirmed rows are deleted, the rest given back.
    // What is confirmed already goes first, so a batch still waiting for
    // its confirms does not keep earlier rows past their lease.
    owed.delete_confirmed(&state).await;
    let mut failure = None;
    while let Some(batch) = in_flight.next().await {
        failure = failure.or(owed.take(batch));
    }
    owed.give_back(&state).await;
    owed.delete_confirmed(&state).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "bye".into())).await;
    match (ended, failure) {
        (Ok(()), Some(e)) if !shutdown.is_begun() => Err(e),
        (ended, _) => ended,
    }
}

/// What a batch's confirms came to: the ids the broker confirmed, those it
/// did not (or never got), and what went wrong, if anything.
struct Settled {
    done: Vec<uuid::Uuid>,
    unsent: Vec<uuid::Uuid>,
    failed: Option<BrokerError>,
}

/// What the relay owes the record for settled batches: rows the broker
/// confirmed, deleted by the next lease's write (one write per round: on
/// SQLite every write waits its turn behind the group commit, so a storm
/// would otherwise halve the relay's pace), and rows to give back.
#[derive(Default)]
struct Owed {
    confirmed: Vec<uuid::Uuid>,
    unsent: Vec<uuid::Uuid>,
}

impl Owed {
    /// Take a settled batch in; what went wrong with it.
    fn take(&mut self, batch: Settled) -> Option<BrokerError> {
        self.confirmed.extend(batch.done);
        self.unsent.extend(batch.unsent);
        batch.failed
    }

    /// Give back the lease of what was not confirmed, for the next try. If
    /// the record refuses, those rows go again when their lease runs out.
    async fn give_back(&mut self, state: &AppState) {
        if !self.unsent.is_empty() {
            let _ = state.store.release_outbox(&self.unsent).await;
            self.unsent.clear();
        }
    }

    /// Delete what the broker confirmed. Deleting fails only with the
    /// record: those rows stay leased and are published again after the
    /// lease (at least once).
    async fn delete_confirmed(&mut self, state: &AppState) {
        if let Err(e) = state.store.delete_outbox(&self.confirmed).await {
            tracing::warn!(error = %e, "outbox relay: could not delete published events; they will be published again");
        }
        self.confirmed.clear();
    }
}

/// Take in the batches whose confirms are all in, oldest first; with
/// `wait`, wait for the oldest one at least. A batch that failed ends the
/// session (the connection or the broker is in trouble). Cancel-safe: a
/// batch taken from `in_flight` is in `owed` before the next await.
async fn settled(
    in_flight: &mut FuturesOrdered<impl Future<Output = Settled>>,
    owed: &mut Owed,
    mut wait: bool,
) -> Result<(), BrokerError> {
    loop {
        let next = if wait {
            wait = false;
            in_flight.next().await
        } else {
            match in_flight.next().now_or_never() {
                Some(next) => next,
                None => return Ok(()),
            }
        };
        let Some(batch) = next else {
            return Ok(());
        };
        if let Some(e) = owed.take(batch) {
            return Err(e);
        }
    }
}

/// A batch on its way: the publishes the broker has, each with its confirm
/// to come, and the rows it never got.
struct Sent {
    confirms: Vec<(OutboxRow, PublisherConfirm)>,
    unsent: Vec<uuid::Uuid>,
    failed: Option<BrokerError>,
    deadline: tokio::time::Instant,
}

/// Publish a leased batch, in order, without waiting for the confirms.
/// Each publish is queued for lapin's I/O thread at its first poll, in the
/// rows' order, and all are awaited together: awaiting each before queueing
/// the next cost a round trip through that thread per event, which under a
/// storm paced the relay below the rate coupons were issued.
async fn send(
    channel: &Channel,
    exchange: &str,
    rows: Vec<OutboxRow>,
    deadline: tokio::time::Instant,
) -> Sent {
    let mut publishes = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut properties = BasicProperties::default()
            .with_message_id(row.id.to_string().into())
            .with_content_type("application/json".into())
            .with_type(row.event_type.as_str().into())
            .with_timestamp((row.created_at.0 / 1000).max(0) as u64)
            .with_delivery_mode(2);
        if let Some(trace) = &row.trace {
            properties = properties.with_headers(trace_headers(trace));
        }
        let mut publish = Box::pin(channel.basic_publish(
            ShortString::from(exchange),
            row.event_type.as_str().into(),
            BasicPublishOptions::default(),
            row.body.as_bytes(),
            properties,
        ));
        publishes.push(match futures_util::poll!(publish.as_mut()) {
            Poll::Ready(published) => Either::Left(ready(published)),
            Poll::Pending => Either::Right(publish),
        });
    }
    let mut sent = Sent {
        confirms: Vec::with_capacity(rows.len()),
        unsent: Vec::new(),
        failed: None,
        deadline,
    };
    match tokio::time::timeout_at(deadline, join_all(publishes)).await {
        Ok(published) => {
            for (row, published) in rows.into_iter().zip(published) {
                match published {
                    Ok(confirm) => sent.confirms.push((row, confirm)),
                    Err(e) => {
                        sent.unsent.push(row.id);
                        sent.failed.get_or_insert(e.into());
                    }
                }
            }
        }
        Err(_) => {
            // Some may have gone out: given back, they go again (at least
            // once, deduplicated by id).
            sent.unsent.extend(rows.iter().map(|r| r.id));
            sent.failed = Some(BrokerError::Timeout(BATCH_DEADLINE));
        }
    }
    sent
}

/// Wait for a sent batch's confirms (until its deadline) and count what the
/// broker confirmed. No store I/O here (see `in_flight`).
async fn confirm(state: AppState, sent: Sent) -> Settled {
    let Sent {
        confirms,
        mut unsent,
        mut failed,
        deadline,
    } = sent;
    let mut done = Vec::with_capacity(confirms.len());
    for (row, confirm) in confirms {
        if matches!(failed, Some(BrokerError::Timeout(_))) {
            unsent.push(row.id); // past the deadline: give it back
            continue;
        }
        match tokio::time::timeout_at(deadline, confirm).await {
            Ok(Ok(c)) if c.is_ack() => done.push(row),
            Ok(Ok(_)) => {
                unsent.push(row.id);
                failed.get_or_insert(BrokerError::Lost("the broker refused an event".into()));
            }
            Ok(Err(e)) => {
                unsent.push(row.id);
                failed.get_or_insert(e.into());
            }
            Err(_) => {
                unsent.push(row.id);
                failed = Some(BrokerError::Timeout(BATCH_DEADLINE));
            }
        }
    }
    let now = state.clock.now();
    for row in &done {
        state.metrics.outbox_published.inc();
        state
            .metrics
            .outbox_lag
            .observe(lag_secs(row.created_at, now));
    }
    Settled {
        done: done.into_iter().map(|r| r.id).collect(),
        unsent,
        failed,
    }
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
