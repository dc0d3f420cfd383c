//! The consumers of `flashcoupon.payments` (promise 10) and
//! `flashcoupon.triggers`: each message is taken in through the same use
//! case as its HTTP twin (`payments::take_many`, `triggers::take_custom`;
//! its effect and its `event_id` committed together) and acknowledged only
//! after that commit. So a crash before the ack redelivers it, and the
//! redelivery is a repeat.
//!
//! A message that can never take effect (not an event of the queue's kind,
//! an unknown order or user) is republished to the queue's `.dead` queue
//! with the reason in its headers, then acknowledged: it never blocks the
//! queue. One that failed for a passing reason (the record unreachable) is
//! returned to the queue after a pause.
//!
//! Each session also reports how many messages wait in its queue and in its
//! dead letters (`flashcoupon_broker_queue_messages`), the consumer's lag.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use tokio::sync::mpsc;

use super::{BrokerError, BrokerSettings, Names, connect, declare, reconnecting, timely};
use crate::domain::ids::{UserId, parse_uuid};
use crate::issuing::triggers::{self, TriggerError};
use crate::metrics::Metrics;
use crate::payments::{self, PaymentError, PaymentEvent, Processed, Source};
use crate::state::AppState;
use crate::tasks::Shutdown;

/// Which queue a consumer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Payments,
    Triggers,
}

impl Queue {
    fn name(self, names: &Names) -> &str {
        match self {
            Queue::Payments => &names.payments,
            Queue::Triggers => &names.triggers,
        }
    }

    fn dead(self, names: &Names) -> &str {
        match self {
            Queue::Payments => &names.dead,
            Queue::Triggers => &names.triggers_dead,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Queue::Payments => "payment events consumer",
            Queue::Triggers => "trigger events consumer",
        }
    }
}

/// A failure that may pass (the record down) returns the message to the
/// queue after this pause, so a bad minute is not a hot loop.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Deliveries taken in one transaction, at most.
const MAX_BATCH: usize = 128;
/// With no delivery for this long, check that the connection still lives
/// (a consumer stream can go quiet on a dead connection).
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// How often a session reads how many messages wait in its queues.
const DEPTH_POLL: Duration = Duration::from_secs(5);

pub async fn run(state: AppState, settings: BrokerSettings, queue: Queue, shutdown: Shutdown) {
    let settings = Arc::new(settings);
    reconnecting(queue.what(), shutdown, |shutdown| {
        session(state.clone(), settings.clone(), queue, shutdown)
    })
    .await;
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Applied,
    Repeat,
    DeadLettered,
    Retried,
}

impl Fate {
    fn label(self) -> &'static str {
        match self {
            Fate::Applied => "applied",
            Fate::Repeat => "repeat",
            Fate::DeadLettered => "dead_lettered",
            Fate::Retried => "retried",
        }
    }
}

