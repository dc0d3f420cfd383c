//! Checkout over RabbitMQ, measured against RabbitMQ itself (issue 13).
//!
//! ```text
//! cargo run --release --example broker_bench -- --base http://127.0.0.1:8080 \
//!     --admin-email … --admin-password … --amqp amqp://guest:guest@127.0.0.1:5672/%2f \
//!     --namespace bench-… --events 5000 --claims 5000
//! ```
//!
//! The server must run with `--amqp-url` and `--amqp-namespace <namespace>`.
//! Three measurements, printed as one JSON line (for `bench/broker.sh`):
//! - **baseline**: RabbitMQ's own publish → consume rate: `--events`
//!   persistent messages the size of a payment event published (with
//!   confirms) to a queue of the bench's own while a no-op consumer (the
//!   server's prefetch, manual acks) acknowledges them; events per second
//!   from the first publish to the last ack;
//! - **payments**: the same number of `payment.succeeded` events, one per
//!   reserved coupon, published the same way to `<namespace>.payments`
//!   while the server consumes them; events per second from the first
//!   publish to the last one's effect committed and acked (the server's
//!   `flashcoupon_payment_events_total{result="applied"}`, polled);
//! - **outbox lag**: `--claims` users claim (all at once, 256 in flight, or
//!   paced at `--rate` claims a second) while the bench reads every
//!   `coupon.issued` off `<namespace>.events`; per event, receive time − its
//!   `at` (the claim's admission, a little before its commit), in ms: p50,
//!   p99, max. Also, per coupon, receive time − when its claim's `201`
//!   reached the bench (`after_201_ms`): the `201` leaves right after the
//!   commit, so this is close to commit → published, where the first
//!   figure also counts the claim's wait for its group commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

#[derive(Debug)]
struct Args {
    base: String,
    admin_email: String,
    admin_password: String,
    amqp: String,
    namespace: String,
    events: usize,
    claims: usize,
    /// Claims per second in the storm; 0: all at once (256 in flight).
    rate: u64,
    prefetch: u16,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        base: "http://127.0.0.1:8080".into(),
        admin_email: String::new(),
        admin_password: String::new(),
        amqp: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
        namespace: "flashcoupon".into(),
        events: 5_000,
        claims: 5_000,
        rate: 0,
        prefetch: 512,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--base" => a.base = value,
            "--admin-email" => a.admin_email = value,
            "--admin-password" => a.admin_password = value,
            "--amqp" => a.amqp = value,
            "--namespace" => a.namespace = value,
            "--events" => a.events = value.parse()?,
            "--claims" => a.claims = value.parse()?,
            "--rate" => a.rate = value.parse()?,
            "--prefetch" => a.prefetch = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

fn payment(i: usize) -> Vec<u8> {
    json!({"event_id": format!("bench-pay-{i}"), "type": "payment.succeeded",
           "order_id": format!("bench-order-{i}"), "occurred_at": "2026-12-02T10:00:00Z"})
    .to_string()
    .into_bytes()
}

/// Publish `bodies` to `queue` (persistent), keeping up to 1,000 confirms
/// outstanding, and wait for them all.
async fn publish_all(channel: &Channel, queue: &str, bodies: Vec<Vec<u8>>) -> anyhow::Result<()> {
    let mut pending = std::collections::VecDeque::new();
    for body in bodies {
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
        pending.push_back(confirm);
        if pending.len() >= 1_000
            && let Some(c) = pending.pop_front()
        {
            anyhow::ensure!(c.await?.is_ack(), "the broker refused a message");
        }
    }
    for c in pending {
        anyhow::ensure!(c.await?.is_ack(), "the broker refused a message");
    }
    Ok(())
}

async fn http_json(req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let r = req.send().await?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "{status}: {body}");
    Ok(body)
}

async fn metric(http: &reqwest::Client, base: &str, line: &str) -> anyhow::Result<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0.0))
}

