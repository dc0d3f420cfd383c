//! Coupons: issued rows (written by the group commit), wallets, spends and
//! the winners list.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use super::campaigns::terms;
use super::columns::{Columns, parse_id};
use super::{Reports, StoreError};
use crate::domain::campaign::Campaign;
use crate::domain::coupon::{Coupon, CouponStatus, Reservation, Spend, StoredStatus};
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::timestamp::Timestamp;

/// A coupon the gate admitted, ready to be written.
#[derive(Debug, Clone)]
pub struct NewCouponRow {
    pub id: CouponId,
    pub campaign_id: CampaignId,
    pub user_id: UserId,
    pub seq: u32,
    pub user_seq: u32,
    pub idempotency_key: Option<Box<str>>,
    pub issued_at: Timestamp,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
    /// The gate generation that admitted it: PostgreSQL refuses the row if the
    /// gate was rebuilt since (see [`CouponStore::fence_and_load`]).
    pub gate_epoch: u64,
    /// The unique code it was redeemed with (the record refuses a second
    /// coupon with the same code).
    pub code: Option<Box<str>>,
    /// The request that claimed it, for its outbound `coupon.issued`.
    pub trace: Option<std::sync::Arc<crate::trace::Trace>>,
}

/// A new coupon's `coupon.issued` as the outbox keeps it (its id is the
/// coupon's), for the group-commit writers to write with the coupon.
pub(super) fn issued_outbox(r: &NewCouponRow) -> super::OutboxRow {
    let payload = crate::events::Payload::CouponIssued {
        coupon_id: r.id,
        seq: r.seq,
        valid_until: r.valid_until,
    };
    super::OutboxRow {
        id: r.id.0,
        event_type: crate::events::EventKind::CouponIssued.as_str().to_owned(),
        body: crate::events::outbound_json(
            r.id.0,
            crate::events::EventKind::CouponIssued,
            r.issued_at,
            payload.data(),
            Some(r.user_id),
            Some(r.campaign_id),
        ),
        created_at: r.issued_at,
        trace: r.trace.clone(),
    }
}

/// Which coupons a wallet read returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct CouponFilter {
    pub campaign: Option<CampaignId>,
    pub status: Option<CouponStatus>,
}

/// One coupon of a campaign as the record holds it, in `seq` order: what the
/// gate is rebuilt from and what the tests check the promises against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedRow {
    pub id: CouponId,
    pub user: UserId,
    pub seq: u32,
    pub user_seq: u32,
    pub key: Option<String>,
}

/// What a gate rebuild starts from: the campaign's live settings, its new
/// gate generation and every coupon it issued.
#[derive(Debug)]
pub struct FencedCampaign {
    pub campaign: Campaign,
    pub epoch: u64,
    pub issued: Vec<IssuedRow>,
}

#[async_trait]
pub trait CouponStore {
    async fn get_coupon(&self, id: CouponId) -> Result<Option<Coupon>, StoreError>;
    /// A coupon and its would-be buyer's points balance, in one read (an
    /// order with both checks them before it takes a unit).
    async fn coupon_and_points(
        &self,
        id: CouponId,
        user: UserId,
    ) -> Result<(Option<Coupon>, i64), StoreError>;
    /// These coupons (one read for a batch); unknown ids are left out.
    async fn get_coupons(&self, ids: &[CouponId]) -> Result<Vec<Coupon>, StoreError>;
    /// A user's coupons, newest first; `before` is the last id of the previous page.
    async fn list_coupons(
        &self,
        user: UserId,
        filter: CouponFilter,
        now: Timestamp,
        limit: u32,
        before: Option<CouponId>,
    ) -> Result<Vec<Coupon>, StoreError>;
    /// Spend an available coupon and, in the same transaction, write the
    /// reports of it (webhook deliveries, outbound events). `false` if it was no longer
    /// available (a concurrent spend won; nothing is written): the caller
    /// re-reads and answers from that.
    async fn mark_used(
        &self,
        id: CouponId,
        spend: &Spend,
        reports: &Reports,
    ) -> Result<bool, StoreError>;
    /// Undo the spend made by `order_id`, with the reports of it.
    /// `false` if the coupon was not used by it (nothing is written).
    async fn cancel_use(
        &self,
        id: CouponId,
        order_id: &str,
        reports: &Reports,
    ) -> Result<bool, StoreError>;
    /// A campaign's coupons with their owners' emails, in `seq` order,
    /// from `after_seq + 1` on (the winners list).
    async fn winners(
        &self,
        campaign: CampaignId,
        after_seq: u32,
        limit: u32,
    ) -> Result<Vec<(Coupon, String)>, StoreError>;
    /// Every coupon of one campaign, in `seq` order.
    async fn issued_rows(&self, campaign: CampaignId) -> Result<Vec<IssuedRow>, StoreError>;
    /// How many of a campaign's coupons are held for an order (reserved)
    /// and how many are used, as the record has them now.
    async fn checkout_counts(&self, campaign: CampaignId) -> Result<(i64, i64), StoreError>;
    /// Every issued coupon, by campaign, for rebuilding the embedded gate.
    async fn issued_by_campaign(&self) -> Result<HashMap<CampaignId, Vec<IssuedRow>>, StoreError>;
}

