//! SQL for coupons: the group-commit insert, wallet reads, spending, and the
//! scan that rebuilds the gate at start-up.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection};

use super::campaigns::terms_from_row;
use super::{Store, StoreError, parse_id};
use crate::domain::coupon::{Coupon, CouponStatus, Spend, StoredStatus};
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::timestamp::Timestamp;
use crate::gate::RestoredCoupon;

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
}

/// Which coupons a wallet read returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct CouponFilter {
    pub campaign: Option<CampaignId>,
    pub status: Option<CouponStatus>,
}

const INSERT_COLUMNS: usize = 9;
/// Multi-row INSERTs come in power-of-two sizes only: a batch is written in
/// at most seven statements (each a hand-off to SQLite's thread), and the
/// statement cache holds seven prepared statements, not one per batch length.
const CHUNKS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];

fn insert_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        CHUNKS
            .iter()
            .map(|&n| {
                let one = format!("({})", ["?"; INSERT_COLUMNS].join(", "));
                format!(
                    "INSERT INTO coupons (id, campaign_id, user_id, seq, user_seq, idempotency_key, \
                     issued_at, valid_from, valid_until) VALUES {}",
                    vec![one; n].join(", ")
                )
            })
            .collect()
    });
    let at = CHUNKS
        .iter()
        .position(|&n| n == rows)
        .unwrap_or(CHUNKS.len() - 1);
    &all[at]
}

const SELECT: &str = "SELECT c.id, c.campaign_id, c.user_id, c.seq, c.status, c.issued_at, c.valid_from, \
     c.valid_until, c.used_at, c.order_id, c.order_amount, c.discount_amount AS spent_discount, \
     k.discount_type, k.discount_amount, k.discount_percent, k.discount_max, k.min_order_amount, \
     k.valid_days, k.valid_from AS terms_valid_from, k.valid_until AS terms_valid_until \
     FROM coupons c JOIN campaigns k ON k.id = c.campaign_id";

fn coupon_from_row(row: &SqliteRow) -> Result<Coupon, sqlx::Error> {
    let stored_status = StoredStatus::parse(row.try_get("status")?)
        .ok_or_else(|| sqlx::Error::Decode("unknown coupon status in the record".into()))?;
    let spend = match (
        row.try_get::<Option<String>, _>("order_id")?,
        row.try_get::<Option<i64>, _>("used_at")?,
    ) {
        (Some(order_id), Some(used_at)) => Some(Spend {
            order_id,
            order_amount: row.try_get::<Option<i64>, _>("order_amount")?.unwrap_or(0),
            discount_amount: row
                .try_get::<Option<i64>, _>("spent_discount")?
                .unwrap_or(0),
            used_at: Timestamp(used_at),
        }),
        _ => None,
    };
    Ok(Coupon {
        id: parse_id(row.try_get("id")?)?,
        campaign_id: parse_id(row.try_get("campaign_id")?)?,
        user_id: parse_id(row.try_get("user_id")?)?,
        seq: row.try_get::<i64, _>("seq")? as u32,
        stored_status,
        issued_at: Timestamp(row.try_get("issued_at")?),
        valid_from: Timestamp(row.try_get("valid_from")?),
        valid_until: Timestamp(row.try_get("valid_until")?),
        terms: terms_from_row(row)?,
        spend,
    })
}

impl Store {
    /// Write one group-commit batch in one transaction: all rows or none.
    pub async fn insert_coupons(
        conn: &mut SqliteConnection,
        rows: &[&NewCouponRow],
    ) -> Result<(), StoreError> {
        let mut tx = conn.begin().await?;
        let mut rest = rows;
        while !rest.is_empty() {
            let n = CHUNKS.into_iter().find(|&n| n <= rest.len()).unwrap_or(1);
            let (chunk, tail) = rest.split_at(n);
            let mut q = sqlx::query(insert_sql(n));
            for r in chunk {
                q = q
                    .bind(r.id.to_string())
                    .bind(r.campaign_id.to_string())
                    .bind(r.user_id.to_string())
                    .bind(r.seq as i64)
                    .bind(r.user_seq as i64)
                    .bind(r.idempotency_key.as_deref())
                    .bind(r.issued_at.0)
                    .bind(r.valid_from.0)
                    .bind(r.valid_until.0);
            }
            q.execute(&mut *tx).await?;
            rest = tail;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Which of these coupons are in the record (used to settle a batch
    /// whose commit reported an error).
    pub async fn existing_coupons(
        conn: &mut SqliteConnection,
        ids: &[CouponId],
    ) -> Result<HashSet<CouponId>, StoreError> {
        let mut found = HashSet::new();
        for id in ids {
            let row = sqlx::query("SELECT 1 FROM coupons WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
            if row.is_some() {
                found.insert(*id);
            }
        }
        Ok(found)
    }

    pub async fn get_coupon(&self, id: CouponId) -> Result<Option<Coupon>, StoreError> {
        let row = sqlx::query(&format!("{SELECT} WHERE c.id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(coupon_from_row).transpose()?)
    }

    /// A user's coupons, newest first; `before` is the last id of the previous page.
    pub async fn list_coupons(
        &self,
        user: UserId,
        filter: CouponFilter,
        now: Timestamp,
        limit: u32,
        before: Option<CouponId>,
    ) -> Result<Vec<Coupon>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(SELECT);
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
        Ok(rows.iter().map(coupon_from_row).collect::<Result<_, _>>()?)
    }

    /// Spend an available coupon. `false` if it was no longer available (a
    /// concurrent spend won): the caller re-reads and answers from that.
    pub async fn mark_used(&self, id: CouponId, spend: &Spend) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE coupons SET status = 'used', used_at = ?, order_id = ?, order_amount = ?, discount_amount = ? \
             WHERE id = ? AND status = 'available'",
        )
        .bind(spend.used_at.0)
        .bind(&spend.order_id)
        .bind(spend.order_amount)
        .bind(spend.discount_amount)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Undo the spend made by `order_id`. `false` if the coupon was not used by it.
    pub async fn cancel_use(&self, id: CouponId, order_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE coupons SET status = 'available', used_at = NULL, order_id = NULL, order_amount = NULL, \
             discount_amount = NULL WHERE id = ? AND status = 'used' AND order_id = ?",
        )
        .bind(id.to_string())
        .bind(order_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every issued coupon, by campaign, for rebuilding the gate.
    pub async fn issued_by_campaign(
        &self,
    ) -> Result<HashMap<CampaignId, Vec<RestoredCoupon>>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, campaign_id, user_id, seq, user_seq, idempotency_key FROM coupons",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by_campaign: HashMap<CampaignId, Vec<RestoredCoupon>> = HashMap::new();
        for row in rows {
            let campaign: CampaignId = parse_id(row.try_get("campaign_id")?)?;
            by_campaign
                .entry(campaign)
                .or_default()
                .push(RestoredCoupon {
                    id: parse_id(row.try_get("id")?)?,
                    user: parse_id(row.try_get("user_id")?)?,
                    seq: row.try_get::<i64, _>("seq")? as u32,
                    user_seq: row.try_get::<i64, _>("user_seq")? as u32,
                    key: row.try_get("idempotency_key")?,
                });
        }
        Ok(by_campaign)
    }
}