async fn session(
    state: AppState,
    settings: Arc<BrokerSettings>,
    queue: Queue,
    mut shutdown: Shutdown,
) -> Result<(), BrokerError> {
    let conn = connect(&settings.url, &format!("flashcoupon {}", queue.what())).await?;
    let channel = timely(conn.create_channel()).await?;
    declare(&channel, &settings.names).await?;
    timely(channel.basic_qos(settings.prefetch, BasicQosOptions::default())).await?;
    // Dead letters go out on a channel of their own, with confirms: a
    // poison message is acknowledged only once its copy is safe.
    let dead = timely(conn.create_channel()).await?;
    timely(dead.confirm_select(ConfirmSelectOptions::default())).await?;
    let mut consumer = timely(channel.basic_consume(
        queue.name(&settings.names).into(),
        ShortString::from(""),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await?;
    let mut events = conn.events_listener();
    tracing::info!(queue = queue.name(&settings.names), "consuming");
    let watched = [
        queue.name(&settings.names).to_owned(),
        queue.dead(&settings.names).to_owned(),
    ];
    let depth = tokio::spawn(report_depth(
        timely(conn.create_channel()).await?,
        watched.clone(),
        state.metrics.clone(),
    ));
    // Deliveries go to one worker, which takes them in batches (what has
    // arrived meanwhile, up to MAX_BATCH): one commit per batch. The
    // broker sends no more than `prefetch` unacknowledged.
    let (to_worker, inbox) = mpsc::channel(settings.prefetch as usize);
    let worker = tokio::spawn(work(
        state.clone(),
        dead.clone(),
        settings.names.clone(),
        queue,
        inbox,
    ));
    let ended = loop {
        tokio::select! {
            next = tokio::time::timeout(IDLE_CHECK, consumer.next()) => match next {
                Ok(Some(Ok(delivery))) => {
                    if to_worker.send(delivery).await.is_err() {
                        break Err(BrokerError::Lost("the consumer's worker stopped".into()));
                    }
                }
                Ok(Some(Err(e))) => break Err(e.into()),
                Ok(None) => break Err(BrokerError::Lost("the broker cancelled the consumer".into())),
                Err(_idle)
                    if conn.status().connected()
                        && channel.status().connected()
                        && dead.status().connected() => {}
                Err(_idle) => break Err(BrokerError::Lost("the connection is gone".into())),
            },
            event = events.next() => {
                if let Some(lapin::Event::Error(e)) = event {
                    break Err(e.into());
                }
            }
            _ = shutdown.begun() => break Ok(()),
        }
    };
    // A depth this session can no longer read is unknown, not the last one
    // read: its series goes (other instances still report theirs).
    depth.abort();
    let _ = depth.await;
    for name in &watched {
        let _ = state.metrics.queue_messages.remove_label_values(&[name]);
    }
    // Let the messages in hand finish (ack or return) before closing.
    drop(to_worker);
    let _ = tokio::time::timeout(Duration::from_secs(3), worker).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "bye".into())).await;
    ended
}

/// Every [`DEPTH_POLL`], how many messages are ready in each of `queues`,
/// into `flashcoupon_broker_queue_messages`, until the session aborts it:
/// a backlog that does not drain, dead letters waiting for a human. Those
/// already in a consumer's hands (up to `prefetch`) are not counted. A
/// passive declaration only reads; it has a channel of its own because one
/// that fails closes its channel. A failed read is skipped: the session
/// notices a lost connection by itself.
async fn report_depth(channel: Channel, queues: [String; 2], metrics: Metrics) {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let mut every = tokio::time::interval(DEPTH_POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        for name in &queues {
            let declared =
                channel.queue_declare(name.as_str().into(), passive, FieldTable::default());
            match timely(declared).await {
                Ok(q) => metrics
                    .queue_messages
                    .with_label_values(&[name])
                    .set(i64::from(q.message_count())),
                Err(e) => {
                    tracing::debug!(error = %e, queue = %name, "could not read a queue's depth")
                }
            }
        }
    }
}

/// Take deliveries in, a batch at a time, until the session drops its end.
async fn work(
    state: AppState,
    dead: Channel,
    names: Names,
    queue: Queue,
    mut inbox: mpsc::Receiver<Delivery>,
) {
    while let Some(first) = inbox.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(delivery) => batch.push(delivery),
                Err(_) => break,
            }
        }
        let outcomes = match queue {
            Queue::Payments => take_payments(&state, &batch).await,
            Queue::Triggers => take_triggers(&state, &batch).await,
        };
        let (from, to) = (queue.name(&names), queue.dead(&names));
        let fates = match all_taken(&outcomes) {
            Some(fates) => {
                ack_all(&batch).await;
                fates
            }
            None => {
                futures_util::future::join_all(
                    batch
                        .into_iter()
                        .zip(outcomes)
                        .map(|(delivery, taken)| settle(&dead, from, to, delivery, taken)),
                )
                .await
            }
        };
        for fate in fates {
            let counter = match queue {
                Queue::Payments => state
                    .metrics
                    .payment_events
                    .with_label_values(&["amqp", fate.label()]),
                Queue::Triggers => state
                    .metrics
                    .trigger_messages
                    .with_label_values(&[fate.label()]),
            };
            counter.inc();
        }
    }
}