/// The group-commit writer's own connection.
#[async_trait]
pub trait CouponWriter: Send {
    /// Write one batch in one transaction: all rows or an error. Rows whose
    /// gate generation is stale are left out; the answer is what landed.
    async fn insert(&mut self, rows: &[&NewCouponRow]) -> Result<HashSet<CouponId>, StoreError>;
    /// Which of these coupons are in the record (to settle a batch whose
    /// commit reported an error: a COMMIT can fail to answer yet land).
    /// Waits for a transaction still writing them to finish first.
    async fn existing(&mut self, rows: &[&NewCouponRow]) -> Result<HashSet<CouponId>, StoreError>;
}

pub(super) const SELECT_COUPONS: &str = "SELECT c.id, c.campaign_id, c.user_id, c.seq, c.status, c.issued_at, c.valid_from, \
     c.valid_until, c.used_at, c.order_id, c.order_amount, c.discount_amount AS spent_discount, c.reserved_until, \
     k.discount_type, k.discount_amount, k.discount_percent, k.discount_max, k.min_order_amount, \
     k.valid_days, k.valid_from AS terms_valid_from, k.valid_until AS terms_valid_until \
     FROM coupons c JOIN campaigns k ON k.id = c.campaign_id";

pub(super) const MARK_USED: &str = "UPDATE coupons SET status = 'used', used_at = $1, order_id = $2, order_amount = $3, \
     discount_amount = $4 WHERE id = $5 AND status = 'available'";

pub(super) const CANCEL_USE: &str = "UPDATE coupons SET status = 'available', used_at = NULL, order_id = NULL, \
     order_amount = NULL, discount_amount = NULL WHERE id = $1 AND status = 'used' AND order_id = $2";

pub(super) const ISSUED_COLUMNS: &str = "id, campaign_id, user_id, seq, user_seq, idempotency_key";

pub(super) fn coupon(row: &impl Columns) -> Result<Coupon, sqlx::Error> {
    let stored_status = StoredStatus::parse(&row.text("status")?)
        .ok_or_else(|| sqlx::Error::Decode("unknown coupon status in the record".into()))?;
    let spend = match (row.opt_text("order_id")?, row.opt_int("used_at")?) {
        (Some(order_id), Some(used_at)) => Some(Spend {
            order_id,
            order_amount: row.opt_int("order_amount")?.unwrap_or(0),
            discount_amount: row.opt_int("spent_discount")?.unwrap_or(0),
            used_at: Timestamp(used_at),
        }),
        _ => None,
    };
    let reservation = match (row.opt_text("order_id")?, row.opt_int("reserved_until")?) {
        (Some(order_id), Some(until)) => Some(Reservation {
            order_id,
            order_amount: row.opt_int("order_amount")?.unwrap_or(0),
            discount_amount: row.opt_int("spent_discount")?.unwrap_or(0),
            expires_at: Timestamp(until),
        }),
        _ => None,
    };
    Ok(Coupon {
        id: parse_id(&row.text("id")?)?,
        campaign_id: parse_id(&row.text("campaign_id")?)?,
        user_id: parse_id(&row.text("user_id")?)?,
        seq: row.int("seq")? as u32,
        stored_status,
        issued_at: Timestamp(row.int("issued_at")?),
        valid_from: Timestamp(row.int("valid_from")?),
        valid_until: Timestamp(row.int("valid_until")?),
        terms: terms(row)?,
        spend,
        reservation,
    })
}

