//! The scale-out gate: Redis, shared by every instance, one Lua script per
//! claim (`claim.lua`) so window, pause, Idempotency-Key, the user's limit and
//! stock are decided and taken atomically in one round trip.
//!
//! Per campaign, six keys share the hash tag `{c:<id>}` so the scripts run
//! unchanged on Redis Cluster:
//! - `meta`  (hash) total, limit, starts, ends, paused, epoch, next (the
//!   highest seq handed out), issued;
//! - `free`  (sorted set) seqs handed out whose commit failed, reused lowest first;
//! - `pend`  (sorted set) seqs in flight, scored by when (real time, ms);
//! - `pinfo` (hash) seq → `user|user_seq|coupon id|key` of each claim in flight;
//! - `slots` (hash) user → the `user_seq`s held, e.g. `"1 3"`;
//! - `keys`  (hash) `user|key` → `p:<seq>` in flight or `i:<coupon id>` issued.
//!
//! Losing Redis' data (a restart without persistence) shows as a missing
//! `meta`: the next claim rebuilds the campaign from PostgreSQL under a lock,
//! after fencing the old generation there (see `store::postgres`). Claims that
//! stay in flight too long (their instance died) are settled by the
//! [reconciler](RedisGate::reconcile) from what the record holds.

mod conn;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::{FromRedisValue, Script};

pub use conn::RedisConn;

use super::{Decision, Gate, GateError, Outcome, Rejection, Stock, StockBelowIssued, Ticket};
use crate::domain::campaign::Campaign;
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::timestamp::Timestamp;
use crate::metrics::Metrics;
use crate::store::{IssuedRow, Store};

/// How long a rebuild may hold its lock before another instance may retry it.
const REBUILD_LOCK_MS: u64 = 60_000;
/// Fields per HSET/ZADD when writing a rebuilt gate.
const CHUNK: usize = 1_000;
/// How long a request repeating an in-flight key waits for its first answer.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(2);

struct Scripts {
    claim: Script,
    settle: Script,
    stock: Script,
    update: Script,
    stale: Script,
    publish: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            claim: Script::new(include_str!("claim.lua")),
            settle: Script::new(include_str!("settle.lua")),
            stock: Script::new(include_str!("stock.lua")),
            update: Script::new(include_str!("update.lua")),
            stale: Script::new(include_str!("stale.lua")),
            // KEYS: meta, lock; ARGV: token, then field/value pairs.
            publish: Script::new(
                "if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end \
                 redis.call('HSET', KEYS[1], unpack(ARGV, 2)) return 1",
            ),
        }
    }
}

/// The six keys of one campaign, in the order the scripts take them.
struct Keys([String; 6]);

impl Keys {
    fn meta(&self) -> &str {
        &self.0[0]
    }
    fn free(&self) -> &str {
        &self.0[1]
    }
    fn pend(&self) -> &str {
        &self.0[2]
    }
    fn pinfo(&self) -> &str {
        &self.0[3]
    }
    fn slots(&self) -> &str {
        &self.0[4]
    }
    fn keys(&self) -> &str {
        &self.0[5]
    }
    fn all(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }
}