/// Every message of the batch was taken in (first or repeat): their fates,
/// so one acknowledgement can cover them all.
fn all_taken(outcomes: &[Taken]) -> Option<Vec<Fate>> {
    outcomes.iter().map(|t| t.as_ref().ok().copied()).collect()
}

/// Acknowledge a whole batch with one frame: its last delivery's tag with
/// `multiple`, which covers every earlier unacknowledged delivery of the
/// channel. Those are exactly this batch's: deliveries reach the worker in
/// their channel's order, and every earlier batch was settled (acked,
/// dead-lettered then acked, or returned) before this one was taken.
/// One frame instead of one per message is less work for this process and
/// for the broker, which shares its cores.
async fn ack_all(batch: &[Delivery]) {
    let Some(last) = batch.last() else { return };
    let all = BasicAckOptions { multiple: true };
    // A lost ack (the connection dropped meanwhile) redelivers the
    // messages, which are then repeats.
    if let Err(e) = last.acker.ack(all).await {
        tracing::debug!(error = %e, "could not acknowledge a batch; it will be redelivered");
    }
}

/// What became of each message's event: taken in (first or repeat), or
/// refused with the reason and whether it may pass.
type Taken = Result<Fate, (String, bool)>;

/// A batch of payment events, the valid ones in one go (`payments::take_many`).
async fn take_payments(state: &AppState, batch: &[Delivery]) -> Vec<Taken> {
    let parsed: Vec<Result<PaymentEvent, String>> = batch
        .iter()
        .map(|d| {
            let mut event = PaymentEvent::from_json(&d.data).map_err(|e| e.to_string())?;
            event.trace = super::trace_of(d.properties.headers().as_ref()).map(Arc::new);
            Ok(event)
        })
        .collect();
    let events: Vec<PaymentEvent> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let mut taken = payments::take_many(state, &events, Source::Amqp)
        .await
        .into_iter();
    let outcomes: Vec<Taken> = parsed
        .into_iter()
        .map(|p| match p {
            Ok(_) => match taken.next().unwrap_or(Err(payments::PaymentError::Busy)) {
                Ok(Processed::First(_)) => Ok(Fate::Applied),
                Ok(Processed::Repeat(_)) => Ok(Fate::Repeat),
                Err(e) => Err((e.to_string(), passing(&e))),
            },
            Err(invalid) => Err((invalid, false)),
        })
        .collect();
    if outcomes.contains(&Ok(Fate::Applied)) {
        crash_point_before_ack();
    }
    outcomes
}

/// A trigger event as the queue carries it: the body of
/// `POST /api/v1/trigger-events`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerMessage {
    event_id: String,
    name: String,
    user_id: String,
}

/// Trigger events, one at a time (each is one small insert).
async fn take_triggers(state: &AppState, batch: &[Delivery]) -> Vec<Taken> {
    let mut outcomes = Vec::with_capacity(batch.len());
    for delivery in batch {
        let taken = match serde_json::from_slice::<TriggerMessage>(&delivery.data) {
            Err(e) => Err((format!("not a trigger event: {e}"), false)),
            Ok(m) => match parse_uuid(&m.user_id) {
                None => Err(("user_id: must be a user id (a UUID)".to_owned(), false)),
                Some(user) => {
                    let trace = super::trace_of(delivery.properties.headers().as_ref());
                    let take =
                        triggers::take_custom(state, &m.event_id, &m.name, UserId(user), "amqp");
                    match crate::trace::scope(trace.map(Arc::new), take).await {
                        Ok(true) => Ok(Fate::Applied),
                        Ok(false) => Ok(Fate::Repeat),
                        Err(TriggerError::Store(e)) => Err((e.to_string(), e.is_unavailable())),
                        Err(e) => Err((e.to_string(), false)),
                    }
                }
            },
        };
        outcomes.push(taken);
    }
    outcomes
}

