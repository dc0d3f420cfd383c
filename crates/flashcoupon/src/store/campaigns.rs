//! Campaigns: their terms as stored, and the queries on them.

use async_trait::async_trait;

use super::StoreError;
use super::columns::{Columns, parse_id};
use crate::domain::campaign::{Campaign, CouponTerms, Issuance, Trigger, Validity};
use crate::domain::discount::Discount;
use crate::domain::ids::CampaignId;
use crate::domain::timestamp::Timestamp;

#[async_trait]
pub trait CampaignStore {
    /// Insert a campaign; a shared code goes with it, `Err(Unique)` while a
    /// campaign that has not ended at `now` holds that code.
    async fn insert_campaign(&self, c: &Campaign, now: Timestamp) -> Result<(), StoreError>;
    async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StoreError>;
    /// Newest first; `before` is the last id of the previous page.
    async fn list_campaigns(
        &self,
        limit: u32,
        before: Option<CampaignId>,
    ) -> Result<Vec<Campaign>, StoreError>;
    async fn all_campaigns(&self) -> Result<Vec<Campaign>, StoreError>;
    /// Apply the fields that are `Some`, in one transaction. A new
    /// `issue_ends_at` of a shared-code campaign takes its code back for
    /// the new window: `Err(Unique)` if another campaign not ended at `now`
    /// holds it (it took the code over after this one ended).
    async fn update_campaign(
        &self,
        id: CampaignId,
        paused: Option<bool>,
        issue_ends_at: Option<Timestamp>,
        total_quantity: Option<u32>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
}

pub(super) const CAMPAIGN_COLUMNS: &str = "id, name, discount_type, discount_amount, discount_percent, discount_max, \
     min_order_amount, total_quantity, per_user_limit, issue_starts_at, issue_ends_at, \
     valid_days, valid_from, valid_until, paused, created_at, issuance, code, trigger_name";

/// The campaign SELECT list with the validity columns under the names `terms` reads.
pub(super) fn select_campaigns() -> String {
    format!(
        "SELECT {CAMPAIGN_COLUMNS}, valid_from AS terms_valid_from, valid_until AS terms_valid_until FROM campaigns"
    )
}

pub(super) const INSERT_CAMPAIGN: &str = "INSERT INTO campaigns (id, name, discount_type, discount_amount, discount_percent, \
     discount_max, min_order_amount, total_quantity, per_user_limit, issue_starts_at, issue_ends_at, valid_days, \
     valid_from, valid_until, paused, created_at, issuance, code, trigger_name) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";

/// A shared code whose campaign's issuing ended is free for a new campaign.
pub(super) const FREE_ENDED_SHARED_CODE: &str =
    "DELETE FROM shared_codes WHERE code = $1 AND ends_at <= $2";
/// Fails on the primary key while a campaign that has not ended holds the code.
pub(super) const TAKE_SHARED_CODE: &str =
    "INSERT INTO shared_codes (code, campaign_id, ends_at) VALUES ($1, $2, $3)";
/// Keep (or take back) a campaign's shared code until its new end: matches
/// nothing if another campaign holds the code.
pub(super) const MOVE_SHARED_CODE_END: &str = "INSERT INTO shared_codes (code, campaign_id, ends_at) \
     SELECT code, id, $1 FROM campaigns WHERE id = $2 AND code IS NOT NULL \
     ON CONFLICT (code) DO UPDATE SET ends_at = excluded.ends_at \
     WHERE shared_codes.campaign_id = excluded.campaign_id";
/// A unique code with the same text would shadow a shared code.
pub(super) const UNIQUE_CODE_EXISTS: &str = "SELECT COUNT(*) FROM campaign_codes WHERE code = $1";

pub(super) const UPDATE_CAMPAIGN: &str = "UPDATE campaigns SET paused = COALESCE($1, paused), \
     issue_ends_at = COALESCE($2, issue_ends_at), total_quantity = COALESCE($3, total_quantity) WHERE id = $4";

/// A campaign's columns as bound by [`INSERT_CAMPAIGN`], in order after the name.
pub(super) struct CampaignColumns {
    pub discount_type: &'static str,
    pub discount_amount: Option<i64>,
    pub discount_percent: Option<i64>,
    pub discount_max: Option<i64>,
    pub valid_days: Option<i64>,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
}

impl CampaignColumns {
    pub fn of(c: &Campaign) -> Self {
        let (discount_type, discount_amount, discount_percent, discount_max) =
            match c.terms.discount {
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
        Self {
            discount_type,
            discount_amount,
            discount_percent,
            discount_max,
            valid_days,
            valid_from,
            valid_until,
        }
    }
}

/// The coupon terms from a row that carries the campaign's term columns
/// (also used by coupon queries, which join campaigns).
pub(super) fn terms(row: &impl Columns) -> Result<CouponTerms, sqlx::Error> {
    let discount = match row.text("discount_type")?.as_str() {
        "fixed" => Discount::Fixed {
            amount: row.opt_int("discount_amount")?.unwrap_or(0),
        },
        _ => Discount::Percent {
            percent: row.opt_int("discount_percent")?.unwrap_or(0),
            max_amount: row.opt_int("discount_max")?,
        },
    };
    let validity = match row.opt_int("valid_days")? {
        Some(days) => Validity::Days(days as u32),
        None => Validity::Window {
            from: row.opt_int("terms_valid_from")?.map(Timestamp),
            until: Timestamp(row.opt_int("terms_valid_until")?.unwrap_or(0)),
        },
    };
    Ok(CouponTerms {
        discount,
        min_order_amount: row.int("min_order_amount")?,
        validity,
    })
}

pub(super) fn campaign(row: &impl Columns) -> Result<Campaign, sqlx::Error> {
    Ok(Campaign {
        id: parse_id(&row.text("id")?)?,
        name: row.text("name")?,
        terms: terms(row)?,
        total_quantity: row.int("total_quantity")? as u32,
        per_user_limit: row.int("per_user_limit")? as u32,
        issue_starts_at: Timestamp(row.int("issue_starts_at")?),
        issue_ends_at: Timestamp(row.int("issue_ends_at")?),
        paused: row.flag("paused")?,
        created_at: Timestamp(row.int("created_at")?),
        issuance: Issuance::parse(&row.text("issuance")?).unwrap_or_default(),
        code: row.opt_text("code")?,
        trigger: row
            .opt_text("trigger_name")?
            .as_deref()
            .and_then(Trigger::parse),
    })
}

/// [`CampaignStore`] for a store with a `pool` of database `$db`.
macro_rules! campaign_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::CampaignStore for $store {
            async fn insert_campaign(
                &self,
                c: &Campaign,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                let _turn = self.write_turn().await;
                let cols = $crate::store::campaigns::CampaignColumns::of(c);
                let mut tx = self.pool.begin().await?;
                sqlx::query($crate::store::campaigns::INSERT_CAMPAIGN)
                    .bind(c.id.to_string())
                    .bind(&c.name)
                    .bind(cols.discount_type)
                    .bind(cols.discount_amount)
                    .bind(cols.discount_percent)
                    .bind(cols.discount_max)
                    .bind(c.terms.min_order_amount)
                    .bind(c.total_quantity as i64)
                    .bind(c.per_user_limit as i64)
                    .bind(c.issue_starts_at.0)
                    .bind(c.issue_ends_at.0)
                    .bind(cols.valid_days)
                    .bind(cols.valid_from)
                    .bind(cols.valid_until)
                    .bind(c.paused)
                    .bind(c.created_at.0)
                    .bind(c.issuance.as_str())
                    .bind(c.code.as_deref())
                    .bind(c.trigger.as_ref().map(|t| t.to_string()))
                    .execute(&mut *tx)
                    .await?;
                if let Some(code) = &c.code {
                    let shadowed: i64 =
                        sqlx::query_scalar($crate::store::campaigns::UNIQUE_CODE_EXISTS)
                            .bind(code)
                            .fetch_one(&mut *tx)
                            .await?;
                    if shadowed > 0 {
                        return Err(StoreError::Unique(format!("{code} is a unique code")));
                    }
                    sqlx::query($crate::store::campaigns::FREE_ENDED_SHARED_CODE)
                        .bind(code)
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query($crate::store::campaigns::TAKE_SHARED_CODE)
                        .bind(code)
                        .bind(c.id.to_string())
                        .bind(c.issue_ends_at.0)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StoreError> {
                let row = sqlx::query(&format!(
                    "{} WHERE id = $1",
                    $crate::store::campaigns::select_campaigns()
                ))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row
                    .as_ref()
                    .map($crate::store::campaigns::campaign)
                    .transpose()?)
            }

            async fn list_campaigns(
                &self,
                limit: u32,
                before: Option<CampaignId>,
            ) -> Result<Vec<Campaign>, StoreError> {
                // `before` is NULL on the first page.
                let rows = sqlx::query(&format!(
                    "{} WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                    $crate::store::campaigns::select_campaigns()
                ))
                .bind(before.map(|b| b.to_string()))
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::campaigns::campaign)
                    .collect::<Result<_, _>>()?)
            }