pub(super) fn issued(row: &impl Columns) -> Result<IssuedRow, sqlx::Error> {
    Ok(IssuedRow {
        id: parse_id(&row.text("id")?)?,
        user: parse_id(&row.text("user_id")?)?,
        seq: row.int("seq")? as u32,
        user_seq: row.int("user_seq")? as u32,
        key: row.opt_text("idempotency_key")?,
    })
}

/// [`CouponStore`] for a store with a `pool` of database `$db`.
macro_rules! coupon_queries {
    ($store:ty, $db:ty) => {
        impl $store {
            /// One conditional UPDATE of a coupon and, if it changed the row,
            /// the webhook deliveries that report it, in one transaction.
            /// `false` (nothing written) if the UPDATE matched no row.
            async fn update_reported<'q>(
                &self,
                update: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
                reports: &$crate::store::Reports,
            ) -> Result<bool, StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                if update.execute(&mut *tx).await?.rows_affected() != 1 {
                    return Ok(false);
                }
                $crate::store::outbox::insert_reports(&mut *tx, reports).await?;
                tx.commit().await?;
                Ok(true)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::CouponStore for $store {
            async fn get_coupons(&self, ids: &[CouponId]) -> Result<Vec<Coupon>, StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "{} WHERE c.id IN (",
                    $crate::store::coupons::SELECT_COUPONS
                ));
                let mut list = q.separated(", ");
                for id in ids {
                    list.push_bind(id.to_string());
                }
                q.push(")");
                let rows = q.build().fetch_all(&self.pool).await?;
                Ok(rows
                    .iter()
                    .map($crate::store::coupons::coupon)
                    .collect::<Result<_, _>>()?)
            }

            async fn get_coupon(&self, id: CouponId) -> Result<Option<Coupon>, StoreError> {
                static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    format!("{} WHERE c.id = $1", $crate::store::coupons::SELECT_COUPONS)
                });
                self.read_one(
                    SQL.as_str(),
                    $crate::store::sql::args![id.to_string()],
                    |row| Ok($crate::store::coupons::coupon(row)?),
                )
                .await
            }

            async fn coupon_and_points(
                &self,
                id: CouponId,
                user: UserId,
            ) -> Result<(Option<Coupon>, i64), StoreError> {
                use $crate::store::columns::Columns as _;
                static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                    $crate::store::coupons::SELECT_COUPONS.replacen(
                        " FROM coupons c",
                        ", (SELECT balance FROM point_accounts WHERE user_id = $2) AS points_balance \
                         FROM coupons c",
                        1,
                    ) + " WHERE c.id = $1"
                });
                let read = self
                    .read_one(
                        SQL.as_str(),
                        $crate::store::sql::args![id.to_string(), user.to_string()],
                        |row| {
                            let balance = row.opt_int("points_balance")?.unwrap_or(0);
                            Ok(($crate::store::coupons::coupon(row)?, balance))
                        },
                    )
                    .await?;
                // No coupon, no balance: an order with an unknown coupon
                // goes no further.
                Ok(match read {
                    Some((coupon, balance)) => (Some(coupon), balance),
                    None => (None, 0),
                })
            }

            async fn list_coupons(
                &self,
                user: UserId,
                filter: CouponFilter,
                now: Timestamp,
                limit: u32,
                before: Option<CouponId>,
            ) -> Result<Vec<Coupon>, StoreError> {
                let mut q = sqlx::QueryBuilder::<$db>::new($crate::store::coupons::SELECT_COUPONS);
                q.push(" WHERE c.user_id = ").push_bind(user.to_string());
                if let Some(campaign) = filter.campaign {
                    q.push(" AND c.campaign_id = ")
                        .push_bind(campaign.to_string());
                }
                match filter.status {
                    None => {}
                    Some(CouponStatus::Available) => {
                        q.push(" AND c.status = 'available' AND c.valid_until > ")
                            .push_bind(now.0);
                    }
                    Some(CouponStatus::Expired) => {
                        q.push(" AND c.status = 'available' AND c.valid_until <= ")
                            .push_bind(now.0);
                    }
                    Some(CouponStatus::Used) => {
                        q.push(" AND c.status = 'used'");
                    }
                    Some(CouponStatus::Reserved) => {
                        q.push(" AND c.status = 'reserved'");
                    }
                }
                if let Some(before) = before {
                    q.push(" AND c.id < ").push_bind(before.to_string());
                }
                q.push(" ORDER BY c.id DESC LIMIT ").push_bind(limit as i64);
                let rows = q.build().fetch_all(&self.pool).await?;
                Ok(rows
                    .iter()
                    .map($crate::store::coupons::coupon)
                    .collect::<Result<_, _>>()?)
            }

            async fn mark_used(
                &self,
                id: CouponId,
                spend: &Spend,
                reports: &$crate::store::Reports,
            ) -> Result<bool, StoreError> {
                let used = sqlx::query($crate::store::coupons::MARK_USED)
                    .bind(spend.used_at.0)
                    .bind(&spend.order_id)
                    .bind(spend.order_amount)
                    .bind(spend.discount_amount)
                    .bind(id.to_string());
                self.update_reported(used, reports).await
            }

            async fn cancel_use(
                &self,
                id: CouponId,
                order_id: &str,
                reports: &$crate::store::Reports,
            ) -> Result<bool, StoreError> {
                let cancelled = sqlx::query($crate::store::coupons::CANCEL_USE)
                    .bind(id.to_string())
                    .bind(order_id);
                self.update_reported(cancelled, reports).await
            }

            async fn winners(
                &self,
                campaign: CampaignId,
                after_seq: u32,
                limit: u32,
            ) -> Result<Vec<(Coupon, String)>, StoreError> {
                // The (campaign_id, seq) unique index serves this range scan.
                let rows = sqlx::query(&format!(
                    "{} JOIN users u ON u.id = c.user_id \
                     WHERE c.campaign_id = $1 AND c.seq > $2 ORDER BY c.seq LIMIT $3",
                    $crate::store::coupons::SELECT_COUPONS.replacen(
                        "SELECT ",
                        "SELECT u.email AS owner_email, ",
                        1
                    )
                ))
                .bind(campaign.to_string())
                .bind(after_seq as i64)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        Ok((
                            $crate::store::coupons::coupon(r)?,
                            $crate::store::columns::Columns::text(r, "owner_email")?,
                        ))
                    })
                    .collect::<Result<_, sqlx::Error>>()?)
            }

            async fn checkout_counts(
                &self,
                campaign: CampaignId,
            ) -> Result<(i64, i64), StoreError> {
                // Reserved and used coupons are the ones with an order.
                let rows = sqlx::query(
                    "SELECT status, COUNT(*) AS n FROM coupons \
                     WHERE campaign_id = $1 AND order_id IS NOT NULL GROUP BY status",
                )
                .bind(campaign.to_string())
                .fetch_all(&self.pool)
                .await?;
                let (mut reserved, mut used) = (0, 0);
                for row in &rows {
                    let n = $crate::store::columns::Columns::int(row, "n")?;
                    match $crate::store::columns::Columns::text(row, "status")?.as_str() {
                        "reserved" => reserved = n,
                        "used" => used = n,
                        _ => {}
                    }
                }
                Ok((reserved, used))
            }

            async fn issued_rows(
                &self,
                campaign: CampaignId,
            ) -> Result<Vec<IssuedRow>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM coupons WHERE campaign_id = $1 ORDER BY seq",
                    $crate::store::coupons::ISSUED_COLUMNS
                ))
                .bind(campaign.to_string())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::coupons::issued)
                    .collect::<Result<_, _>>()?)
            }

            async fn issued_by_campaign(
                &self,
            ) -> Result<HashMap<CampaignId, Vec<IssuedRow>>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM coupons",
                    $crate::store::coupons::ISSUED_COLUMNS
                ))
                .fetch_all(&self.pool)
                .await?;
                let mut by_campaign: HashMap<CampaignId, Vec<IssuedRow>> = HashMap::new();
                for row in &rows {
                    let campaign: CampaignId =
                        parse_id(&$crate::store::columns::Columns::text(row, "campaign_id")?)?;
                    by_campaign
                        .entry(campaign)
                        .or_default()
                        .push($crate::store::coupons::issued(row)?);
                }
                Ok(by_campaign)
            }
        }
    };
}
pub(super) use coupon_queries;
