//! Shop-side webhooks: admins register endpoints; events they chose are
//! enqueued in the record (`webhook_deliveries`, unique per endpoint and
//! event, so every instance may enqueue and one row results) and POSTed by
//! a deliverer on every instance, which leases due rows so that one instance
//! sends each attempt.
//!
//! Every request carries `X-Flashcoupon-Timestamp` (Unix seconds) and
//! `X-Flashcoupon-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//! A non-2xx answer, a timeout or a refused connection is retried with
//! exponential backoff until the delivery is a day old; every attempt is
//! logged. Nothing here runs on the claim path.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::events::Event;
use crate::store::Store;
use crate::store::StoreError;
use crate::store::{AttemptRecord, LeasedDelivery, NewDelivery, NextStep, WebhookRecord};
use crate::tasks::Shutdown;

use super::egress::{Egress, Refused};

/// Payload formats: our JSON envelope, or a chat message.
pub const FORMATS: &[&str] = &["json", "discord", "slack"];

/// One attempt may take this long before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts sent at once by one instance.
const PARALLEL: u32 = 16;
/// Backoff never waits longer than this between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long the endpoint list is cached (other instances' changes show up within this).
const CACHE_FOR: Duration = Duration::from_secs(2);

type HmacSha256 = Hmac<Sha256>;

/// The signature header's value for a request body sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC accepts keys of any length.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before attempt `attempt + 1`: base × 2^(attempt − 1), capped.
pub fn backoff(base: Duration, attempt: i64) -> Duration {
    let doublings = attempt.clamp(1, 32) as u32 - 1;
    base.saturating_mul(1u32 << doublings.min(20))
        .min(MAX_BACKOFF)
}

/// The request body for one event in an endpoint's format.
pub fn body_for(format: &str, event: &Event, text: &str) -> String {
    let value = match format {
        "discord" => json!({"username": "flashcoupon", "content": text}),
        "slack" => json!({"text": text}),
        _ => json!({
            "id": event.id,
            "type": event.kind,
            "at": event.at,
            "campaign_id": event.campaign,
            "data": event.data,
            "text": text,
        }),
    };
    value.to_string()
}

#[derive(Debug)]
pub struct Webhooks {
    store: Arc<dyn Store>,
    clock: Clock,
    client: reqwest::Client,
    /// Judges every destination (see `egress`).
    egress: Egress,
    wake: Notify,
    cache: Mutex<Option<(Instant, Arc<Vec<WebhookRecord>>)>>,
    retry_base: Duration,
    give_up: Duration,
    poll: Duration,
}

