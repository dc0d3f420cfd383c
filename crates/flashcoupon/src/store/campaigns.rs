//! SQL for campaigns.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Store, StoreError, parse_id};
use crate::domain::campaign::{Campaign, CouponTerms, Validity};
use crate::domain::discount::Discount;
use crate::domain::ids::CampaignId;
use crate::domain::timestamp::Timestamp;

const COLUMNS: &str = "id, name, discount_type, discount_amount, discount_percent, discount_max, \
     min_order_amount, total_quantity, per_user_limit, issue_starts_at, issue_ends_at, \
     valid_days, valid_from, valid_until, paused, created_at";

/// The coupon terms from a row that carries the campaign's term columns
/// (also used by coupon queries, which join campaigns).
pub(super) fn terms_from_row(row: &SqliteRow) -> Result<CouponTerms, sqlx::Error> {
    let discount = match row.try_get::<&str, _>("discount_type")? {
        "fixed" => Discount::Fixed {
            amount: row.try_get("discount_amount")?,
        },
        _ => Discount::Percent {
            percent: row.try_get("discount_percent")?,
            max_amount: row.try_get("discount_max")?,
        },
    };
    let validity = match row.try_get::<Option<i64>, _>("valid_days")? {
        Some(days) => Validity::Days(days as u32),
        None => Validity::Window {
            from: row
                .try_get::<Option<i64>, _>("terms_valid_from")?
                .map(Timestamp),
            until: Timestamp(row.try_get("terms_valid_until")?),
        },
    };
    Ok(CouponTerms {
        discount,
        min_order_amount: row.try_get("min_order_amount")?,
        validity,
    })
}

fn campaign_from_row(row: &SqliteRow) -> Result<Campaign, sqlx::Error> {
    Ok(Campaign {
        id: parse_id(row.try_get("id")?)?,
        name: row.try_get("name")?,
        terms: terms_from_row(row)?,
        total_quantity: row.try_get::<i64, _>("total_quantity")? as u32,
        per_user_limit: row.try_get::<i64, _>("per_user_limit")? as u32,
        issue_starts_at: Timestamp(row.try_get("issue_starts_at")?),
        issue_ends_at: Timestamp(row.try_get("issue_ends_at")?),
        paused: row.try_get("paused")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

/// The SELECT list with the validity columns under the names `terms_from_row` reads.
fn select() -> String {
    format!(
        "SELECT {COLUMNS}, valid_from AS terms_valid_from, valid_until AS terms_valid_until FROM campaigns"
    )
}

impl Store {
    pub async fn insert_campaign(&self, c: &Campaign) -> Result<(), StoreError> {
        let (d_type, d_amount, d_percent, d_max) = match c.terms.discount {
            Discount::Fixed { amount } => ("fixed", Some(amount), None, None),
            Discount::Percent {
                percent,
                max_amount,
            } => ("percent", None, Some(percent), max_amount),
        };
        let (valid_days, valid_from, valid_until) = match c.terms.validity {
            Validity::Days(d) => (Some(d as i64), None, None),
            Validity::Window { from, until } => (None, from.map(|t| t.0), Some(until.0)),
        };
        sqlx::query(&format!(
            "INSERT INTO campaigns ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(c.id.to_string())
        .bind(&c.name)
        .bind(d_type)
        .bind(d_amount)
        .bind(d_percent)
        .bind(d_max)
        .bind(c.terms.min_order_amount)
        .bind(c.total_quantity as i64)
        .bind(c.per_user_limit as i64)
        .bind(c.issue_starts_at.0)
        .bind(c.issue_ends_at.0)
        .bind(valid_days)
        .bind(valid_from)
        .bind(valid_until)
        .bind(c.paused)
        .bind(c.created_at.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StoreError> {
        let row = sqlx::query(&format!("{} WHERE id = ?", select()))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(campaign_from_row).transpose()?)
    }

    /// Newest first; `before` is the last id of the previous page.
    pub async fn list_campaigns(
        &self,
        limit: u32,
        before: Option<CampaignId>,
    ) -> Result<Vec<Campaign>, StoreError> {
        let rows = match before {
            Some(before) => {
                sqlx::query(&format!(
                    "{} WHERE id < ? ORDER BY id DESC LIMIT ?",
                    select()
                ))
                .bind(before.to_string())
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("{} ORDER BY id DESC LIMIT ?", select()))
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows
            .iter()
            .map(campaign_from_row)
            .collect::<Result<_, _>>()?)
    }

    pub async fn all_campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let rows = sqlx::query(&select()).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(campaign_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Apply the fields that are `Some`, in one statement.
    pub async fn update_campaign(
        &self,
        id: CampaignId,
        paused: Option<bool>,
        issue_ends_at: Option<Timestamp>,
        total_quantity: Option<u32>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE campaigns SET paused = COALESCE(?, paused), issue_ends_at = COALESCE(?, issue_ends_at), \
             total_quantity = COALESCE(?, total_quantity) WHERE id = ?",
        )
        .bind(paused)
        .bind(issue_ends_at.map(|t| t.0))
        .bind(total_quantity.map(|q| q as i64))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
