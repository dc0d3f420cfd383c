//! The sale's storm, open loop: each buyer orders at their planned instant,
//! pays at once if they are a payer, and if they found no unit tries again
//! after their wait (a new `Idempotency-Key` after a refusal, the same one
//! after no answer, which may have placed the order). Meanwhile one task
//! reads the sale's stock every `--poll-every`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use super::plan::Buyer;
use super::verify::StockPoll;
use crate::loadtest::client::{Aim, Shooter, Shot};

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Order,
    Pay,
}

/// One request of the storm and its answer.
#[derive(Debug, Clone)]
pub struct Sample {
    pub user: usize,
    pub kind: Kind,
    pub key: String,
    pub shot: Shot,
}

impl Sample {
    /// The order id and seq of a 201 or the order id of a paid 200.
    pub fn order(&self) -> Option<(String, u32)> {
        let ok = match self.kind {
            Kind::Order => 201,
            Kind::Pay => 200,
        };
        self.shot.created(ok)
    }
}

/// Live counts for the progress bar: placed, paid, refused, errors.
#[derive(Debug, Default)]
pub struct Counts([AtomicU64; 4]);

impl Counts {
    fn add(&self, slot: usize) {
        self.0[slot].fetch_add(1, Ordering::Relaxed);
    }

    pub fn line(&self, remaining: u64) -> String {
        let n = |i: usize| self.0[i].load(Ordering::Relaxed);
        format!(
            "placed {} · paid {} · refused {} · errors {} · in stock {remaining}",
            n(0),
            n(1),
            n(2),
            n(3)
        )
    }
}

/// Everything a buyer's task shares with the others.
#[derive(Debug, Clone)]
pub struct Storm {
    pub shooter: Shooter,
    pub permits: Arc<Semaphore>,
    pub opening: Instant,
    pub run_id: String,
    pub counts: Arc<Counts>,
    pub progress: ProgressBar,
}

/// One buyer, from their first order to their last answer.
pub async fn buy(
    storm: Storm,
    buyer: Buyer,
    target: String,
    sale: String,
    token: String,
    coupon: Option<String>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut body = serde_json::Map::new();
    if let Some(points) = buyer.points_asked() {
        body.insert("points".into(), json!(points));
    }
    if let Some(c) = &coupon {
        body.insert("coupon_id".into(), json!(c));
    }
    // Made once: a retry differs in its key only. Only a token or key that
    // is not a header value fails here.
    let Ok(mut order) = Aim::post(&format!("{target}/api/v1/sales/{sale}/orders"), &token) else {
        storm.counts.add(3);
        return samples;
    };
    if !body.is_empty() {
        order = order.json(&Value::Object(body));
    }
    let mut due = storm.opening + buyer.at;
    let mut key_no = 0;
    for attempt in 0..=buyer.waits.len() {
        let key = format!("{}-{}-{key_no}", storm.run_id, buyer.user);
        let Ok(aim) = order.clone().key(&key) else {
            storm.counts.add(3);
            break;
        };
        let shot = storm
            .shooter
            .fire(&aim, due, storm.opening, &storm.permits)
            .await;
        let code = shot.code();
        let status = shot.status;
        let placed = status == Some(201);
        let sample = Sample {
            user: buyer.user,
            kind: Kind::Order,
            key,
            shot,
        };
        let order = sample.order();
        samples.push(sample);
        match (status, code.as_deref()) {
            (Some(201), _) => storm.counts.add(0),
            (Some(409 | 429), _) => storm.counts.add(2),
            _ => storm.counts.add(3),
        }
        if placed {
            if let (true, Some((id, _))) = (buyer.pays, order) {
                let Ok(aim) = Aim::post(&format!("{target}/api/v1/orders/{id}/pay"), &token) else {
                    storm.counts.add(3);
                    break;
                };
                let shot = storm
                    .shooter
                    .fire(&aim, Instant::now(), storm.opening, &storm.permits)
                    .await;
                storm
                    .counts
                    .add(if shot.status == Some(200) { 1 } else { 3 });
                samples.push(Sample {
                    user: buyer.user,
                    kind: Kind::Pay,
                    key: id,
                    shot,
                });
            }
            break;
        }
        match (status, code.as_deref()) {
            // Holds a unit already (an earlier answer was lost): done.
            (Some(409), Some("limit_reached")) => break,
            // Refused: next time is a new order.
            (Some(409 | 429), _) => key_no += 1,
            // No answer or a server error: the same key, in case it was placed.
            _ => {}
        }
        match buyer.waits.get(attempt) {
            Some(wait) => due = Instant::now() + *wait,
            None => break,
        }
    }
    storm.progress.inc(1);
    samples
}

/// Read the sale every `every` (round robin over the targets) until `stop`
/// is set; every read that answered, in order.
pub async fn poll_stock(
    client: reqwest::Client,
    targets: Vec<String>,
    sale: String,
    opening: Instant,
    every: Duration,
    polls: Arc<Mutex<Vec<StockPoll>>>,
    remaining: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0.. {
        tick.tick().await;
        if let Some(p) = read_stock(&client, &targets[n % targets.len()], &sale, opening).await {
            remaining.store(p.remaining, Ordering::Relaxed);
            polls.lock().await.push(p);
        }
    }
}

/// The sale's live numbers, stamped with when the answer came (ms after the
/// opening): the numbers were true at some instant before that.
pub async fn read_stock(
    client: &reqwest::Client,
    target: &str,
    sale: &str,
    opening: Instant,
) -> Option<StockPoll> {
    let r = client
        .get(format!("{target}/api/v1/sales/{sale}"))
        .send()
        .await
        .ok()?;
    if r.status().as_u16() != 200 {
        return None;
    }
    let s: Value = r.json().await.ok()?;
    let now = Instant::now();
    let at_ms = if now >= opening {
        now.duration_since(opening).as_secs_f64() * 1e3
    } else {
        -(opening.duration_since(now).as_secs_f64() * 1e3)
    };
    Some(StockPoll {
        at_ms,
        sold: s["sold_count"].as_u64()?,
        remaining: s["remaining_quantity"].as_u64()?,
        total: s["total_quantity"].as_u64()?,
    })
}
