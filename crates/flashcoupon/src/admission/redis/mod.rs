//! The scale-out gate: Redis, shared by every instance, one Lua script per
//! claim (`claim.lua`) so window, pause, Idempotency-Key, the user's limit and
//! stock are decided and taken atomically in one round trip.
//!
//! Per drop, seven keys share the hash tag `{<kind>:<id>}` (`{c:<id>}` for a
//! coupon campaign) so the scripts run unchanged on Redis Cluster:
//! - `meta`  (hash) total, limit, starts, ends, paused, epoch, next (the
//!   highest seq handed out), issued;
//! - `free`  (sorted set) seqs handed out whose commit failed, reused lowest first;
//! - `pend`  (sorted set) seqs in flight, scored by when (Redis `TIME`, ms:
//!   one clock for every instance, as is the window's);
//! - `pinfo` (hash) seq → `user|user_seq|unit id|key` of each claim in flight;
//! - `slots` (hash) user → the `user_seq`s held, e.g. `"1 3"`;
//! - `keys`  (hash) `user|key` → `p:<seq>` in flight or `i:<unit id>` durable;
//! - `held`  (hash) seq → `user|user_seq|unit id` of each committed unit, only
//!   for a kind whose units can come back (`meta` has `returns` = 1), so
//!   `giveback.lua` returns exactly that unit, once.
//!
//! Losing Redis' data (a restart without persistence) shows as a missing
//! `meta`: the next claim rebuilds the drop from the record under a lock,
//! after fencing the old generation there ([`Stockpile::fence_and_load`]).
//! Claims that stay in flight too long (their instance died) are settled by
//! the reconciler from what the record holds (`rebuild.rs`).

mod rebuild;
mod scripts;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::{FromRedisValue, Script};

use crate::redis_conn::RedisConn;
use scripts::{Keys, Scripts};

use super::{
    Decision, DropId, Gate, GateError, Held, Kind, Outcome, Rejection, Stock, StockBelowIssued,
    Stockpile, Terms, Ticket, UnitId,
};
use crate::domain::ids::UserId;
use crate::domain::timestamp::Timestamp;
use crate::metrics::Metrics;

/// How long a rebuild may hold its lock before another instance may retry it.
const REBUILD_LOCK_MS: u64 = 60_000;
/// Fields per HSET/ZADD when writing a rebuilt gate.
const CHUNK: usize = 1_000;
/// How long a request repeating an in-flight key waits for its first answer.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(2);

pub struct RedisGate {
    conn: RedisConn,
    prefix: String,
    /// Each kind of stock's record, for rebuilds and the reconciler.
    stockpiles: HashMap<Kind, Arc<dyn Stockpile>>,
    metrics: Metrics,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisGate")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> GateError {
    GateError::Unavailable(format!("the gate is unreachable: {e}"))
}

/// This host's real time in ms. Only to learn how far a test moved the
/// application clock: the window and the ageing of claims read Redis's
/// clock (see `claim.lua`).
fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn parse<T: std::str::FromStr>(raw: Option<&String>) -> Result<T, GateError> {
    raw.and_then(|r| r.parse().ok())
        .ok_or_else(|| GateError::Unavailable("the gate answered something unexpected".into()))
}

