//! Talking to the servers, for every scenario: the admin's log-in, shoppers
//! from the bulk endpoint, one request fired at its planned instant (open
//! loop: its latency counts from that instant, so time queued in the
//! generator is not hidden), and reading something back for every user.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Users per bulk call (the endpoint's maximum is 10,000).
const BULK_BATCH: usize = 2_000;

/// A progress bar, or a hidden one with `--quiet`.
pub fn bar(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_prefix(what.to_owned());
    b
}

/// The body of an answer that must have status `want`.
pub async fn expect_json(r: reqwest::Response, want: u16, what: &str) -> anyhow::Result<Value> {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    if status != want {
        bail!("{what}: expected {want}, got {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: not JSON"))
}

/// Milliseconds since the Unix epoch, on this machine's clock.
pub fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The base URLs without a trailing slash.
pub fn bases(targets: &[String]) -> Vec<String> {
    targets
        .iter()
        .map(|t| t.trim_end_matches('/').to_owned())
        .collect()
}

pub fn http_client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Log in as the admin; their token.
pub async fn admin_token(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    Ok(expect_json(login, 200, "admin log-in").await?["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// A shopper made for the run.
#[derive(Debug, Clone)]
pub struct Shopper {
    pub id: String,
    pub token: String,
}

/// `count` fresh shoppers from the bulk endpoint (with a progress bar).
pub async fn provision(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    count: usize,
    run_id: &str,
    quiet: bool,
) -> anyhow::Result<Vec<Shopper>> {
    let provisioning = bar(quiet, count as u64, "users");
    let mut shoppers = Vec::with_capacity(count);
    for (n, start) in (0..count).step_by(BULK_BATCH).enumerate() {
        let batch = BULK_BATCH.min(count - start);
        let r = client
            .post(format!("{base}/api/v1/admin/users/bulk"))
            .bearer_auth(admin)
            .json(&json!({"count": batch, "email_prefix": format!("lt-{run_id}-{n}"), "password": format!("lt-{run_id}-pw")}))
            .send()
            .await?;
        let users = expect_json(r, 201, "bulk users").await?;
        for u in users["users"].as_array().into_iter().flatten() {
            shoppers.push(Shopper {
                id: u["user_id"].as_str().unwrap_or_default().to_owned(),
                token: u["token"].as_str().unwrap_or_default().to_owned(),
            });
        }
        provisioning.inc(batch as u64);
    }
    provisioning.finish_and_clear();
    anyhow::ensure!(
        shoppers.len() == count,
        "provisioned {} of {count} users",
        shoppers.len()
    );
    Ok(shoppers)
}

/// The storm's client: hyper's pooled HTTP/1.1 client fed requests made
/// of parts prepared before the storm ([`Aim`]), answers read into the
/// three fields a storm looks at ([`Answer`]). Set-up and verification use
/// reqwest; for the storm it cost several times wrk's CPU per request (a
/// URL parsed and headers built per request, its own layers, a JSON tree
/// per answer), and the generator, not the server, set the latency.
#[derive(Debug, Clone)]
pub struct Shooter {
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One request, ready before the storm.
#[derive(Debug, Clone)]
pub struct Aim {
    uri: Uri,
    auth: HeaderValue,
    key: Option<HeaderValue>,
    body: Option<Bytes>,
}

impl Aim {
    /// `POST url` as the holder of `token`.
    pub fn post(url: &str, token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            uri: url.parse().with_context(|| format!("not a URL: {url}"))?,
            auth: HeaderValue::try_from(format!("Bearer {token}"))?,
            key: None,
            body: None,
        })
    }

    /// With this `Idempotency-Key`.
    pub fn key(mut self, key: &str) -> anyhow::Result<Self> {
        self.key = Some(HeaderValue::try_from(key)?);
        Ok(self)
    }

    /// With this JSON body.
    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some(Bytes::from(body.to_string()));
        self
    }
}

/// What a storm reads of an answer: a created thing's id and seq, or the
/// error's code.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Answer {
    pub id: Option<String>,
    pub seq: Option<u64>,
    error: Option<ErrorPart>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct ErrorPart {
    code: Option<String>,
}

/// What one request of the storm saw.
#[derive(Debug, Clone)]
pub struct Shot {
    /// HTTP status, or `None` when the request got no answer at all.
    pub status: Option<u16>,
    pub answer: Answer,
    /// Sent and answered, in ms after the opening.
    pub sent_ms: f64,
    pub done_ms: f64,
    /// From the planned send instant to the answer (queueing included).
    pub latency_us: u64,
}

impl Shot {
    /// The error code of a 4xx/5xx, if any.
    pub fn code(&self) -> Option<String> {
        self.answer.error.as_ref().and_then(|e| e.code.clone())
    }

    /// The created thing's id and seq, if the answer was `want`.
    pub fn created(&self, want: u16) -> Option<(String, u32)> {
        if self.status != Some(want) {
            return None;
        }
        Some((self.answer.id.clone()?, self.answer.seq? as u32))
    }
}

impl Shooter {
    /// Up to `connections` kept-alive connections per server.
    pub fn new(connections: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(connections)
                .build(connector),
        }
    }

    /// Send `aim` at `due` (open loop), through one of `permits`.
    pub async fn fire(
        &self,
        aim: &Aim,
        due: Instant,
        opening: Instant,
        permits: &Semaphore,
    ) -> Shot {
        tokio::time::sleep_until(due).await;
        let _permit = permits.acquire().await;
        let sent = Instant::now();
        let answered = tokio::time::timeout(Duration::from_secs(30), self.send(aim)).await;
        let done = Instant::now();
        let (status, answer) = match answered {
            Ok(Some((status, body))) => (
                Some(status),
                serde_json::from_slice(&body).unwrap_or_default(),
            ),
            _ => (None, Answer::default()),
        };
        Shot {
            status,
            answer,
            sent_ms: sent.saturating_duration_since(opening).as_secs_f64() * 1e3,
            done_ms: done.saturating_duration_since(opening).as_secs_f64() * 1e3,
            latency_us: done.saturating_duration_since(due).as_micros() as u64,
        }
    }

    /// The status and body, or `None` if no whole answer came.
    async fn send(&self, aim: &Aim) -> Option<(u16, Bytes)> {
        let mut request =
            hyper::Request::post(aim.uri.clone()).header(AUTHORIZATION, aim.auth.clone());
        if let Some(key) = &aim.key {
            request = request.header("idempotency-key", key.clone());
        }
        let body = match &aim.body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Full::new(body.clone())
            }
            None => Full::new(Bytes::new()),
        };
        let answer = self.client.request(request.body(body).ok()?).await.ok()?;
        let status = answer.status().as_u16();
        let body = answer.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    }
}

/// GET each `(url, token)` (at most `permits` at once) and return the 200
/// bodies in order; any other answer fails the run.
pub async fn read_all(
    client: &reqwest::Client,
    permits: &Arc<Semaphore>,
    reads: Vec<(String, String)>,
    quiet: bool,
    what: &'static str,
) -> anyhow::Result<Vec<Value>> {
    let checking = bar(quiet, reads.len() as u64, "verifying");
    let mut tasks = Vec::with_capacity(reads.len());
    for (url, token) in reads {
        let (client, permits, checking) = (client.clone(), permits.clone(), checking.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire().await;
            let r = client.get(url).bearer_auth(token).send().await?;
            let body = expect_json(r, 200, what).await?;
            checking.inc(1);
            anyhow::Ok(body)
        }));
    }
    let mut bodies = Vec::with_capacity(tasks.len());
    for t in tasks {
        bodies.push(t.await??);
    }
    checking.finish_and_clear();
    Ok(bodies)
}
