//! Statistics from the record: a campaign's coupons by status with its
//! curves, a user's holdings, orders by sale, and the claim answers every
//! instance counted (API.md "Statistics"). Reads only, except the claim
//! counts each instance writes for itself.

use std::collections::HashMap;

use async_trait::async_trait;

use super::StoreError;
use crate::claim_stats::{OUTCOMES, Outcome, Tally};
use crate::domain::account::Role;
use crate::domain::ids::{CampaignId, SaleId, UserId};
use crate::domain::sale::OrderStatus;
use crate::domain::timestamp::Timestamp;

/// A campaign's coupons, summed up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignFigures {
    pub issued: u64,
    pub available: u64,
    pub reserved: u64,
    pub used: u64,
    /// Available coupons whose validity ran out.
    pub expired: u64,
    /// Of used coupons.
    pub discount_total: i64,
    pub order_amount_total: i64,
    /// When the coupon with the lowest seq was issued.
    pub first_issued_at: Option<Timestamp>,
    /// When the coupon with the last seq was issued; absent if it never was.
    pub sold_out_at: Option<Timestamp>,
}

/// Which of a campaign's coupons are past their validity (the caller
/// knows the campaign's terms and issue window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RanOut {
    None,
    All,
    /// Those issued at or before this time.
    IssuedBy(Timestamp),
}

/// Counts per time bucket, ascending; buckets without any are left out.
pub type Curve = Vec<(Timestamp, u64)>;

/// A user's coupons by status, as the wallet shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserCoupons {
    pub available: u64,
    pub reserved: u64,
    pub used: u64,
    pub expired: u64,
}

/// What the summary names a user by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCard {
    pub email: String,
    pub role: Role,
    pub created_at: Timestamp,
}

pub const MINUTE_MS: i64 = 60_000;
pub const DAY_MS: i64 = 86_400_000;