pub struct RedisGate {
    conn: RedisConn,
    prefix: String,
    store: Arc<dyn Store>,
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

/// Real time in ms: claims in flight are aged by it, never by the (testable)
/// application clock, because what matters is how long a commit has had.
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
    pub fn new(conn: RedisConn, prefix: &str, store: Arc<dyn Store>, metrics: Metrics) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            store,
            metrics,
            scripts: Scripts::new(),
        }
    }

    fn keys(&self, id: CampaignId) -> Keys {
        let p = &self.prefix;
        Keys(
            ["meta", "free", "pend", "pinfo", "slots", "keys"]
                .map(|k| format!("{p}:{{c:{id}}}:{k}")),
        )
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

    /// `PING`: is the gate reachable?
    pub async fn ping(&self) -> Result<(), GateError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Rebuild one campaign's gate from the record, unless another instance
    /// is doing it (then: unavailable, retry) or already did.
    async fn rebuild(&self, id: CampaignId) -> Result<(), GateError> {
        let keys = self.keys(id);
        let lock = format!("{}:{{c:{id}}}:rebuild", self.prefix);
        let token = uuid::Uuid::now_v7().to_string();
        let mut conn = self.conn.clone();
        let got: Option<String> = redis::cmd("SET")
            .arg(&lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(REBUILD_LOCK_MS)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if got.is_none() {
            return Err(GateError::Unavailable(
                "this campaign's gate is being rebuilt; retry".into(),
            ));
        }
        let result = self.rebuild_locked(id, &keys, &lock, &token).await;
        let _: Result<i64, _> = Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        )
        .key(&lock)
        .arg(&token)
        .invoke_async(&mut conn)
        .await;
        result
    }

    async fn rebuild_locked(
        &self,
        id: CampaignId,
        keys: &Keys,
        lock: &str,
        token: &str,
    ) -> Result<(), GateError> {
        let mut conn = self.conn.clone();
        let live: bool = redis::cmd("HEXISTS")
            .arg(keys.meta())
            .arg("total")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if live {
            return Ok(());
        }
        let fenced = self.store.fence_and_load(id).await.map_err(|e| match e {
            crate::store::StoreError::Db(sqlx::Error::RowNotFound) => GateError::NoSuchCampaign,
            other => GateError::Unavailable(format!("the record is unreachable: {other}")),
        })?;
        self.metrics.gate_rebuilds.inc();
        tracing::warn!(campaign = %id, epoch = fenced.epoch, issued = fenced.issued.len(), "rebuilding the gate from the record");
        let c = &fenced.campaign;
        let (pipe, meta) = state_pipeline(keys, c, fenced.epoch, &fenced.issued);
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        // `meta` goes last, and only while the lock is still ours: a rebuild
        // that outlived its lock (another instance fenced a newer generation
        // since) must not bring its older generation back to life.
        let mut publish = self.scripts.publish.prepare_invoke();
        publish.key(keys.meta()).key(lock).arg(token);
        for (field, value) in &meta {
            publish.arg(*field).arg(value);
        }
        let written: i64 = publish.invoke_async(&mut conn).await.map_err(unavailable)?;
        if written == 1 {
            Ok(())
        } else {
            Err(GateError::Unavailable(
                "this campaign's gate was rebuilt by another instance meanwhile; retry".into(),
            ))
        }
    }

    /// Settle claims still in flight after `older_than` (their instance died,
    /// or could not reach Redis after its commit) by asking the record which
    /// of their seqs landed. Returns how many were settled.
    pub async fn reconcile(&self, id: CampaignId, older_than: Duration) -> anyhow::Result<usize> {
        let keys = self.keys(id);
        let cutoff = wall_ms() - older_than.as_millis() as i64;
        let stale: Vec<String> = self
            .run(
                &self.scripts.stale,
                &[keys.meta(), keys.pend(), keys.pinfo()],
                &[cutoff.to_string(), "500".into()],
            )
            .await?;
        let Some((epoch, pairs)) = stale.split_first() else {
            return Ok(0);
        };
        if pairs.is_empty() {
            return Ok(0);
        }
        let claims: Vec<(u32, &str, &str, CouponId, &str)> = pairs
            .chunks(2)
            .filter_map(|p| {
                let seq = p.first()?.parse().ok()?;
                let mut info = p.get(1)?.splitn(4, '|');
                let (user, user_seq) = (info.next()?, info.next()?);
                let coupon = info.next()?.parse().ok()?;
                Some((seq, user, user_seq, coupon, info.next().unwrap_or("")))
            })
            .collect();
        let ids: Vec<(u32, CouponId)> = claims.iter().map(|c| (c.0, c.3)).collect();
        let landed = self.store.resolve_stale(id, &ids).await?;
        let mut args = vec![epoch.clone()];
        for (seq, user, user_seq, _, key) in &claims {
            let outcome = match landed.get(seq) {
                Some(row)
                    if row.user.to_string() == *user && row.user_seq.to_string() == *user_seq =>
                {
                    format!("c:{}", row.id)
                }
                Some(_) => "x".to_owned(),
                None => "f".to_owned(),
            };
            tracing::warn!(campaign = %id, seq, outcome, "reconciled a claim left in flight");
            args.extend([
                seq.to_string(),
                (*user).to_owned(),
                (*user_seq).to_owned(),
                (*key).to_owned(),
                outcome,
            ]);
        }
        let done: i64 = self.run(&self.scripts.settle, &keys.all(), &args).await?;
        self.metrics.reconciled.inc_by(done.max(0) as u64);
        Ok(done.max(0) as usize)
    }

    /// Run a script on a campaign's gate; if the gate is missing (Redis lost
    /// it), rebuild it from the record once and run the script again.
    async fn run_live(
        &self,
        id: CampaignId,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<Vec<String>, GateError> {
        for _ in 0..2 {
            let reply: Vec<String> = self.run(script, keys, args).await?;
            if reply.first().map(String::as_str) != Some("missing") {
                return Ok(reply);
            }
            self.rebuild(id).await?;
        }
        Err(GateError::Unavailable(
            "the gate could not be rebuilt; retry".into(),
        ))
    }

    /// Change one of a campaign's settings in its gate.
    async fn update(
        &self,
        c: &Campaign,
        field: &str,
        value: String,
    ) -> Result<Vec<String>, GateError> {
        let keys = self.keys(c.id);
        self.run_live(
            c.id,
            &self.scripts.update,
            &[keys.meta()],
            &[field.to_owned(), value],
        )
        .await
    }
}

/// Every command that writes a campaign's gate from scratch but `meta`,
/// which the caller writes last (so claims see "missing" until the gate is
/// whole), and `meta`'s fields.
fn state_pipeline(
    keys: &Keys,
    c: &Campaign,
    epoch: u64,
    issued: &[IssuedRow],
) -> (redis::Pipeline, Vec<(&'static str, String)>) {
    let mut pipe = redis::pipe();
    pipe.del(keys.all()).ignore();
    let mut slots: HashMap<String, Vec<String>> = HashMap::new();
    let mut idem = Vec::new();
    let mut high = 0;
    let mut present = vec![false; 0];
    for r in issued {
        slots
            .entry(r.user.to_string())
            .or_default()
            .push(r.user_seq.to_string());
        if let Some(key) = &r.key {
            idem.push((format!("{}|{key}", r.user), format!("i:{}", r.id)));
        }
        high = high.max(r.seq);
        if present.len() <= r.seq as usize {
            present.resize(r.seq as usize + 1, false);
        }
        present[r.seq as usize] = true;
    }
    let slots: Vec<(String, String)> = slots.into_iter().map(|(u, s)| (u, s.join(" "))).collect();
    for chunk in slots.chunks(CHUNK) {
        pipe.hset_multiple(keys.slots(), chunk).ignore();
    }
    for chunk in idem.chunks(CHUNK) {
        pipe.hset_multiple(keys.keys(), chunk).ignore();
    }
    // Seqs below the highest that the record lacks (claims that died) are free.
    let gaps: Vec<(u32, u32)> = (1..=high)
        .filter(|&s| !present[s as usize])
        .map(|s| (s, s))
        .collect();
    for chunk in gaps.chunks(CHUNK) {
        pipe.zadd_multiple(keys.free(), chunk).ignore();
    }
    let meta = vec![
        ("total", c.total_quantity.max(high).to_string()),
        ("limit", c.per_user_limit.to_string()),
        ("starts", c.issue_starts_at.0.to_string()),
        ("ends", c.issue_ends_at.0.to_string()),
        ("paused", u8::from(c.paused).to_string()),
        ("epoch", epoch.to_string()),
        ("next", high.to_string()),
        ("issued", issued.len().to_string()),
    ];
    (pipe, meta)
}

#[async_trait]
impl Gate for RedisGate {
    /// A new campaign's gate is written the way a lost one is rebuilt: under
    /// the rebuild lock, after fencing, so it cannot race a claim that found
    /// it missing and started a rebuild itself.
    async fn open(&self, campaign: &Campaign) -> Result<(), GateError> {
        self.rebuild(campaign.id).await
    }

    async fn claim(
        &self,
        campaign: &Campaign,
        user: UserId,
        coupon: CouponId,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Decision, GateError> {
        let keys = self.keys(campaign.id);
        let waited = std::time::Instant::now();
        let mut rebuilt = false;
        loop {
            let args = [
                user.to_string(),
                key.unwrap_or("").to_owned(),
                now.0.to_string(),
                wall_ms().to_string(),
                coupon.to_string(),
            ];
            let reply: Vec<String> = self.run(&self.scripts.claim, &keys.all(), &args).await?;
            let rejected = |r| Ok(Decision::Rejected(r));
            return match reply.first().map(String::as_str) {
                Some("admitted") => Ok(Decision::Admitted(Ticket {
                    campaign: campaign.id,
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
                    self.rebuild(campaign.id).await?;
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
        let mut groups: HashMap<(CampaignId, u64), Vec<String>> = HashMap::new();
        let mut drifted = Vec::new();
        for (t, outcome) in claims {
            let out = match outcome {
                Outcome::Committed(id) => format!("c:{id}"),
                Outcome::Failed => "f".to_owned(),
                Outcome::Refused => {
                    drifted.push(t.campaign);
                    "x".to_owned()
                }
                // Left in flight: the reconciler asks the record later.
                Outcome::Unknown => continue,
            };
            let args = groups
                .entry((t.campaign, t.epoch))
                .or_insert_with(|| vec![t.epoch.to_string()]);
            args.extend([
                t.seq.to_string(),
                t.user.to_string(),
                t.user_seq.to_string(),
                t.key.as_deref().unwrap_or("").to_owned(),
                out,
            ]);
        }
        for ((campaign, _), args) in groups {
            let keys = self.keys(campaign);
            if let Err(e) = self
                .run::<i64>(&self.scripts.settle, &keys.all(), &args)
                .await
            {
                tracing::warn!(error = %e, %campaign, "could not settle claims in the gate; the reconciler will");
            }
        }
        // The record refused what this gate admitted, so the gate is out of
        // step with it (e.g. Redis came back from an old snapshot). Dropping
        // `meta` makes the next claim rebuild it from the record, fenced.
        drifted.sort_unstable();
        drifted.dedup();
        for campaign in drifted {
            tracing::error!(%campaign, "the record refused a claim the gate admitted; rebuilding the gate");
            let mut conn = self.conn.clone();
            let dropped: redis::RedisResult<i64> = redis::cmd("DEL")
                .arg(self.keys(campaign).meta())
                .query_async(&mut conn)
                .await;
            if let Err(e) = dropped {
                tracing::warn!(error = %e, %campaign, "could not drop the drifted gate");
            }
        }
    }

    fn abandon(&self, ticket: Ticket) {
        tracing::warn!(campaign = %ticket.campaign, seq = ticket.seq, "a claim was dropped before its commit; the reconciler will release it");
    }

    async fn stock(&self, campaign: &Campaign) -> Result<Stock, GateError> {
        let keys = self.keys(campaign.id);
        let r = self
            .run_live(
                campaign.id,
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
        campaign: &Campaign,
        total: u32,
    ) -> Result<Result<u32, StockBelowIssued>, GateError> {
        let r = self.update(campaign, "total", total.to_string()).await?;
        Ok(match r.first().map(String::as_str) {
            Some("below") => Err(StockBelowIssued {
                highest_seq: parse(r.get(1))?,
            }),
            _ => Ok(parse(r.get(1))?),
        })
    }

    async fn set_paused(&self, campaign: &Campaign, paused: bool) -> Result<(), GateError> {
        self.update(campaign, "paused", u8::from(paused).to_string())
            .await
            .map(drop)
    }

    async fn set_ends_at(&self, campaign: &Campaign, ends: Timestamp) -> Result<(), GateError> {
        self.update(campaign, "ends", ends.0.to_string())
            .await
            .map(drop)
    }
}
