//! Rebuilding a drop's gate from the record (Redis lost it, or a new drop
//! opens), and the reconciler's settling of claims left in flight.

use std::collections::HashMap;
use std::time::Duration;

use redis::Script;

use super::{CHUNK, Keys, REBUILD_LOCK_MS, RedisGate, unavailable};
use crate::admission::{DropId, GateError, Held, Terms, UnitId};

impl RedisGate {
    /// Rebuild one drop's gate from the record, unless another instance
    /// is doing it (then: unavailable, retry) or already did.
    pub(super) async fn rebuild(&self, drop: DropId) -> Result<(), GateError> {
        let keys = self.keys(drop);
        let lock = format!("{}:{{{drop}}}:rebuild", self.prefix);
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
            return Err(GateError::Unavailable(format!(
                "this {}'s gate is being rebuilt; retry",
                drop.kind.drop_name
            )));
        }
        let result = self.rebuild_locked(drop, &keys, &lock, &token).await;
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
        drop: DropId,
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
        let fenced = self.stockpile(drop.kind)?.fence_and_load(drop.id).await?;
        self.metrics.gate_rebuilds.inc();
        tracing::warn!(%drop, epoch = fenced.epoch, held = fenced.held.len(), "rebuilding the gate from the record");
        let (pipe, meta) = state_pipeline(
            keys,
            drop.kind.returns,
            &fenced.terms,
            fenced.epoch,
            &fenced.held,
        );
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
            Err(GateError::Unavailable(format!(
                "this {}'s gate was rebuilt by another instance meanwhile; retry",
                drop.kind.drop_name
            )))
        }
    }

    /// Settle claims still in flight after `older_than` (their instance died,
    /// or could not reach Redis after its commit) by asking the record which
    /// of their seqs landed. Returns how many were settled.
    pub(super) async fn reconcile_drop(
        &self,
        drop: DropId,
        older_than: Duration,
    ) -> anyhow::Result<usize> {
        let keys = self.keys(drop);
        let stale: Vec<String> = self
            .run(
                &self.scripts.stale,
                &[keys.meta(), keys.pend(), keys.pinfo()],
                &[older_than.as_millis().to_string(), "500".into()],
            )
            .await?;
        let Some((epoch, pairs)) = stale.split_first() else {
            return Ok(0);
        };
        if pairs.is_empty() {
            return Ok(0);
        }
        let claims: Vec<(u32, &str, &str, UnitId, &str)> = pairs
            .chunks(2)
            .filter_map(|p| {
                let seq = p.first()?.parse().ok()?;
                let mut info = p.get(1)?.splitn(4, '|');
                let (user, user_seq) = (info.next()?, info.next()?);
                let unit = info.next()?.parse().ok()?;
                Some((seq, user, user_seq, unit, info.next().unwrap_or("")))
            })
            .collect();
        let ids: Vec<(u32, UnitId)> = claims.iter().map(|c| (c.0, c.3)).collect();
        let landed = self
            .stockpile(drop.kind)?
            .resolve_stale(drop.id, &ids)
            .await?;
        // Committed, written-off and superseded claims are settled in one
        // call each (each claim on its own either way), so the metric tells
        // them apart: a write-off means an instance lost claims in flight; a
        // superseded one, that the record holds its seq for another claim
        // (the gate and the record disagreed).
        let mut committed = vec![epoch.clone()];
        let mut written_off = vec![epoch.clone()];
        let mut superseded = vec![epoch.clone()];
        for (seq, user, user_seq, unit, key) in &claims {
            let outcome = match landed.get(seq) {
                Some(row)
                    if row.user.to_string() == *user && row.user_seq.to_string() == *user_seq =>
                {
                    format!("c:{}", row.id)
                }
                Some(_) => "x".to_owned(),
                None => "f".to_owned(),
            };
            tracing::warn!(%drop, seq, outcome, "reconciled a claim left in flight");
            let args = match outcome.as_str() {
                "f" => &mut written_off,
                "x" => &mut superseded,
                _ => &mut committed,
            };
            args.extend([
                seq.to_string(),
                (*user).to_owned(),
                (*user_seq).to_owned(),
                unit.to_string(),
                (*key).to_owned(),
                outcome,
            ]);
        }
        let mut settled = 0;
        for (label, args) in [
            ("committed", committed),
            ("written_off", written_off),
            ("superseded", superseded),
        ] {
            if args.len() == 1 {
                continue;
            }
            let done: i64 = self.run(&self.scripts.settle, &keys.all(), &args).await?;
            let done = done.max(0) as u64;
            self.metrics
                .reconciled
                .with_label_values(&[label])
                .inc_by(done);
            settled += done as usize;
        }
        Ok(settled)
    }
}

/// Every command that writes a drop's gate from scratch but `meta`,
/// which the caller writes last (so claims see "missing" until the gate is
/// whole), and `meta`'s fields.
fn state_pipeline(
    keys: &Keys,
    returns: bool,
    terms: &Terms,
    epoch: u64,
    units: &[Held],
) -> (redis::Pipeline, Vec<(&'static str, String)>) {
    let mut pipe = redis::pipe();
    pipe.del(keys.all()).ignore();
    let mut slots: HashMap<String, Vec<String>> = HashMap::new();
    let mut idem = Vec::new();
    let mut holders = Vec::new();
    let mut high = 0;
    let mut issued = 0;
    let mut present = vec![false; 0];
    for r in units {
        if let Some(key) = &r.key {
            idem.push((format!("{}|{key}", r.user), format!("i:{}", r.id)));
        }
        // A unit given back since keeps only its key.
        if r.returned {
            continue;
        }
        issued += 1;
        if returns {
            holders.push((r.seq, format!("{}|{}|{}", r.user, r.user_seq, r.id)));
        }
        slots
            .entry(r.user.to_string())
            .or_default()
            .push(r.user_seq.to_string());
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
    for chunk in holders.chunks(CHUNK) {
        pipe.hset_multiple(keys.held(), chunk).ignore();
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
        ("total", terms.total.max(high).to_string()),
        ("limit", terms.per_user_limit.to_string()),
        ("starts", terms.starts_at.0.to_string()),
        ("ends", terms.ends_at.0.to_string()),
        ("paused", u8::from(terms.paused).to_string()),
        ("epoch", epoch.to_string()),
        ("next", high.to_string()),
        ("issued", issued.to_string()),
        ("returns", u8::from(returns).to_string()),
    ];
    (pipe, meta)
}