async fn applied(http: &reqwest::Client, base: &str) -> anyhow::Result<f64> {
    metric(
        http,
        base,
        "flashcoupon_payment_events_total{result=\"applied\",source=\"amqp\"}",
    )
    .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(60))
        .build()?;
    let conn = Connection::connect(&a.amqp, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };

    // Baseline: RabbitMQ with a consumer that does nothing but ack.
    let baseline_queue = format!("{}.bench-baseline", a.namespace);
    channel
        .queue_declare(
            baseline_queue.as_str().into(),
            durable,
            FieldTable::default(),
        )
        .await?;
    let consumer_channel = conn.create_channel().await?;
    consumer_channel
        .basic_qos(a.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = consumer_channel
        .basic_consume(
            baseline_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let n = a.events;
    let acking = tokio::spawn(async move {
        let mut acked = 0;
        while acked < n {
            match consumer.next().await {
                Some(Ok(d)) => {
                    d.acker.ack(BasicAckOptions::default()).await?;
                    acked += 1;
                }
                Some(Err(e)) => return Err(anyhow::Error::from(e)),
                None => anyhow::bail!("the consumer ended"),
            }
        }
        Ok(Instant::now())
    });
    let started = Instant::now();
    publish_all(&channel, &baseline_queue, (0..n).map(payment).collect()).await?;
    let done = acking.await??;
    let baseline_rate = n as f64 / (done - started).as_secs_f64();
    consumer_channel.close(200, "done".into()).await?;
    channel
        .queue_delete(
            baseline_queue.as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await?;
    eprintln!("baseline: {baseline_rate:.0} events/s");

    // The orders: one reserved coupon each.
    let admin = http_json(
        http.post(format!("{}/api/v1/auth/login", a.base))
            .json(&json!({"email": a.admin_email, "password": a.admin_password})),
    )
    .await?["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let users = a.events.max(a.claims);
    let mut tokens = Vec::with_capacity(users);
    let run = uuid::Uuid::now_v7().simple().to_string();
    while tokens.len() < users {
        let count = (users - tokens.len()).min(10_000);
        let made = http_json(
            http.post(format!("{}/api/v1/admin/users/bulk", a.base))
                .bearer_auth(&admin)
                .json(
                    &json!({"count": count, "email_prefix": format!("b{run}-{}", tokens.len()),
                              "password": "password-123"}),
                ),
        )
        .await?;
        for u in made["users"].as_array().into_iter().flatten() {
            tokens.push(u["token"].as_str().unwrap_or_default().to_owned());
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let campaign = |name: &str, total: usize| {
        http.post(format!("{}/api/v1/campaigns", a.base))
            .bearer_auth(&admin)
            .json(&json!({
                "name": name, "discount": {"type": "fixed", "amount": 1000},
                "total_quantity": total, "per_user_limit": 1,
                "issue_starts_at": fmt(now - time::Duration::minutes(1)),
                "issue_ends_at": fmt(now + time::Duration::hours(1)), "valid_days": 30,
            }))
    };
    let orders = http_json(campaign("bench orders", a.events)).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let gate = Arc::new(Semaphore::new(64));
    let mut setup = Vec::new();
    for (i, token) in tokens.iter().take(a.events).enumerate() {
        let permit = gate.clone().acquire_owned().await?;
        let (http, base, token, orders) =
            (http.clone(), a.base.clone(), token.clone(), orders.clone());
        setup.push(tokio::spawn(async move {
            let coupon = http_json(
                http.post(format!("{base}/api/v1/campaigns/{orders}/issue"))
                    .bearer_auth(&token),
            )
            .await?["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            http_json(
                http.post(format!("{base}/api/v1/coupons/{coupon}/reserve"))
                    .bearer_auth(&token)
                    .json(
                        &json!({"order_id": format!("bench-order-{i}"), "order_amount": 10_000,
                                  "ttl_secs": 3_600}),
                    ),
            )
            .await?;
            drop(permit);
            anyhow::Ok(())
        }));
    }
    for t in setup {
        t.await??;
    }
    eprintln!("{} orders reserved", a.events);

    // Payments: published the same way; done when the last took effect.
    let payments_queue = format!("{}.payments", a.namespace);
    let before = applied(&http, &a.base).await?;
    let started = Instant::now();
    publish_all(&channel, &payments_queue, (0..n).map(payment).collect()).await?;
    loop {
        if applied(&http, &a.base).await? - before >= n as f64 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the payments did not all take effect within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let payments_rate = n as f64 / started.elapsed().as_secs_f64();
    eprintln!("payments: {payments_rate:.0} events/s");

    // The payments' coupon.used are still going out: let the relay finish
    // (no new publish for half a second), so the storm starts on an empty
    // outbox.
    let mut last = -1.0;
    loop {
        let published = metric(&http, &a.base, "flashcoupon_outbox_published_total").await?;
        if published == last {
            break;
        }
        last = published;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Outbox lag under a claim storm.
    let tap = format!("{}.bench-tap", a.namespace);
    let events = format!("{}.events", a.namespace);
    channel
        .exchange_declare(
            events.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(tap.as_str().into(), durable, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            tap.as_str().into(),
            events.as_str().into(),
            "coupon.issued".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let storm = http_json(campaign("bench storm", a.claims)).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let tap_channel = conn.create_channel().await?;
    tap_channel
        .basic_qos(1_000, BasicQosOptions::default())
        .await?;
    let mut tap_consumer = tap_channel
        .basic_consume(
            tap.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let storm_id = storm.clone();
    let claims = a.claims;
    let reading = tokio::spawn(async move {
        let mut lag = Histogram::<u64>::new(3)?;
        let mut received = std::collections::HashMap::with_capacity(claims);
        while (lag.len() as usize) < claims {
            let Some(d) = tokio::time::timeout(Duration::from_secs(60), tap_consumer.next())
                .await
                .map_err(|_| anyhow::anyhow!("no coupon.issued for 60 s"))?
            else {
                anyhow::bail!("the tap ended");
            };
            let d = d?;
            let now = Instant::now();
            let event: Value = serde_json::from_slice(&d.data)?;
            if event["data"]["campaign_id"] != storm_id.as_str() {
                continue;
            }
            if let Some(coupon) = event["data"]["coupon_id"].as_str() {
                received.insert(coupon.to_owned(), now);
            }
            let at = time::OffsetDateTime::parse(
                event["at"].as_str().unwrap_or_default(),
                &time::format_description::well_known::Rfc3339,
            )?;
            let ms = (time::OffsetDateTime::now_utc() - at)
                .whole_microseconds()
                .max(0) as u64;
            lag.record(ms)?;
        }
        anyhow::Ok((lag, received))
    });
    let storm_gate = Arc::new(Semaphore::new(256));
    let mut claiming = Vec::new();
    let storm_started = Instant::now();
    for (i, token) in tokens.iter().take(a.claims).enumerate() {
        if a.rate > 0 {
            let due = storm_started + Duration::from_secs_f64(i as f64 / a.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        let permit = storm_gate.clone().acquire_owned().await?;
        let (http, base, token, storm) =
            (http.clone(), a.base.clone(), token.clone(), storm.clone());
        claiming.push(tokio::spawn(async move {
            let r = http
                .post(format!("{base}/api/v1/campaigns/{storm}/issue"))
                .bearer_auth(&token)
                .send()
                .await?;
            let answered = Instant::now();
            drop(permit);
            anyhow::ensure!(r.status().as_u16() == 201, "a storm claim was not issued");
            let coupon: Value = r.json().await?;
            anyhow::Ok((
                coupon["id"].as_str().unwrap_or_default().to_owned(),
                answered,
            ))
        }));
    }
    let mut answered = Vec::with_capacity(claiming.len());
    for c in claiming {
        answered.push(c.await??);
    }
    let storm_secs = storm_started.elapsed().as_secs_f64();
    let (lag, received) = reading.await??;
    let mut after_201 = Histogram::<u64>::new(3)?;
    for (coupon, at) in &answered {
        let got = received
            .get(coupon)
            .ok_or_else(|| anyhow::anyhow!("no coupon.issued for coupon {coupon}"))?;
        after_201.record(got.saturating_duration_since(*at).as_micros() as u64)?;
    }
    channel
        .queue_delete(tap.as_str().into(), QueueDeleteOptions::default())
        .await?;
    let ms = |q: f64| lag.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{}",
        json!({
            "events": n,
            "baseline_events_per_s": baseline_rate.round(),
            "payments_events_per_s": payments_rate.round(),
            "ratio": (payments_rate / baseline_rate * 1000.0).round() / 1000.0,
            "claims": a.claims,
            "claims_per_s": (a.claims as f64 / storm_secs).round(),
            "rate": a.rate,
            "outbox_lag_ms": {"p50": ms(0.5), "p99": ms(0.99), "max": lag.max() as f64 / 1000.0},
            "after_201_ms": {
                "p50": after_201.value_at_quantile(0.5) as f64 / 1000.0,
                "p99": after_201.value_at_quantile(0.99) as f64 / 1000.0,
                "max": after_201.max() as f64 / 1000.0,
            },
        })
    );
    conn.close(200, "done".into()).await?;
    Ok(())
}