impl RedisGate {
    pub fn new(
        conn: RedisConn,
        prefix: &str,
        stockpiles: Vec<Arc<dyn Stockpile>>,
        metrics: Metrics,
    ) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            stockpiles: stockpiles.into_iter().map(|s| (s.kind(), s)).collect(),
            metrics,
            scripts: Scripts::new(),
        }
    }

    fn keys(&self, drop: DropId) -> Keys {
        let p = &self.prefix;
        Keys(
            ["meta", "free", "pend", "pinfo", "slots", "keys", "held"]
                .map(|k| format!("{p}:{{{drop}}}:{k}")),
        )
    }

    fn stockpile(&self, kind: Kind) -> Result<&dyn Stockpile, GateError> {
        self.stockpiles
            .get(&kind)
            .map(|s| &**s)
            .ok_or(GateError::NoSuchDrop)
    }

    async fn run<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<T, GateError> {
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(*k);
        }
        for a in args {
            invocation.arg(a);
        }
        self.metrics.redis_round_trips.inc();
        let mut conn = self.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    /// Run a script on a drop's gate; if the gate is missing (Redis lost
    /// it), rebuild it from the record once and run the script again.
    async fn run_live(
        &self,
        drop: DropId,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<Vec<String>, GateError> {
        for _ in 0..2 {
            let reply: Vec<String> = self.run(script, keys, args).await?;
            if reply.first().map(String::as_str) != Some("missing") {
                return Ok(reply);
            }
            self.rebuild(drop).await?;
        }
        Err(GateError::Unavailable(
            "the gate could not be rebuilt; retry".into(),
        ))
    }

    /// Change one of a drop's settings in its gate.
    async fn update(
        &self,
        drop: DropId,
        field: &str,
        value: String,
    ) -> Result<Vec<String>, GateError> {
        let keys = self.keys(drop);
        self.run_live(
            drop,
            &self.scripts.update,
            &[keys.meta(), keys.free()],
            &[field.to_owned(), value],
        )
        .await
    }
}

#[async_trait]
impl Gate for RedisGate {
    /// A new drop's gate is written the way a lost one is rebuilt: under
    /// the rebuild lock, after fencing, so it cannot race a claim that found
    /// it missing and started a rebuild itself.
    async fn open(&self, drop: DropId, _terms: &Terms) -> Result<(), GateError> {
        self.rebuild(drop).await
    }

    async fn claim(
        &self,
        drop: DropId,
        user: UserId,
        unit: UnitId,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Decision, GateError> {
        let keys = self.keys(drop);
        let waited = std::time::Instant::now();
        let mut rebuilt = false;
        loop {
            let args = [
                user.to_string(),
                key.unwrap_or("").to_owned(),
                (now.0 - wall_ms()).to_string(),
                unit.to_string(),
            ];
            let reply: Vec<String> = self.run(&self.scripts.claim, &keys.all(), &args).await?;
            let rejected = |r| Ok(Decision::Rejected(r));
            return match reply.first().map(String::as_str) {
                Some("admitted") => Ok(Decision::Admitted(Ticket {
                    drop,
                    unit,
                    seq: parse(reply.get(1))?,
                    user_seq: parse(reply.get(2))?,
                    epoch: parse(reply.get(3))?,
                    user,
                    key: key.map(Into::into),
                    done: None,
                })),
                Some("replay") => Ok(Decision::Replay(parse(reply.get(1))?)),
                Some("in_flight") if waited.elapsed() < IN_FLIGHT_WAIT => {
                    // Its first request is committing, maybe on another
                    // instance: ask again shortly for its answer.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Some("in_flight") => Ok(Decision::Retry(
                    "the first request with this Idempotency-Key is still in flight; retry",
                )),
                Some("missing") if !rebuilt => {
                    rebuilt = true;
                    self.rebuild(drop).await?;
                    continue;
                }
                Some("not_open") => rejected(Rejection::NotOpen),
                Some("ended") => rejected(Rejection::Ended),
                Some("paused") => rejected(Rejection::Paused),
                Some("limit_reached") => rejected(Rejection::LimitReached),
                Some("sold_out") => rejected(Rejection::SoldOut),
                _ => Err(GateError::Unavailable(
                    "the gate answered something unexpected; retry".into(),
                )),
            };
        }
    }