            async fn all_campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
                let rows = sqlx::query(&$crate::store::campaigns::select_campaigns())
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::campaigns::campaign)
                    .collect::<Result<_, _>>()?)
            }

            async fn update_campaign(
                &self,
                id: CampaignId,
                paused: Option<bool>,
                issue_ends_at: Option<Timestamp>,
                total_quantity: Option<u32>,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                sqlx::query($crate::store::campaigns::UPDATE_CAMPAIGN)
                    .bind(paused)
                    .bind(issue_ends_at.map(|t| t.0))
                    .bind(total_quantity.map(|q| q as i64))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                if let Some(ends) = issue_ends_at {
                    let code: Option<String> =
                        sqlx::query_scalar("SELECT code FROM campaigns WHERE id = $1")
                            .bind(id.to_string())
                            .fetch_optional(&mut *tx)
                            .await?
                            .flatten();
                    if let Some(code) = code {
                        sqlx::query($crate::store::campaigns::FREE_ENDED_SHARED_CODE)
                            .bind(&code)
                            .bind(now.0)
                            .execute(&mut *tx)
                            .await?;
                        let kept = sqlx::query($crate::store::campaigns::MOVE_SHARED_CODE_END)
                            .bind(ends.0)
                            .bind(id.to_string())
                            .execute(&mut *tx)
                            .await?;
                        if kept.rows_affected() != 1 {
                            return Err(StoreError::Unique(format!(
                                "the code {code} belongs to a newer campaign"
                            )));
                        }
                    }
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(super) use campaign_queries;