/// Settle one message with the broker (`from` its queue, `dead` the
/// queue's dead letters), as its event was taken in.
async fn settle(dead: &Channel, from: &str, to: &str, delivery: Delivery, taken: Taken) -> Fate {
    let fate = match taken {
        Ok(fate) => fate,
        Err((why, true)) => {
            tracing::warn!(reason = %why, queue = from, "an event failed for now; returning it to the queue");
            tokio::time::sleep(RETRY_PAUSE).await;
            let requeue = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            // If this fails the channel is gone, and the broker returns
            // the message by itself.
            let _ = delivery.acker.nack(requeue).await;
            return Fate::Retried;
        }
        Err((why, false)) => {
            if let Err(e) = dead_letter(dead, from, to, &delivery, &why).await {
                tracing::warn!(error = %e, queue = from, "could not dead-letter an event; returning it to the queue");
                tokio::time::sleep(RETRY_PAUSE).await;
                let _ = delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await;
                return Fate::Retried;
            }
            tracing::info!(reason = %why, queue = from, "an event was dead-lettered");
            Fate::DeadLettered
        }
    };
    // The effect is committed: acknowledge. A lost ack (the connection
    // dropped meanwhile) redelivers the message, which is then a repeat.
    if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
        tracing::debug!(error = %e, "could not acknowledge an event; it will be redelivered");
    }
    fate
}

/// A test hook: with `FLASHCOUPON_TEST_ABORT_BEFORE_ACK=n`, the process
/// dies (SIGABRT, as abrupt as `kill -9`) right after the n-th batch that
/// took events in commits, before its acks: the crash test's "between
/// commit and ack", hit every time rather than by luck. Debug builds only.
fn crash_point_before_ack() {
    if !cfg!(debug_assertions) {
        return; // never in a release build
    }
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static AT: OnceLock<Option<usize>> = OnceLock::new();
    static TAKEN: AtomicUsize = AtomicUsize::new(0);
    let at = AT.get_or_init(|| {
        std::env::var("FLASHCOUPON_TEST_ABORT_BEFORE_ACK")
            .ok()
            .and_then(|n| n.parse().ok())
    });
    if let Some(at) = *at
        && TAKEN.fetch_add(1, Ordering::SeqCst) + 1 == at
    {
        eprintln!("FLASHCOUPON_TEST_ABORT_BEFORE_ACK: aborting after commit {at}, before its ack");
        std::process::abort();
    }
}

/// Could it work later, unchanged?
fn passing(e: &PaymentError) -> bool {
    match e {
        PaymentError::Busy => true,
        PaymentError::Store(s) => s.is_unavailable(),
        PaymentError::Invalid(_)
        | PaymentError::UnknownOrder(_)
        | PaymentError::EventIdReused { .. } => false,
    }
}

/// Republish `delivery` (from the queue `from`) to the dead-letter queue
/// `to`, its body as it came, with the reason in the header
/// `x-flashcoupon-reason`; wait for the broker's confirm.
async fn dead_letter(
    channel: &Channel,
    from: &str,
    to: &str,
    delivery: &Delivery,
    why: &str,
) -> Result<(), BrokerError> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-flashcoupon-reason".into(),
        AMQPValue::LongString(why.into()),
    );
    headers.insert(
        "x-flashcoupon-queue".into(),
        AMQPValue::LongString(from.into()),
    );
    let properties = delivery
        .properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2);
    let confirm = timely(channel.basic_publish(
        ShortString::from(""),
        to.into(),
        BasicPublishOptions::default(),
        &delivery.data,
        properties,
    ))
    .await?;
    let confirmation = timely(confirm).await?;
    if confirmation.is_nack() {
        return Err(BrokerError::Lost(
            "the broker refused the dead letter".into(),
        ));
    }
    Ok(())
}
