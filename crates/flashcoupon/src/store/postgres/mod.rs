//! The record in scale-out mode: PostgreSQL, shared by every instance.
//!
//! Migrations run at start-up; sqlx's migrator holds a PostgreSQL advisory
//! lock while it runs, so instances starting together migrate once.
//!
//! The fence: each campaign row carries `gate_epoch`, the generation of the
//! Redis gate. A group commit locks the campaign rows of its batch `FOR SHARE`
//! and writes only the coupons admitted by the current generation; a gate
//! rebuild bumps the epoch (which waits for those share locks) and then reads
//! the coupons. So every claim admitted before a rebuild either committed
//! before it (and the rebuilt gate counts it) or is refused after it.

mod writer;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_core::future::BoxFuture;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, PgPool};

use super::columns::parse_id;
use super::{
    CouponFilter, CouponWriter, FencedCampaign, IssuedRow, Migrations, Store, StoreError,
    UserRecord,
};
use crate::domain::account::{Email, Role};
use crate::domain::campaign::Campaign;
use crate::domain::coupon::{Coupon, CouponStatus, Spend};
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::timestamp::Timestamp;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "core",
        include_str!("../../../migrations/postgres/0001_core.sql"),
    ),
    (
        2,
        "notifications",
        include_str!("../../../migrations/common/0002_notifications.sql"),
    ),
    (
        3,
        "inbox",
        include_str!("../../../migrations/postgres/0003_inbox.sql"),
    ),
    (
        4,
        "token revocation",
        include_str!("../../../migrations/common/0004_token_revocation.sql"),
    ),
    (
        5,
        "token epoch",
        include_str!("../../../migrations/common/0005_token_epoch.sql"),
    ),
    (
        6,
        "service keys",
        include_str!("../../../migrations/common/0006_service_keys.sql"),
    ),
    (
        7,
        "reservations",
        include_str!("../../../migrations/postgres/0007_reservations.sql"),
    ),
    (
        8,
        "outbox and inbound events",
        include_str!("../../../migrations/common/0008_outbox_and_inbound.sql"),
    ),
    (
        9,
        "codes",
        include_str!("../../../migrations/common/0009_codes.sql"),
    ),
    (
        10,
        "triggers",
        include_str!("../../../migrations/common/0010_triggers.sql"),
    ),
    (
        11,
        "points",
        include_str!("../../../migrations/common/0011_points.sql"),
    ),
    (
        12,
        "points are immutable",
        include_str!("../../../migrations/postgres/0012_points_immutable.sql"),
    ),
    (
        13,
        "sales",
        include_str!("../../../migrations/common/0013_sales.sql"),
    ),
    (
        14,
        "sales bounds",
        include_str!("../../../migrations/postgres/0014_sales_bounds.sql"),
    ),
    (
        15,
        "sale subscriptions",
        include_str!("../../../migrations/common/0015_sale_subscriptions.sql"),
    ),
    (
        16,
        "claim counts",
        include_str!("../../../migrations/common/0016_claim_counts.sql"),
    ),
    (
        17,
        "statistics without a pass",
        include_str!("../../../migrations/common/0017_stats_reads.sql"),
    ),
    (
        18,
        "request ids on what a request sends out",
        include_str!("../../../migrations/common/0018_request_ids.sql"),
    ),
    (
        19,
        "a coupon is its own coupon.issued inbox entry",
        include_str!("../../../migrations/common/0019_issued_inbox_from_coupons.sql"),
    ),
    (
        20,
        "campaign bounds checked per statement",
        include_str!("../../../migrations/postgres/0020_bounds_per_statement.sql"),
    ),
];

/// How long one statement may run. A commit that cannot finish in this time
/// fails (and its claims are settled by what landed), so a claim is never
/// written long after the reconciler may have given its stock back.
const STATEMENT_TIMEOUT: &str = "5s";

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    options: PgConnectOptions,
}

impl PgStore {
    /// Connect to `url` and migrate. `url` may carry
    /// `?options=-c search_path=…` to use a schema of its own (the tests do),
    /// and `sslmode=require` (encrypt), `verify-ca` or `verify-full` (also
    /// check the server's certificate, against the web PKI roots or
    /// `sslrootcert`) for TLS. Without `sslmode` the connection is plain, as
    /// it always was: TLS on a loopback or a private link costs CPU on every
    /// commit for nothing, so it is asked for, not guessed.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let mut options: PgConnectOptions = url.parse()?;
        if !url.contains("sslmode=") {
            options = options.ssl_mode(PgSslMode::Disable);
        }
        // Named in `pg_stat_activity` (the writers as `<name>/writer`), so an
        // operator sees which backends are whose.
        if options.get_application_name().is_none() {
            options = options.application_name("flashcoupon");
        }
        let options = options
            .options([("statement_timeout", STATEMENT_TIMEOUT)])
            .log_statements(tracing::log::LevelFilter::Trace);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            // Fail fast while PostgreSQL is down: a claim answers 503 in about
            // a second instead of hanging, and `/readyz` says so.
            .acquire_timeout(Duration::from_secs(1))
            .connect_with(options.clone())
            .await?;
        Migrator::new(Migrations(MIGRATIONS))
            .await?
            .run(&pool)
            .await?;
        Ok(Self { pool, options })
    }
}

impl PgStore {
    /// PostgreSQL has row locks: writers need not take turns.
    pub(super) async fn write_turn(&self) -> Option<super::write_turn::Turn> {
        None
    }

    /// Transactions run side by side, each on its own connection.
    pub(super) fn write_turn_is_serial(&self) -> bool {
        false
    }

