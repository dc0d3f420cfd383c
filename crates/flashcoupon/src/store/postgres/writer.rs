//! The group-commit writer on PostgreSQL: one transaction per batch, the
//! campaign rows locked `FOR SHARE` to check the gate generation (the fence),
//! then one `INSERT … SELECT FROM unnest(…)` for the whole batch.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::domain::ids::CouponId;
use crate::store::{CouponWriter, NewCouponRow, StoreError};

/// The writer's own connection, opened on first use and again after it broke
/// (PostgreSQL restarted), so the writer recovers by itself.
#[derive(Debug)]
pub(super) struct PgWriter {
    options: PgConnectOptions,
    conn: Option<PgConnection>,
    /// When the connection last answered.
    used: Instant,
    /// Also write each coupon's `coupon.issued` to the outbox.
    outbound: bool,
}

impl PgWriter {
    pub fn new(options: PgConnectOptions, outbound: bool) -> Self {
        Self {
            options,
            conn: None,
            used: Instant::now(),
            outbound,
        }
    }

    async fn connection(&mut self) -> Result<&mut PgConnection, StoreError> {
        // A connection idle for a while may have died with a PostgreSQL
        // restart, and the batch it is given would fail (503) though
        // nothing of it was sent. So it is asked first: one round trip
        // after an idle second, none in a storm.
        if let Some(conn) = self.conn.as_mut()
            && self.used.elapsed() > IDLE_CHECK
            && tokio::time::timeout(CONNECT_TIMEOUT, conn.ping())
                .await
                .map_or(true, |pinged| pinged.is_err())
        {
            self.conn = None;
        }
        if self.conn.is_none() {
            let connect = tokio::time::timeout(CONNECT_TIMEOUT, self.options.connect());
            self.conn = Some(connect.await.map_err(|_| timed_out("connecting"))??);
        }
        self.conn
            .as_mut()
            .ok_or(StoreError::Db(sqlx::Error::PoolClosed))
    }

    /// Forget a connection that failed for any reason but a constraint: it
    /// may be broken, and a fresh one costs one connect.
    fn after(&mut self, result: &Result<impl Sized, StoreError>) {
        if matches!(result, Err(StoreError::Db(_))) {
            self.conn = None;
        }
        self.used = Instant::now();
    }
}

async fn insert_batch(
    conn: &mut PgConnection,
    rows: &[&NewCouponRow],
    outbound: bool,
) -> Result<HashSet<CouponId>, StoreError> {
    let mut tx = conn.begin().await?;
    let mut campaigns: Vec<String> = rows.iter().map(|r| r.campaign_id.to_string()).collect();
    campaigns.sort_unstable();
    campaigns.dedup();
    // Sorted, so two writers lock campaigns in the same order.
    let epochs: HashMap<String, i64> = sqlx::query_as(
        "SELECT id, gate_epoch FROM campaigns WHERE id = ANY($1) ORDER BY id FOR SHARE",
    )
    .bind(&campaigns)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let current: Vec<&NewCouponRow> = rows
        .iter()
        .copied()
        .filter(|r| epochs.get(&r.campaign_id.to_string()) == Some(&(r.gate_epoch as i64)))
        .collect();
    if current.is_empty() {
        tx.commit().await?;
        return Ok(HashSet::new());
    }
    // Claims the reconciler wrote off (it judged them lost) are skipped.
    let landed: Vec<String> = sqlx::query_scalar(
            "INSERT INTO coupons (id, campaign_id, user_id, seq, user_seq, idempotency_key, issued_at, \
             valid_from, valid_until, code) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], \
             $4::bigint[], $5::bigint[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[]) \
         AS r(id, campaign_id, user_id, seq, user_seq, idempotency_key, issued_at, valid_from, valid_until, code) \
         WHERE NOT EXISTS (SELECT 1 FROM abandoned_claims a WHERE a.coupon_id = r.id) RETURNING id",
        )
        .bind(current.iter().map(|r| r.id.to_string()).collect::<Vec<_>>())
        .bind(current.iter().map(|r| r.campaign_id.to_string()).collect::<Vec<_>>())
        .bind(current.iter().map(|r| r.user_id.to_string()).collect::<Vec<_>>())
        .bind(current.iter().map(|r| r.seq as i64).collect::<Vec<_>>())
        .bind(current.iter().map(|r| r.user_seq as i64).collect::<Vec<_>>())
        .bind(
            current
                .iter()
                .map(|r| r.idempotency_key.as_deref().map(str::to_owned))
                .collect::<Vec<_>>(),
        )
        .bind(current.iter().map(|r| r.issued_at.0).collect::<Vec<_>>())
        .bind(current.iter().map(|r| r.valid_from.0).collect::<Vec<_>>())
        .bind(current.iter().map(|r| r.valid_until.0).collect::<Vec<_>>())
        .bind(
            current
                .iter()
                .map(|r| r.code.as_deref().map(str::to_owned))
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?;
    let landed: HashSet<CouponId> = landed.iter().filter_map(|id| id.parse().ok()).collect();
    if outbound && !landed.is_empty() {
        let events: Vec<_> = current
            .iter()
            .filter(|r| landed.contains(&r.id))
            .map(|r| crate::store::coupons::issued_outbox(r))
            .collect();
        crate::store::outbox::insert_outbox(&mut *tx, &events).await?;
    }
    tx.commit().await?;
    Ok(landed)
}

/// A connection attempt to a server that is starting or unreachable must not
/// hold the writer (and every claim queued behind it) for long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A connection unused this long is pinged before a batch.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// A batch the server does not answer within this (it went away without
/// closing the socket) is treated as an I/O error: the writer never hangs.
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

fn timed_out(what: &str) -> StoreError {
    StoreError::Db(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("PostgreSQL did not answer in time ({what})"),
    )))
}

/// Which rows are in the record. The failed batch may still be committing on
/// its old connection (it holds its campaigns FOR SHARE): locking them FOR
/// UPDATE first waits for it, so "absent" means it will never land.
async fn existing(
    conn: &mut PgConnection,
    rows: &[&NewCouponRow],
) -> Result<HashSet<CouponId>, StoreError> {
    let mut tx = conn.begin().await?;
    let mut campaigns: Vec<String> = rows.iter().map(|r| r.campaign_id.to_string()).collect();
    campaigns.sort_unstable();
    campaigns.dedup();
    sqlx::query("SELECT 1 FROM campaigns WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&campaigns)
        .execute(&mut *tx)
        .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
    let found: Vec<String> = sqlx::query_scalar("SELECT id FROM coupons WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(found.iter().filter_map(|id| id.parse().ok()).collect())
}

#[async_trait]
impl CouponWriter for PgWriter {
    async fn insert(&mut self, rows: &[&NewCouponRow]) -> Result<HashSet<CouponId>, StoreError> {
        let outbound = self.outbound;
        let result = match self.connection().await {
            Ok(conn) => tokio::time::timeout(BATCH_TIMEOUT, insert_batch(conn, rows, outbound))
                .await
                .unwrap_or_else(|_| Err(timed_out("writing a batch"))),
            Err(e) => Err(e),
        };
        self.after(&result);
        result
    }

    async fn existing(&mut self, rows: &[&NewCouponRow]) -> Result<HashSet<CouponId>, StoreError> {
        let result = match self.connection().await {
            Ok(conn) => tokio::time::timeout(BATCH_TIMEOUT, existing(conn, rows))
                .await
                .unwrap_or_else(|_| Err(timed_out("checking a batch"))),
            Err(e) => Err(e),
        };
        self.after(&result);
        result
    }
}
