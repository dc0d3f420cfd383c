//! What both backends share: the SQL text where the dialects agree, the
//! column values each statement binds, and decoding rows into the domain.
//! The only per-backend piece is [`Columns`], reading one typed column.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::{IssuedRow, UserRecord, parse_id};
use crate::domain::account::Role;
use crate::domain::campaign::{Campaign, CouponTerms, Validity};
use crate::domain::coupon::{Coupon, Spend, StoredStatus};
use crate::domain::discount::Discount;
use crate::domain::timestamp::Timestamp;

/// One typed column of a row, by name.
pub(super) trait Columns {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn flag(&self, col: &str) -> Result<bool, sqlx::Error>;
}

macro_rules! columns_for {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(col)
            }
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(col)
            }
            fn flag(&self, col: &str) -> Result<bool, sqlx::Error> {
                self.try_get(col)
            }
        }
    };
}
columns_for!(SqliteRow);
columns_for!(PgRow);

pub(super) const CAMPAIGN_COLUMNS: &str = "id, name, discount_type, discount_amount, discount_percent, discount_max, \
     min_order_amount, total_quantity, per_user_limit, issue_starts_at, issue_ends_at, \
     valid_days, valid_from, valid_until, paused, created_at";

/// The campaign SELECT list with the validity columns under the names `terms` reads.
pub(super) fn select_campaigns() -> String {
    format!(
        "SELECT {CAMPAIGN_COLUMNS}, valid_from AS terms_valid_from, valid_until AS terms_valid_until FROM campaigns"
    )
}

pub(super) const INSERT_CAMPAIGN: &str = "INSERT INTO campaigns (id, name, discount_type, discount_amount, discount_percent, \
     discount_max, min_order_amount, total_quantity, per_user_limit, issue_starts_at, issue_ends_at, valid_days, \
     valid_from, valid_until, paused, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

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

pub(super) const SELECT_COUPONS: &str = "SELECT c.id, c.campaign_id, c.user_id, c.seq, c.status, c.issued_at, c.valid_from, \
     c.valid_until, c.used_at, c.order_id, c.order_amount, c.discount_amount AS spent_discount, \
     k.discount_type, k.discount_amount, k.discount_percent, k.discount_max, k.min_order_amount, \
     k.valid_days, k.valid_from AS terms_valid_from, k.valid_until AS terms_valid_until \
     FROM coupons c JOIN campaigns k ON k.id = c.campaign_id";

pub(super) const MARK_USED: &str = "UPDATE coupons SET status = 'used', used_at = $1, order_id = $2, order_amount = $3, \
     discount_amount = $4 WHERE id = $5 AND status = 'available'";

pub(super) const CANCEL_USE: &str = "UPDATE coupons SET status = 'available', used_at = NULL, order_id = NULL, \
     order_amount = NULL, discount_amount = NULL WHERE id = $1 AND status = 'used' AND order_id = $2";

pub(super) const ISSUED_COLUMNS: &str = "id, campaign_id, user_id, seq, user_seq, idempotency_key";

pub(super) const INSERT_USER: &str =
    "INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)";

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
    })
}

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

pub(super) fn user(row: &impl Columns) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        id: parse_id(&row.text("id")?)?,
        password_hash: row.text("password_hash")?,
        role: Role::parse(&row.text("role")?).unwrap_or(Role::User),
    })
}