impl Webhooks {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        retry_base: Duration,
        give_up: Duration,
        poll: Duration,
        egress: Egress,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            clock,
            egress: egress.clone(),
            client: reqwest::Client::builder()
                .dns_resolver(Arc::new(egress))
                // A proxy from the environment would resolve the target
                // itself, past the check above.
                .no_proxy()
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("flashcoupon-webhooks/", env!("CARGO_PKG_VERSION")))
                .build()?,
            wake: Notify::new(),
            cache: Mutex::new(None),
            retry_base,
            give_up,
            poll,
        })
    }

    /// The registered endpoints, cached briefly.
    pub async fn endpoints(&self) -> Result<Arc<Vec<WebhookRecord>>, StoreError> {
        if let Some((at, list)) = &*self.lock_cache()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(list.clone());
        }
        let list = Arc::new(self.store.webhooks().await?);
        *self.lock_cache() = Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// An endpoint was added or removed here: read the list again next time.
    pub fn invalidate(&self) {
        *self.lock_cache() = None;
    }

    /// Enqueue `event` for every endpoint that asked for its type and that
    /// `accept` agrees to; `once_key` names the event, so enqueuing it again
    /// (from another instance, after a restart) adds nothing.
    pub async fn enqueue(
        &self,
        event: &Event,
        once_key: &str,
        text: &str,
        accept: impl Fn(&WebhookRecord) -> bool,
    ) -> Result<u64, StoreError> {
        let rows = self.deliveries_for(event, once_key, text, accept).await?;
        let added = self.store.enqueue_deliveries(&rows).await?;
        if added > 0 {
            self.wake();
        }
        Ok(added)
    }

    /// The deliveries of `event`, to write in the transaction of the change
    /// it reports (then [`Webhooks::wake`] the deliverer).
    pub async fn deliveries_for(
        &self,
        event: &Event,
        once_key: &str,
        text: &str,
        accept: impl Fn(&WebhookRecord) -> bool,
    ) -> Result<Vec<NewDelivery>, StoreError> {
        let endpoints = self.endpoints().await?;
        Ok(endpoints
            .iter()
            .filter(|w| w.events.iter().any(|e| e == event.kind.as_str()) && accept(w))
            .map(|w| NewDelivery {
                id: uuid::Uuid::now_v7(),
                webhook: w.id,
                event_id: event.id,
                event_type: event.kind.as_str().to_owned(),
                once_key: once_key.to_owned(),
                body: body_for(&w.format, event, text),
                at: self.clock.now(),
                trace: event.trace.clone(),
            })
            .collect())
    }

    /// New deliveries were written: look for due ones now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The deliverer: lease due deliveries and send them, up to
    /// [`PARALLEL`] at a time, so one hanging endpoint holds one slot only.
    /// At shutdown it leases nothing more and finishes the sends under way
    /// (each bounded by its request timeout).
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut sending = JoinSet::new();
        while !shutdown.is_begun() {
            while sending.try_join_next().is_some() {}
            let free = PARALLEL.saturating_sub(sending.len() as u32);
            if free > 0 {
                let now = self.clock.now();
                let lease_until = now.plus_millis((REQUEST_TIMEOUT * 3).as_millis() as i64);
                match self.store.lease_deliveries(now, lease_until, free).await {
                    Ok(batch) => {
                        let full = batch.len() as u32 == free;
                        for d in batch {
                            let me = self.clone();
                            sending.spawn(async move { me.deliver(d).await });
                        }
                        if full {
                            // More may be due: look again once a slot frees.
                            if sending.join_next().await.is_some() {
                                continue;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "webhooks: cannot lease deliveries; will retry");
                    }
                }
            }
            tokio::select! {
                () = shutdown.begun() => {}
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
                Some(_) = sending.join_next(), if !sending.is_empty() => {}
            }
        }
        while sending.join_next().await.is_some() {}
    }

    /// POST one delivery. The log keeps what the shop needs (the status, a
    /// timeout, "could not connect", a refused destination), never the
    /// transport's own words, which would describe our network.
    async fn send(
        &self,
        endpoint: &WebhookRecord,
        d: &LeasedDelivery,
        timestamp: i64,
    ) -> (Option<i64>, Option<String>) {
        // An address written in the URL never goes through the resolver.
        let literal = reqwest::Url::parse(&endpoint.url).ok().and_then(|u| {
            let host = u.host_str()?;
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .ok()
        });
        if literal.is_some_and(|ip| !self.egress.permits(ip)) {
            return (None, Some(Refused.to_string()));
        }
        let mut request = self.client.post(&endpoint.url);
        if let Some(trace) = &d.trace {
            request = request
                .header("X-Request-Id", &trace.request_id)
                .header("traceparent", &trace.traceparent);
        }
        let answer = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Flashcoupon-Event", &d.event_type)
            .header("X-Flashcoupon-Delivery", d.id.to_string())
            .header("X-Flashcoupon-Timestamp", timestamp.to_string())
            .header(
                "X-Flashcoupon-Signature",
                sign(&endpoint.secret, timestamp, &d.body),
            )
            .body(d.body.clone())
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => (Some(r.status().as_u16() as i64), None),
            Ok(r) => (
                Some(r.status().as_u16() as i64),
                Some(format!("the endpoint answered {}", r.status())),
            ),
            Err(e) if e.is_timeout() => (None, Some("timed out".to_owned())),
            Err(e) if refused(&e) => (None, Some(Refused.to_string())),
            Err(e) if e.is_connect() => {
                (None, Some("could not connect to the endpoint".to_owned()))
            }
            Err(_) => (None, Some("the request failed".to_owned())),
        }
    }

    async fn deliver(&self, d: LeasedDelivery) {
        let endpoint = match self.store.webhook(d.webhook).await {
            Ok(Some(w)) => w,
            Ok(None) => {
                // Deleted (perhaps after another instance enqueued this): close it.
                let attempt = AttemptRecord {
                    attempt: d.attempts,
                    at: self.clock.now(),
                    status_code: None,
                    error: Some("the endpoint was deleted".into()),
                    duration_ms: 0,
                };
                if let Err(e) = self
                    .store
                    .record_attempt(d.id, &attempt, NextStep::GiveUp)
                    .await
                {
                    tracing::debug!(error = %e, "webhooks: cannot close a delivery; the lease will expire");
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "webhooks: cannot read an endpoint; the lease will expire");
                return;
            }
        };
        let sent_at = self.clock.now();
        let timestamp = sent_at.0.div_euclid(1000);
        let started = Instant::now();
        let (status_code, error) = self.send(&endpoint, &d, timestamp).await;
        let now = self.clock.now();
        let next = if error.is_none() {
            NextStep::Delivered
        } else if now.0 - d.created_at.0 >= self.give_up.as_millis() as i64 {
            NextStep::GiveUp
        } else {
            NextStep::RetryAt(
                now.plus_millis(backoff(self.retry_base, d.attempts).as_millis() as i64),
            )
        };
        let attempt = AttemptRecord {
            attempt: d.attempts,
            at: sent_at,
            status_code,
            error,
            duration_ms: started.elapsed().as_millis() as i64,
        };
        if let Err(e) = self.store.record_attempt(d.id, &attempt, next).await {
            tracing::warn!(error = %e, delivery = %d.id, "webhooks: cannot log an attempt; it will be retried");
        }
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Arc<Vec<WebhookRecord>>)>> {
        super::lock(&self.cache)
    }
}

/// Did the egress check refuse this request's destination?
fn refused(e: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<Refused>() {
            return true;
        }
        cause = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), Duration::from_secs(30));
        assert_eq!(backoff(base, 2), Duration::from_secs(60));
        assert_eq!(backoff(base, 4), Duration::from_secs(240));
        assert_eq!(backoff(base, 30), MAX_BACKOFF);
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // The expected value is independent of this code: computed with
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac secret`.
        assert_eq!(
            sign("secret", 1_700_000_000, "{}"),
            "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }
}