    async fn settle(&self, claims: Vec<(Ticket, Outcome)>) {
        let mut groups: HashMap<(DropId, u64), Vec<String>> = HashMap::new();
        let mut drifted = Vec::new();
        for (t, outcome) in claims {
            let out = match outcome {
                Outcome::Committed(id) => format!("c:{id}"),
                Outcome::Failed => "f".to_owned(),
                Outcome::Refused => {
                    drifted.push(t.drop);
                    "x".to_owned()
                }
                // Left in flight: the reconciler asks the record later.
                Outcome::Unknown => continue,
            };
            let args = groups
                .entry((t.drop, t.epoch))
                .or_insert_with(|| vec![t.epoch.to_string()]);
            args.extend([
                t.seq.to_string(),
                t.user.to_string(),
                t.user_seq.to_string(),
                t.unit.to_string(),
                t.key.as_deref().unwrap_or("").to_owned(),
                out,
            ]);
        }
        for ((drop, _), args) in groups {
            let keys = self.keys(drop);
            if let Err(e) = self
                .run::<i64>(&self.scripts.settle, &keys.all(), &args)
                .await
            {
                tracing::warn!(error = %e, %drop, "could not settle claims in the gate; the reconciler will");
            }
        }
        // The record refused what this gate admitted, so the gate is out of
        // step with it (e.g. Redis came back from an old snapshot). Dropping
        // `meta` makes the next claim rebuild it from the record, fenced.
        drifted.sort_unstable();
        drifted.dedup();
        for drop in drifted {
            tracing::error!(%drop, "the record refused a claim the gate admitted; rebuilding the gate");
            let mut conn = self.conn.clone();
            let dropped: redis::RedisResult<i64> = redis::cmd("DEL")
                .arg(self.keys(drop).meta())
                .query_async(&mut conn)
                .await;
            if let Err(e) = dropped {
                tracing::warn!(error = %e, %drop, "could not drop the drifted gate");
            }
        }
    }

    fn abandon(&self, ticket: Ticket) {
        tracing::warn!(drop = %ticket.drop, seq = ticket.seq, "a claim was dropped before its commit; the reconciler will release it");
    }

    async fn stock(&self, drop: DropId) -> Result<Stock, GateError> {
        let keys = self.keys(drop);
        let r = self
            .run_live(
                drop,
                &self.scripts.stock,
                &[keys.meta(), keys.free(), keys.pend()],
                &[],
            )
            .await?;
        Ok(Stock {
            total: parse(r.get(1))?,
            remaining: parse(r.get(2))?,
            issued: parse(r.get(3))?,
            paused: r.get(4).map(String::as_str) == Some("1"),
            ends_at: Timestamp(parse(r.get(5))?),
        })
    }

    async fn set_total(
        &self,
        drop: DropId,
        total: u32,
    ) -> Result<Result<u32, StockBelowIssued>, GateError> {
        let r = self.update(drop, "total", total.to_string()).await?;
        Ok(match r.first().map(String::as_str) {
            Some("below") => Err(StockBelowIssued {
                highest_seq: parse(r.get(1))?,
            }),
            _ => Ok(parse(r.get(1))?),
        })
    }

    async fn set_paused(&self, drop: DropId, paused: bool) -> Result<(), GateError> {
        self.update(drop, "paused", u8::from(paused).to_string())
            .await
            .map(|_| ())
    }

    async fn set_ends_at(&self, drop: DropId, ends: Timestamp) -> Result<(), GateError> {
        self.update(drop, "ends", ends.0.to_string())
            .await
            .map(|_| ())
    }

    async fn give_back(&self, drop: DropId, unit: &Held) -> Result<bool, GateError> {
        let keys = self.keys(drop);
        let args = [
            unit.seq.to_string(),
            unit.user.to_string(),
            unit.user_seq.to_string(),
            unit.id.to_string(),
        ];
        // A missing gate is rebuilt first: a rebuild that read the record
        // before the unit ended would otherwise bring it back as held.
        let answer = self
            .run_live(drop, &self.scripts.give_back, &keys.all(), &args)
            .await?;
        Ok(answer.first().map(String::as_str) == Some("returned"))
    }

    /// `PING`: is the gate reachable?
    async fn ping(&self) -> Result<(), GateError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    fn needs_reconciler(&self) -> bool {
        true
    }

    /// Settle claims still in flight after `older_than` (their instance
    /// died, or could not reach Redis after its commit) by asking the record
    /// which of their seqs landed.
    async fn reconcile(&self, drop: DropId, older_than: Duration) -> anyhow::Result<usize> {
        self.reconcile_drop(drop, older_than).await
    }
}