#[async_trait]
pub trait StatsStore {
    /// Write this instance's running claim counts (since it started) for
    /// these campaigns: each row replaces the last one it wrote, so a
    /// write that is retried, or lands twice, counts once.
    /// With them, in the same transaction, its issued counts per minute
    /// (`(campaign, minute, issued)`), written the same way.
    async fn save_claim_counts(
        &self,
        instance: &str,
        counts: &[(CampaignId, Tally)],
        minutes: &[(CampaignId, i64, u64)],
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Every instance's counts, summed per campaign (one campaign, or all).
    async fn claim_counts(
        &self,
        campaign: Option<CampaignId>,
    ) -> Result<HashMap<CampaignId, Tally>, StoreError>;
    /// A campaign's coupons by status at `now`, `ran_out` saying which
    /// are past their validity.
    async fn campaign_figures(
        &self,
        campaign: CampaignId,
        ran_out: RanOut,
        now: Timestamp,
    ) -> Result<CampaignFigures, StoreError>;
    /// Coupons issued per minute in `[from, to)`, as every instance counted
    /// its 201s.
    async fn issued_per_minute(
        &self,
        campaign: CampaignId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Curve, StoreError>;
    /// Coupons used per UTC day in `[from, to)` (by the time of use).
    async fn used_per_day(
        &self,
        campaign: CampaignId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Curve, StoreError>;
    /// Orders placed per minute in `[from, to)`, whatever became of them.
    async fn ordered_per_minute(
        &self,
        sale: SaleId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Curve, StoreError>;
    /// Orders by sale and status (for the overview).
    async fn orders_by_sale(
        &self,
    ) -> Result<HashMap<SaleId, HashMap<OrderStatus, u64>>, StoreError>;
    async fn user_card(&self, user: UserId) -> Result<Option<UserCard>, StoreError>;
    async fn user_coupons(&self, user: UserId, now: Timestamp) -> Result<UserCoupons, StoreError>;
    async fn user_orders_by_status(
        &self,
        user: UserId,
    ) -> Result<HashMap<OrderStatus, u64>, StoreError>;
}

/// The `claim_counts` columns, in [`Outcome::ALL`] order.
pub(super) fn outcome_columns() -> String {
    Outcome::ALL.map(Outcome::name).join(", ")
}

/// Rows of `(bucket, n)` as a curve of bucket starts.
pub(super) fn curve<R: super::columns::Columns>(
    rows: &[R],
    bucket_ms: i64,
) -> Result<Curve, sqlx::Error> {
    rows.iter()
        .map(|r| Ok((Timestamp(r.int("bucket")? * bucket_ms), r.int("n")? as u64)))
        .collect()
}

/// A `Tally` from a row holding one column per outcome.
pub(super) fn tally<R: super::columns::Columns>(row: &R) -> Result<Tally, sqlx::Error> {
    let mut t = [0; OUTCOMES];
    for o in Outcome::ALL {
        t[o.index()] = row.int(o.name())?.max(0) as u64;
    }
    Ok(t)
}

/// A user's coupon counts by status at `$2` (the user-slot index; a user
/// holds few coupons).
pub(super) const USER_COUPON_COUNTS: &str = "SELECT COUNT(*) AS issued, \
     COALESCE(SUM(CASE WHEN status = 'available' AND valid_until > $2 THEN 1 ELSE 0 END), 0) AS available, \
     COALESCE(SUM(CASE WHEN status = 'reserved' THEN 1 ELSE 0 END), 0) AS reserved, \
     COALESCE(SUM(CASE WHEN status = 'used' THEN 1 ELSE 0 END), 0) AS used \
     FROM coupons WHERE user_id = $1";

/// [`StatsStore`] for a store with a `pool` of database `$db`.
macro_rules! stats_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::StatsStore for $store {
            async fn save_claim_counts(
                &self,
                instance: &str,
                counts: &[(CampaignId, $crate::claim_stats::Tally)],
                minutes: &[(CampaignId, i64, u64)],
                now: Timestamp,
            ) -> Result<(), StoreError> {
                use $crate::claim_stats::Outcome;
                if counts.is_empty() && minutes.is_empty() {
                    return Ok(());
                }
                let columns = $crate::store::stats::outcome_columns();
                let values = (0..Outcome::ALL.len())
                    .map(|i| format!("${}", i + 4))
                    .collect::<Vec<_>>()
                    .join(", ");
                let set = Outcome::ALL
                    .map(|o| format!("{0} = excluded.{0}", o.name()))
                    .join(", ");
                let sql = format!(
                    "INSERT INTO claim_counts (campaign_id, instance, updated_at, {columns}) \
                     VALUES ($1, $2, $3, {values}) \
                     ON CONFLICT (campaign_id, instance) DO UPDATE SET updated_at = excluded.updated_at, {set}"
                );
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                for (campaign, tally) in counts {
                    let mut q = sqlx::query(&sql)
                        .bind(campaign.to_string())
                        .bind(instance)
                        .bind(now.0);
                    for n in tally {
                        q = q.bind(i64::try_from(*n).unwrap_or(i64::MAX));
                    }
                    q.execute(&mut *tx).await?;
                }
                for (campaign, minute, issued) in minutes {
                    sqlx::query(
                        "INSERT INTO claim_minutes (campaign_id, instance, minute, issued) \
                         VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (campaign_id, minute, instance) DO UPDATE SET issued = excluded.issued",
                    )
                    .bind(campaign.to_string())
                    .bind(instance)
                    .bind(*minute)
                    .bind(i64::try_from(*issued).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn claim_counts(
                &self,
                campaign: Option<CampaignId>,
            ) -> Result<std::collections::HashMap<CampaignId, $crate::claim_stats::Tally>, StoreError>
            {
                use $crate::claim_stats::Outcome;
                use $crate::store::columns::Columns as _;
                // SUM of a BIGINT is a NUMERIC on PostgreSQL: cast back.
                let sums = Outcome::ALL
                    .map(|o| format!("CAST(SUM({0}) AS BIGINT) AS {0}", o.name()))
                    .join(", ");
                let filter = if campaign.is_some() { "WHERE campaign_id = $1" } else { "" };
                let sql = format!(
                    "SELECT campaign_id, {sums} FROM claim_counts {filter} GROUP BY campaign_id"
                );
                let mut q = sqlx::query(&sql);
                if let Some(c) = campaign {
                    q = q.bind(c.to_string());
                }
                let rows = q.fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            parse_id(&r.text("campaign_id")?)?,
                            $crate::store::stats::tally(r)?,
                        ))
                    })
                    .collect()
            }

            async fn campaign_figures(
                &self,
                campaign: CampaignId,
                ran_out: $crate::store::stats::RanOut,
                now: Timestamp,
            ) -> Result<$crate::store::CampaignFigures, StoreError> {
                use $crate::store::stats::RanOut;
                use $crate::store::columns::Columns as _;
                // Index reads (and nothing a claim writes): every coupon
                // (index-only on (campaign_id, seq)), the lowest seq's issue
                // time, those with an order (a partial index).
                let all = sqlx::query("SELECT COUNT(*) AS n FROM coupons WHERE campaign_id = $1")
                    .bind(campaign.to_string())
                    .fetch_one(&self.pool)
                    .await?;
                let first = sqlx::query(
                    "SELECT issued_at FROM coupons WHERE campaign_id = $1 ORDER BY seq LIMIT 1",
                )
                .bind(campaign.to_string())
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.int("issued_at"))
                .transpose()?
                .map(Timestamp);
                // Past their validity: the exact count is a pass over the
                // campaign's coupons, needed only while they run out (the
                // caller says none or all the rest of the time).
                let past = match ran_out {
                    RanOut::None => 0,
                    RanOut::All => all.int("n")?,
                    RanOut::IssuedBy(before) => sqlx::query(
                        "SELECT COUNT(*) AS n FROM coupons WHERE campaign_id = $1 AND issued_at <= $2",
                    )
                    .bind(campaign.to_string())
                    .bind(before.0)
                    .fetch_one(&self.pool)
                    .await?
                    .int("n")?,
                };
                let ordered = sqlx::query(
                    "SELECT COALESCE(SUM(CASE WHEN status = 'reserved' THEN 1 ELSE 0 END), 0) AS reserved, \
                     COALESCE(SUM(CASE WHEN status = 'used' THEN 1 ELSE 0 END), 0) AS used, \
                     COALESCE(SUM(CASE WHEN valid_until <= $2 THEN 1 ELSE 0 END), 0) AS past, \
                     CAST(COALESCE(SUM(CASE WHEN status = 'used' THEN discount_amount ELSE 0 END), 0) AS BIGINT) AS discount, \
                     CAST(COALESCE(SUM(CASE WHEN status = 'used' THEN order_amount ELSE 0 END), 0) AS BIGINT) AS amount \
                     FROM coupons WHERE campaign_id = $1 AND order_id IS NOT NULL",
                )
                .bind(campaign.to_string())
                .bind(now.0)
                .fetch_one(&self.pool)
                .await?;
                let last = sqlx::query(
                    "SELECT MIN(c.issued_at) AS at FROM coupons c JOIN campaigns k ON k.id = c.campaign_id \
                     WHERE c.campaign_id = $1 AND c.seq = k.total_quantity",
                )
                .bind(campaign.to_string())
                .fetch_one(&self.pool)
                .await?;
                let n = |v: i64| v.max(0) as u64;
                let issued = n(all.int("n")?);
                let (reserved, used) = (n(ordered.int("reserved")?), n(ordered.int("used")?));
                // Past their validity and not held by an order: expired.
                let expired = n(past).saturating_sub(n(ordered.int("past")?));
                Ok($crate::store::CampaignFigures {
                    issued,
                    available: issued.saturating_sub(reserved + used + expired),
                    reserved,
                    used,
                    expired,
                    discount_total: ordered.int("discount")?,
                    order_amount_total: ordered.int("amount")?,
                    first_issued_at: first,
                    sold_out_at: last.opt_int("at")?.map(Timestamp),
                })
            }

            async fn issued_per_minute(
                &self,
                campaign: CampaignId,
                from: Timestamp,
                to: Timestamp,
            ) -> Result<$crate::store::stats::Curve, StoreError> {
                use $crate::store::stats::MINUTE_MS;
                // Minutes that overlap the window.
                let rows = sqlx::query(
                    "SELECT minute AS bucket, CAST(SUM(issued) AS BIGINT) AS n FROM claim_minutes \
                     WHERE campaign_id = $1 AND minute >= $2 AND minute < $3 \
                     GROUP BY minute ORDER BY minute",
                )
                .bind(campaign.to_string())
                .bind(from.0.div_euclid(MINUTE_MS))
                .bind((to.0 + MINUTE_MS - 1).div_euclid(MINUTE_MS))
                .fetch_all(&self.pool)
                .await?;
                Ok($crate::store::stats::curve(&rows, MINUTE_MS)?)
            }

            async fn used_per_day(
                &self,
                campaign: CampaignId,
                from: Timestamp,
                to: Timestamp,
            ) -> Result<$crate::store::stats::Curve, StoreError> {
                use $crate::store::stats::DAY_MS;
                let rows = sqlx::query(
                    "SELECT used_at / 86400000 AS bucket, COUNT(*) AS n FROM coupons \
                     WHERE campaign_id = $1 AND order_id IS NOT NULL AND status = 'used' \
                     AND used_at >= $2 AND used_at < $3 \
                     GROUP BY used_at / 86400000 ORDER BY bucket",
                )
                .bind(campaign.to_string())
                .bind(from.0)
                .bind(to.0)
                .fetch_all(&self.pool)
                .await?;
                Ok($crate::store::stats::curve(&rows, DAY_MS)?)
            }

            async fn ordered_per_minute(
                &self,
                sale: $crate::domain::ids::SaleId,
                from: Timestamp,
                to: Timestamp,
            ) -> Result<$crate::store::stats::Curve, StoreError> {
                use $crate::store::stats::MINUTE_MS;
                let rows = sqlx::query(
                    "SELECT created_at / 60000 AS bucket, COUNT(*) AS n FROM orders \
                     WHERE sale_id = $1 AND created_at >= $2 AND created_at < $3 \
                     GROUP BY created_at / 60000 ORDER BY bucket",
                )
                .bind(sale.to_string())
                .bind(from.0)
                .bind(to.0)
                .fetch_all(&self.pool)
                .await?;
                Ok($crate::store::stats::curve(&rows, MINUTE_MS)?)
            }

            async fn orders_by_sale(
                &self,
            ) -> Result<
                std::collections::HashMap<
                    $crate::domain::ids::SaleId,
                    std::collections::HashMap<$crate::domain::sale::OrderStatus, u64>,
                >,
                StoreError,
            > {
                use $crate::domain::sale::OrderStatus;
                use $crate::store::columns::Columns as _;
                let rows = sqlx::query(
                    "SELECT sale_id, status, COUNT(*) AS n FROM orders GROUP BY sale_id, status",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut by_sale = std::collections::HashMap::<_, std::collections::HashMap<_, _>>::new();
                for r in &rows {
                    let Some(status) = OrderStatus::parse(&r.text("status")?) else {
                        continue;
                    };
                    by_sale
                        .entry(parse_id(&r.text("sale_id")?)?)
                        .or_default()
                        .insert(status, r.int("n")? as u64);
                }
                Ok(by_sale)
            }

            async fn user_card(
                &self,
                user: UserId,
            ) -> Result<Option<$crate::store::stats::UserCard>, StoreError> {
                use $crate::store::columns::Columns as _;
                let row = sqlx::query("SELECT email, role, created_at FROM users WHERE id = $1")
                    .bind(user.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let role = row.text("role")?;
                Ok(Some($crate::store::stats::UserCard {
                    email: row.text("email")?,
                    role: $crate::domain::account::Role::parse(&role).ok_or_else(|| {
                        sqlx::Error::Decode(format!("unknown role in the record: {role:?}").into())
                    })?,
                    created_at: Timestamp(row.int("created_at")?),
                }))
            }

            async fn user_coupons(
                &self,
                user: UserId,
                now: Timestamp,
            ) -> Result<$crate::store::stats::UserCoupons, StoreError> {
                use $crate::store::columns::Columns as _;
                let sql = $crate::store::stats::USER_COUPON_COUNTS;
                let row = sqlx::query(sql)
                    .bind(user.to_string())
                    .bind(now.0)
                    .fetch_one(&self.pool)
                    .await?;
                let n = |col: &str| row.int(col).map(|v| v.max(0) as u64);
                let (issued, available, reserved, used) =
                    (n("issued")?, n("available")?, n("reserved")?, n("used")?);
                Ok($crate::store::stats::UserCoupons {
                    available,
                    reserved,
                    used,
                    expired: issued.saturating_sub(available + reserved + used),
                })
            }

            async fn user_orders_by_status(
                &self,
                user: UserId,
            ) -> Result<std::collections::HashMap<$crate::domain::sale::OrderStatus, u64>, StoreError>
            {
                use $crate::domain::sale::OrderStatus;
                use $crate::store::columns::Columns as _;
                let rows = sqlx::query(
                    "SELECT status, COUNT(*) AS n FROM orders WHERE user_id = $1 GROUP BY status",
                )
                .bind(user.to_string())
                .fetch_all(&self.pool)
                .await?;
                let mut counts = std::collections::HashMap::new();
                for r in &rows {
                    if let Some(status) = OrderStatus::parse(&r.text("status")?) {
                        counts.insert(status, r.int("n")? as u64);
                    }
                }
                Ok(counts)
            }
        }
    };
}
pub(super) use stats_queries;
