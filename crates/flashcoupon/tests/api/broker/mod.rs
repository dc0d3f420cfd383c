//! Checkout over the real RabbitMQ (`--amqp-url`): payment events consumed
//! from `<ns>.payments` exactly once in effect, poison messages
//! dead-lettered with their reason, every outbound event published to the
//! topic exchange `<ns>.events` from the outbox. Each test has a namespace
//! of its own on the shared broker (the platform's names are
//! `flashcoupon.*`; `--amqp-namespace` exists for this), deleted at its end.

mod crash;
mod flow;
mod follow;
mod outbox;
mod points;
mod restart;
mod sales;
mod server;
mod triggers;

use std::time::Duration;

use flashcoupon::settings::Settings;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;

use crate::helpers::TestApp;

pub const REPEATS: &str = "flashcoupon_payment_events_total{result=\"repeat\",source=\"amqp\"}";
pub const APPLIED: &str = "flashcoupon_payment_events_total{result=\"applied\",source=\"amqp\"}";
pub const DEAD: &str = "flashcoupon_payment_events_total{result=\"dead_lettered\",source=\"amqp\"}";

pub fn amqp_url() -> String {
    std::env::var("FLASHCOUPON_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A message as a test reads it off a queue.
#[derive(Debug, Clone)]
pub struct Got {
    pub routing_key: String,
    pub message_id: Option<String>,
    pub headers: FieldTable,
    pub body: Vec<u8>,
}

impl Got {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        match self.headers.inner().get(name)? {
            AMQPValue::LongString(s) => Some(s.to_string()),
            other => Some(format!("{other:?}")),
        }
    }
}

/// The test's side of the broker: its namespace, a channel with publisher
/// confirms, and a tap queue bound to every outbound event.
pub struct TestBroker {
    pub namespace: String,
    url: String,
    conn: Connection,
    channel: Channel,
}

impl TestBroker {
    pub async fn new() -> Self {
        Self::at(&amqp_url()).await
    }

    /// On the broker at `url`.
    pub async fn at(url: &str) -> Self {
        let namespace = format!("fctest-{}", uuid::Uuid::now_v7().simple());
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("RabbitMQ is up (scripts/services.sh starts it)");
        let channel = conn.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let broker = Self {
            namespace,
            url: url.to_owned(),
            conn,
            channel,
        };
        // The platform declares these too, with the same arguments; the tap
        // must be bound before the first event is published.
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for q in [
            broker.payments(),
            broker.dead(),
            broker.triggers(),
            broker.triggers_dead(),
            broker.tap(),
        ] {
            broker
                .channel
                .queue_declare(q.as_str().into(), durable, FieldTable::default())
                .await
                .unwrap();
        }
        broker
            .channel
            .exchange_declare(
                broker.events().as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        broker
            .channel
            .queue_bind(
                broker.tap().as_str().into(),
                broker.events().as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        broker
    }

    /// A new connection to the same broker and namespace (after a restart
    /// closed the old one).
    pub async fn reopen(&mut self) {
        self.conn = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .unwrap();
        self.channel = self.conn.create_channel().await.unwrap();
        self.channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
    }

    pub fn payments(&self) -> String {
        format!("{}.payments", self.namespace)
    }

    pub fn dead(&self) -> String {
        format!("{}.payments.dead", self.namespace)
    }

    pub fn events(&self) -> String {
        format!("{}.events", self.namespace)
    }

    pub fn triggers(&self) -> String {
        format!("{}.triggers", self.namespace)
    }

    pub fn triggers_dead(&self) -> String {
        format!("{}.triggers.dead", self.namespace)
    }

    fn tap(&self) -> String {
        format!("{}.tap", self.namespace)
    }

    /// Settings pointing an instance at this namespace.
    pub fn configure(&self, settings: &mut Settings) {
        settings.amqp_url = Some(self.url.clone());
        settings.amqp_namespace = self.namespace.clone();
    }

    /// Publish a message to the payments queue, persistent, and wait for
    /// the broker's confirm.
    pub async fn send(&self, body: &[u8]) {
        self.send_to(&self.payments(), body).await;
    }

    /// Publish a message to `queue`, persistent, and wait for the broker's
    /// confirm.
    pub async fn send_to(&self, queue: &str, body: &[u8]) {
        self.send_with(queue, body, FieldTable::default()).await;
    }

    /// [`TestBroker::send_to`] with these headers.
    pub async fn send_with(&self, queue: &str, body: &[u8], headers: FieldTable) {
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_headers(headers),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }

    pub async fn send_json(&self, body: &Value) {
        self.send(body.to_string().as_bytes()).await;
    }

    async fn get(&self, queue: &str) -> Option<Got> {
        let got = self
            .channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()?;
        let d = got.delivery;
        Some(Got {
            routing_key: d.routing_key.to_string(),
            message_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
            headers: d.properties.headers().clone().unwrap_or_default(),
            body: d.data,
        })
    }

    /// Read `queue` until `done` says so or `within` passes, then on until
    /// it has been quiet for half a second (so a late duplicate is seen by
    /// the test's count, not missed); everything read.
    async fn read_until(
        &self,
        queue: &str,
        within: Duration,
        done: impl Fn(&[Got]) -> bool,
    ) -> Vec<Got> {
        let deadline = tokio::time::Instant::now() + within;
        let mut all = Vec::new();
        while !done(&all) && tokio::time::Instant::now() < deadline {
            match self.get(queue).await {
                Some(got) => all.push(got),
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let mut quiet_since = tokio::time::Instant::now();
        while quiet_since.elapsed() < Duration::from_millis(500) {
            match self.get(queue).await {
                Some(got) => {
                    all.push(got);
                    quiet_since = tokio::time::Instant::now();
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        all
    }

    /// Outbound events until `done` holds (or 30 s pass: a relay that
    /// crashed holding a lease leaves its rows for the lease's 10 s).
    pub async fn events_until(&self, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        self.read_until(&self.tap(), Duration::from_secs(30), done)
            .await
    }

    /// Dead letters until there are `n` (or 20 s pass).
    pub async fn dead_letters(&self, n: usize) -> Vec<Got> {
        self.dead_letters_of(&self.dead(), n).await
    }

    /// Dead letters of the queue `dead` until there are `n` (or 20 s pass).
    pub async fn dead_letters_of(&self, dead: &str, n: usize) -> Vec<Got> {
        self.read_until(dead, Duration::from_secs(20), |all| all.len() >= n)
            .await
    }

    /// Delete the namespace's queues and exchange.
    pub async fn delete(self) {
        for q in [
            self.payments(),
            self.dead(),
            self.triggers(),
            self.triggers_dead(),
            self.tap(),
        ] {
            let _ = self
                .channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self
            .channel
            .exchange_delete(
                self.events().as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

/// The value of a metric line of `/metrics` (e.g.
/// `flashcoupon_payment_events_total{result="repeat",source="amqp"}`), 0 if absent.
pub async fn metric(app: &TestApp, line: &str) -> f64 {
    crate::helpers::metric_at(&app.client, &app.base, line).await
}

/// Wait (polling, 20 s at most) until `metric` reaches `at_least`.
pub async fn metric_reaches(app: &TestApp, line: &str, at_least: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = metric(app, line).await;
        if v >= at_least {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line} is {v}, not {at_least}, after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