/// The account, campaign and coupon queries, written once and implemented
/// for both backends (`$store` with a `pool` of database `$db`): the SQL and
/// the binding code are the same, only the pool's type differs, and a macro
/// says that without sqlx's generic executor bounds.
macro_rules! common_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::AccountStore for $store {
            async fn insert_user(
                &self,
                id: UserId,
                email: &Email,
                password_hash: &str,
                role: Role,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                sqlx::query(rows::INSERT_USER)
                    .bind(id.to_string())
                    .bind(email.as_str())
                    .bind(password_hash)
                    .bind(role.as_str())
                    .bind(now.0)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_users(
                &self,
                users: &[(UserId, Email)],
                password_hash: &str,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                for (id, email) in users {
                    sqlx::query(rows::INSERT_USER)
                        .bind(id.to_string())
                        .bind(email.as_str())
                        .bind(password_hash)
                        .bind(Role::User.as_str())
                        .bind(now.0)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn find_user_by_email(
                &self,
                email: &Email,
            ) -> Result<Option<UserRecord>, StoreError> {
                let row = sqlx::query("SELECT id, password_hash, role FROM users WHERE email = $1")
                    .bind(email.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(rows::user).transpose()?)
            }

            async fn user_exists(&self, id: UserId) -> Result<bool, StoreError> {
                let row = sqlx::query("SELECT 1 FROM users WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            async fn upsert_admin(
                &self,
                email: &Email,
                create_hash: &str,
                reset_hash: Option<&str>,
                now: Timestamp,
            ) -> Result<(UserId, bool), StoreError> {
                let mut tx = self.pool.begin().await?;
                let existing = sqlx::query("SELECT id, password_hash, role FROM users WHERE email = $1")
                    .bind(email.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let outcome = match existing {
                    Some(row) => {
                        let id = rows::user(&row)?.id;
                        sqlx::query(
                            "UPDATE users SET role = 'admin', password_hash = COALESCE($1, password_hash) WHERE id = $2",
                        )
                        .bind(reset_hash)
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await?;
                        (id, false)
                    }
                    None => {
                        let id = UserId::generate();
                        sqlx::query(rows::INSERT_USER)
                            .bind(id.to_string())
                            .bind(email.as_str())
                            .bind(create_hash)
                            .bind(Role::Admin.as_str())
                            .bind(now.0)
                            .execute(&mut *tx)
                            .await?;
                        (id, true)
                    }
                };
                tx.commit().await?;
                Ok(outcome)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::CampaignStore for $store {
            async fn insert_campaign(&self, c: &Campaign) -> Result<(), StoreError> {
                let cols = rows::CampaignColumns::of(c);
                sqlx::query(rows::INSERT_CAMPAIGN)
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
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_campaign(&self, id: CampaignId) -> Result<Option<Campaign>, StoreError> {
                let row = sqlx::query(&format!("{} WHERE id = $1", rows::select_campaigns()))
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(rows::campaign).transpose()?)
            }

            async fn list_campaigns(
                &self,
                limit: u32,
                before: Option<CampaignId>,
            ) -> Result<Vec<Campaign>, StoreError> {
                // `before` is NULL on the first page.
                let rows = sqlx::query(&format!(
                    "{} WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
                    rows::select_campaigns()
                ))
                .bind(before.map(|b| b.to_string()))
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(rows::campaign).collect::<Result<_, _>>()?)
            }

            async fn all_campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
                let rows = sqlx::query(&rows::select_campaigns())
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.iter().map(rows::campaign).collect::<Result<_, _>>()?)
            }

            async fn update_campaign(
                &self,
                id: CampaignId,
                paused: Option<bool>,
                issue_ends_at: Option<Timestamp>,
                total_quantity: Option<u32>,
            ) -> Result<(), StoreError> {
                sqlx::query(rows::UPDATE_CAMPAIGN)
                    .bind(paused)
                    .bind(issue_ends_at.map(|t| t.0))
                    .bind(total_quantity.map(|q| q as i64))
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::CouponStore for $store {
            async fn get_coupon(&self, id: CouponId) -> Result<Option<Coupon>, StoreError> {
                let row = sqlx::query(&format!("{} WHERE c.id = $1", rows::SELECT_COUPONS))
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.as_ref().map(rows::coupon).transpose()?)
            }

            async fn list_coupons(
                &self,
                user: UserId,
                filter: CouponFilter,
                now: Timestamp,
                limit: u32,
                before: Option<CouponId>,
            ) -> Result<Vec<Coupon>, StoreError> {
                let mut q = sqlx::QueryBuilder::<$db>::new(rows::SELECT_COUPONS);
                q.push(" WHERE c.user_id = ").push_bind(user.to_string());
                if let Some(campaign) = filter.campaign {
                    q.push(" AND c.campaign_id = ").push_bind(campaign.to_string());
                }
                match filter.status {
                    None => {}
                    Some(CouponStatus::Available) => {
                        q.push(" AND c.status = 'available' AND c.valid_until > ").push_bind(now.0);
                    }
                    Some(CouponStatus::Expired) => {
                        q.push(" AND c.status = 'available' AND c.valid_until <= ").push_bind(now.0);
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
                Ok(rows.iter().map(rows::coupon).collect::<Result<_, _>>()?)
            }

            async fn mark_used(&self, id: CouponId, spend: &Spend) -> Result<bool, StoreError> {
                let done = sqlx::query(rows::MARK_USED)
                    .bind(spend.used_at.0)
                    .bind(&spend.order_id)
                    .bind(spend.order_amount)
                    .bind(spend.discount_amount)
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn cancel_use(&self, id: CouponId, order_id: &str) -> Result<bool, StoreError> {
                let done = sqlx::query(rows::CANCEL_USE)
                    .bind(id.to_string())
                    .bind(order_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
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
                    rows::SELECT_COUPONS.replacen("SELECT ", "SELECT u.email AS owner_email, ", 1)
                ))
                .bind(campaign.to_string())
                .bind(after_seq as i64)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map(|r| Ok((rows::coupon(r)?, rows::Columns::text(r, "owner_email")?)))
                    .collect::<Result<_, sqlx::Error>>()?)
            }

            async fn issued_rows(&self, campaign: CampaignId) -> Result<Vec<IssuedRow>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM coupons WHERE campaign_id = $1 ORDER BY seq",
                    rows::ISSUED_COLUMNS
                ))
                .bind(campaign.to_string())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.iter().map(rows::issued).collect::<Result<_, _>>()?)
            }

            async fn issued_by_campaign(
                &self,
            ) -> Result<HashMap<CampaignId, Vec<IssuedRow>>, StoreError> {
                let rows = sqlx::query(&format!("SELECT {} FROM coupons", rows::ISSUED_COLUMNS))
                    .fetch_all(&self.pool)
                    .await?;
                let mut by_campaign: HashMap<CampaignId, Vec<IssuedRow>> = HashMap::new();
                for row in &rows {
                    let campaign: CampaignId = parse_id(&rows::Columns::text(row, "campaign_id")?)?;
                    by_campaign.entry(campaign).or_default().push(rows::issued(row)?);
                }
                Ok(by_campaign)
            }
        }
    };
}
pub(super) use common_queries;