    /// A small ordinary write, one statement on its own: how many rows it
    /// changed (the embedded store lets it ride a batch's transaction).
    pub(super) async fn small_write(
        &self,
        sql: String,
        args: Vec<super::sql::Arg>,
    ) -> Result<u64, StoreError> {
        use super::sql::Sql;
        let mut conn = self.pool.acquire().await?;
        conn.execute(&sql, args).await
    }

    /// `sql`'s first row, parsed by `parse` (the embedded store reads
    /// these on the caller's thread; here it is one round trip anyway).
    pub(super) async fn read_one<T: Send + 'static>(
        &self,
        sql: &'static str,
        args: Vec<super::sql::Arg>,
        parse: impl Fn(&sqlx::postgres::PgRow) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        use super::sql::Sql as _;
        let mut conn = self.pool.acquire().await?;
        conn.fetch_optional(sql, args)
            .await?
            .as_ref()
            .map(parse)
            .transpose()
    }
}

super::shared_queries!(PgStore, sqlx::Postgres);
super::sales::sale_queries!(PgStore, sqlx::Postgres);

impl PgStore {
    /// A group-commit batch of orders, in one transaction; the sales are
    /// read `FOR SHARE`, so a rebuild's fence (which updates the sale) waits
    /// for the batch.
    async fn write_orders(
        &self,
        rows: &[&super::NewOrderRow],
    ) -> Result<std::collections::HashSet<crate::domain::ids::OrderId>, StoreError> {
        // One transaction throughout: its `FOR SHARE` locks keep a rebuild
        // and the reconciler off the sales until the batch is in.
        let mut tx = self.pool.begin().await?;
        let landed = super::sales::answered(
            super::sales::insert_orders_in(
                &mut *tx,
                rows,
                " FOR SHARE",
                super::sales::Extras::Savepoint,
            )
            .await?,
        )?;
        tx.commit().await?;
        Ok(landed)
    }

    /// A batch of payment events, in one pool transaction.
    async fn apply_payments(
        &self,
        items: &[super::InboundItem],
    ) -> Result<Vec<super::Applied>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let applied = super::payments::apply_inbound_in(&mut *tx, items).await?;
        tx.commit().await?;
        Ok(applied)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn fence_and_load(&self, campaign: CampaignId) -> Result<FencedCampaign, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The UPDATE waits for every group commit holding the row FOR SHARE;
        // commits that come later see the new epoch and skip older claims.
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE campaigns SET gate_epoch = gate_epoch + 1 WHERE id = $1 RETURNING gate_epoch",
        )
        .bind(campaign.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::Db(sqlx::Error::RowNotFound))?;
        let row = sqlx::query(&format!(
            "{} WHERE id = $1",
            super::campaigns::select_campaigns()
        ))
        .bind(campaign.to_string())
        .fetch_one(&mut *tx)
        .await?;
        let found = super::campaigns::campaign(&row)?;
        let issued = sqlx::query(&format!(
            "SELECT {} FROM coupons WHERE campaign_id = $1 ORDER BY seq",
            super::coupons::ISSUED_COLUMNS
        ))
        .bind(campaign.to_string())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(super::coupons::issued)
        .collect::<Result<_, _>>()?;
        tx.commit().await?;
        Ok(FencedCampaign {
            campaign: found,
            epoch: epoch as u64,
            issued,
        })
    }

    async fn resolve_stale(
        &self,
        campaign: CampaignId,
        claims: &[(u32, CouponId)],
    ) -> Result<HashMap<u32, IssuedRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Wait for the commits running for this campaign (they hold the row
        // FOR SHARE), so a claim is not judged lost while its write is landing.
        sqlx::query("SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE")
            .bind(campaign.to_string())
            .execute(&mut *tx)
            .await?;
        let seqs: Vec<i64> = claims.iter().map(|&(s, _)| s as i64).collect();
        let found = sqlx::query(&format!(
            "SELECT {} FROM coupons WHERE campaign_id = $1 AND seq = ANY($2)",
            super::coupons::ISSUED_COLUMNS
        ))
        .bind(campaign.to_string())
        .bind(&seqs)
        .fetch_all(&mut *tx)
        .await?;
        let found: HashMap<u32, IssuedRow> = found
            .iter()
            .map(|row| super::coupons::issued(row).map(|r| (r.seq, r)))
            .collect::<Result<_, _>>()?;
        // Still under the lock: write off the claims that did not land, so a
        // writer that had them queued all along skips them (its INSERT checks).
        let abandoned: Vec<String> = claims
            .iter()
            .filter(|(seq, id)| found.get(seq).is_none_or(|r| r.id != *id))
            .map(|(_, id)| id.to_string())
            .collect();
        sqlx::query(
            "INSERT INTO abandoned_claims (coupon_id) SELECT * FROM unnest($1::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(&abandoned)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn writer(&self, outbound: bool) -> Result<Box<dyn CouponWriter>, StoreError> {
        let name = format!(
            "{}/writer",
            self.options.get_application_name().unwrap_or("flashcoupon")
        );
        Ok(Box::new(writer::PgWriter::new(
            self.options.clone().application_name(&name),
            outbound,
        )))
    }

    async fn now(&self, offset_ms: i64) -> Result<Timestamp, StoreError> {
        let ms: i64 =
            sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
                .fetch_one(&self.pool)
                .await?;
        Ok(Timestamp(ms + offset_ms))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn upkeep(&self) -> Option<BoxFuture<'static, ()>> {
        None
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
