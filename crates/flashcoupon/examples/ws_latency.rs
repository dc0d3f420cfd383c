//! Push latency with many connected notification sockets.
//!
//! ```text
//! cargo run --release --example ws_latency -- --base http://127.0.0.1:8080 \
//!     --admin-email … --admin-password … --clients 10000 --claims 2000 --rate 500
//! ```
//!
//! Opens `--clients` WebSockets on `/api/v1/notifications/ws`, one per user
//! (bulk-created), then has `--claims` of those users claim a coupon, paced
//! at `--rate` claims a second, and times, per claim:
//! - **sent → pushed**: from sending the claim to its socket receiving
//!   `coupon.issued`. The server commits before it publishes, so this is an
//!   upper bound of "commit → client", the figure the issue targets;
//! - **answered → pushed**: from the 201 to the push (0 when the push came first).
//!
//! Prints one JSON line of percentiles (ms), for `bench/ws-latency.sh`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Debug)]
struct Args {
    base: String,
    admin_email: String,
    admin_password: String,
    clients: usize,
    claims: usize,
    rate: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        base: "http://127.0.0.1:8080".into(),
        admin_email: String::new(),
        admin_password: String::new(),
        clients: 10_000,
        claims: 2_000,
        rate: 500,
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
            "--clients" => a.clients = value.parse()?,
            "--claims" => a.claims = value.parse()?,
            "--rate" => a.rate = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    anyhow::ensure!(a.claims <= a.clients, "--claims must not exceed --clients");
    Ok(a)
}

/// When each user's push arrived.
type Arrivals = Arc<Mutex<HashMap<usize, Instant>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let admin: Value = http
        .post(format!("{}/api/v1/auth/login", a.base))
        .json(&json!({"email": a.admin_email, "password": a.admin_password}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let admin = admin["token"].as_str().unwrap_or_default().to_owned();

    // Users, 10,000 per bulk call.
    let mut tokens = Vec::with_capacity(a.clients);
    let run = uuid::Uuid::now_v7().simple().to_string();
    while tokens.len() < a.clients {
        let count = (a.clients - tokens.len()).min(10_000);
        let made: Value = http
            .post(format!("{}/api/v1/admin/users/bulk", a.base))
            .bearer_auth(&admin)
            .json(
                &json!({"count": count, "email_prefix": format!("ws{run}-{}", tokens.len()),
                "password": "password-123"}),
            )
            .send()
            .await?
            .error_for_status()?
            .json()
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
    let campaign: Value = http
        .post(format!("{}/api/v1/campaigns", a.base))
        .bearer_auth(&admin)
        .json(&json!({
            "name": "push latency", "discount": {"type": "fixed", "amount": 1000},
            "total_quantity": a.claims, "per_user_limit": 1,
            "issue_starts_at": fmt(now - time::Duration::minutes(1)),
            "issue_ends_at": fmt(now + time::Duration::hours(1)), "valid_days": 30,
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let campaign = campaign["id"].as_str().unwrap_or_default().to_owned();

    // Connect every client (200 handshakes at a time) and keep reading.
    let arrivals: Arrivals = Arc::default();
    let ws_url = format!(
        "{}/api/v1/notifications/ws",
        a.base.replace("http://", "ws://")
    );
    let connecting = Arc::new(Semaphore::new(200));
    let started = Instant::now();
    let mut ready = Vec::with_capacity(a.clients);
    for (i, token) in tokens.iter().enumerate() {
        let permit = connecting.clone().acquire_owned().await?;
        let mut req = ws_url.as_str().into_client_request()?;
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse()?);
        let arrivals = arrivals.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        ready.push(rx);
        tokio::spawn(async move {
            let Ok((mut ws, _)) = tokio_tungstenite::connect_async(req).await else {
                eprintln!("client {i}: could not connect");
                return;
            };
            let mut tx = Some(tx);
            drop(permit);
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else { continue };
                if text.contains("\"ready\"") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                } else if text.contains("\"coupon.issued\"") {
                    arrivals
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(i, Instant::now());
                }
            }
        });
    }
    let mut connected = 0;
    for rx in ready {
        if rx.await.is_ok() {
            connected += 1;
        }
    }
    eprintln!(
        "{connected} sockets ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Claims, paced.
    let gap = Duration::from_secs_f64(1.0 / a.rate.max(1) as f64);
    let begin = tokio::time::Instant::now();
    let mut claims = Vec::with_capacity(a.claims);
    for (i, token) in tokens.iter().take(a.claims).enumerate() {
        tokio::time::sleep_until(begin + gap * i as u32).await;
        let http = http.clone();
        let url = format!("{}/api/v1/campaigns/{campaign}/issue", a.base);
        let token = token.clone();
        claims.push(tokio::spawn(async move {
            let sent = Instant::now();
            let r = http.post(url).bearer_auth(token).send().await;
            let answered = Instant::now();
            let ok = r.is_ok_and(|r| r.status() == reqwest::StatusCode::CREATED);
            (i, sent, answered, ok)
        }));
    }
    let mut outcomes = Vec::with_capacity(a.claims);
    for c in claims {
        outcomes.push(c.await?);
    }
    // Give the last pushes a moment to land.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut sent_to_push = Histogram::<u64>::new(3)?;
    let mut answer_to_push = Histogram::<u64>::new(3)?;
    let (mut issued, mut missing) = (0, 0);
    for (i, sent, answered, ok) in outcomes {
        if !ok {
            continue;
        }
        issued += 1;
        match arrivals.get(&i) {
            Some(at) => {
                sent_to_push.record(at.duration_since(sent).as_micros() as u64)?;
                answer_to_push.record(at.saturating_duration_since(answered).as_micros() as u64)?;
            }
            None => missing += 1,
        }
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{}",
        json!({
            "clients": connected, "claims": a.claims, "issued": issued, "pushes_missing": missing,
            "rate": a.rate,
            "sent_to_push_ms": {"p50": ms(&sent_to_push, 0.5), "p99": ms(&sent_to_push, 0.99),
                "max": ms(&sent_to_push, 1.0)},
            "answer_to_push_ms": {"p50": ms(&answer_to_push, 0.5), "p99": ms(&answer_to_push, 0.99),
                "max": ms(&answer_to_push, 1.0)},
        })
    );
    Ok(())
}
