//! RabbitMQ (with `--amqp-url`, in either mode): the consumers of payment
//! events and of trigger events (`consumer`) and the relay that publishes
//! the outbox (`relay`).
//!
//! Each runs on a connection of its own, in a loop that reconnects with
//! backoff whenever the broker goes away (lapin's own recovery is off: it
//! can leave a publisher confirm unresolved). Nothing is lost meanwhile:
//! unacknowledged payment events stay in their queue, and outbound events
//! stay in the outbox until the broker confirms them.
//!
//! At each connection the topology is declared, all durable: the queues
//! `<ns>.payments`, `<ns>.triggers` and their `.dead` letter queues, and the
//! topic exchange `<ns>.events` (`<ns>` is `flashcoupon`; tests use their
//! own).

pub mod consumer;
pub mod relay;

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::state::AppState;
use crate::tasks::Tasks;

/// A connection (or a declaration, a publish's confirm) that takes longer
/// than this is treated as failed, and tried again.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Backoff between reconnections: from the first to the longest.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The broker's names.
#[derive(Debug, Clone)]
pub struct Names {
    /// Payment events in.
    pub payments: String,
    /// Payment events that cannot be taken in, with the reason.
    pub dead: String,
    /// Trigger events in (a shop's custom events).
    pub triggers: String,
    /// Trigger events that cannot be taken in, with the reason.
    pub triggers_dead: String,
    /// Every outbound event, routing key = its type.
    pub events: String,
}

impl Names {
    pub fn new(namespace: &str) -> Self {
        Self {
            payments: format!("{namespace}.payments"),
            dead: format!("{namespace}.payments.dead"),
            triggers: format!("{namespace}.triggers"),
            triggers_dead: format!("{namespace}.triggers.dead"),
            events: format!("{namespace}.events"),
        }
    }
}

/// Where the broker is and how to use it.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub url: String,
    pub names: Names,
    /// Payment events worked on at once.
    pub prefetch: u16,
}

/// Start the consumers and the relay; each keeps reconnecting until shutdown.
pub fn start(state: AppState, settings: BrokerSettings, tasks: &mut Tasks) {
    tasks.spawn(
        "payment events consumer",
        consumer::run(
            state.clone(),
            settings.clone(),
            consumer::Queue::Payments,
            tasks.shutdown(),
        ),
    );
    tasks.spawn(
        "trigger events consumer",
        consumer::run(
            state.clone(),
            settings.clone(),
            consumer::Queue::Triggers,
            tasks.shutdown(),
        ),
    );
    tasks.spawn(
        "outbox relay",
        relay::run(state, settings, tasks.shutdown()),
    );
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    #[error("the broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Lost(String),
}

/// `fut`, failed after [`BROKER_TIMEOUT`].
async fn timely<T>(fut: impl Future<Output = Result<T, lapin::Error>>) -> Result<T, BrokerError> {
    tokio::time::timeout(BROKER_TIMEOUT, fut)
        .await
        .map_err(|_| BrokerError::Timeout(BROKER_TIMEOUT))?
        .map_err(BrokerError::from)
}

/// Connect, named `name` in the broker's console.
async fn connect(url: &str, name: &str) -> Result<Connection, BrokerError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    timely(Connection::connect(url, properties)).await
}

/// Declare the queues and the exchange (idempotent; the same arguments
/// every time, or the broker refuses the declaration).
async fn declare(channel: &Channel, names: &Names) -> Result<(), BrokerError> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for queue in [
        &names.payments,
        &names.dead,
        &names.triggers,
        &names.triggers_dead,
    ] {
        timely(channel.queue_declare(queue.as_str().into(), durable, FieldTable::default()))
            .await?;
    }
    timely(channel.exchange_declare(
        names.events.as_str().into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
}

/// Reconnection delays: doubling from [`BACKOFF_FIRST`] to [`BACKOFF_MAX`],
/// each with up to a quarter of random jitter (instances restarted together
/// do not knock together), back to the first after a session that lasted.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(BACKOFF_FIRST)
    }

    fn reset(&mut self) {
        self.0 = BACKOFF_FIRST;
    }

    fn next(&mut self) -> Duration {
        let base = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), 0..=base.as_millis() as u64 / 4);
        base + Duration::from_millis(jitter)
    }
}

/// Run `session` again and again until shutdown, waiting out a backoff
/// after each failure; `what` names it in the logs.
async fn reconnecting<F, Fut>(what: &str, mut shutdown: crate::tasks::Shutdown, mut session: F)
where
    F: FnMut(crate::tasks::Shutdown) -> Fut,
    Fut: Future<Output = Result<(), BrokerError>>,
{
    let mut backoff = Backoff::new();
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        let started = tokio::time::Instant::now();
        let ended = session(shutdown.clone()).await;
        if shutdown.is_begun() {
            return;
        }
        if started.elapsed() > BACKOFF_MAX {
            // It worked for a while: this is a new outage.
            backoff.reset();
            failing_since = None;
        }
        let delay = backoff.next();
        match ended {
            Ok(()) => tracing::info!("{what}: the broker closed the session; reconnecting"),
            Err(e) => {
                // Loud once it lasts; a blip is only a warning.
                let since = *failing_since.get_or_insert(started);
                if since.elapsed() > Duration::from_secs(60) {
                    tracing::error!(error = %e, "{what}: the broker is unreachable for over a minute; retrying");
                } else {
                    tracing::warn!(error = %e, retry_in = ?delay, "{what}: lost the broker; reconnecting");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.begun() => return,
        }
    }
}

/// The trace a message's headers name (`x-request-id`, `traceparent`), if
/// they are sane.
pub fn trace_of(headers: Option<&lapin::types::FieldTable>) -> Option<crate::trace::Trace> {
    let text = |name: &str| -> Option<String> {
        match headers?.inner().get(name)? {
            lapin::types::AMQPValue::LongString(s) => Some(s.to_string()),
            lapin::types::AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
            _ => None,
        }
    };
    crate::trace::Trace::from_headers(
        text("x-request-id").as_deref(),
        text("traceparent").as_deref(),
    )
}
