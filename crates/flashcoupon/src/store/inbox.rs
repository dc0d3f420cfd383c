//! The inbox: each user's notifications, with the once-only keys that make
//! scheduled events exactly once (unique on `(user_id, once_key)`), and
//! their coupons: a coupon is its own `coupon.issued` entry (same id, read
//! state in `coupons.inbox_read_at`), so a claim writes one row, not two.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;
use super::columns::{Columns, parse_id};
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::timestamp::Timestamp;

/// One event for one user's inbox.
#[derive(Debug, Clone)]
pub struct NotificationRow {
    /// The pushed event's id.
    pub id: Uuid,
    pub user: UserId,
    pub kind: String,
    pub campaign: Option<CampaignId>,
    /// The event's payload, as JSON.
    pub payload: String,
    pub at: Timestamp,
    /// `<kind>:<object>` for events that must exist once per user.
    pub once_key: Option<String>,
}

/// An inbox entry as read back.
#[derive(Debug, Clone)]
pub struct StoredNotification {
    pub id: Uuid,
    pub kind: String,
    pub campaign: Option<CampaignId>,
    pub payload: String,
    pub at: Timestamp,
    pub read_at: Option<Timestamp>,
}

/// An available coupon whose expiry is near.
#[derive(Debug, Clone)]
pub struct ExpiringCoupon {
    pub id: CouponId,
    pub user: UserId,
    pub valid_until: Timestamp,
}

#[async_trait]
pub trait InboxStore {
    /// Store inbox rows; rows already there (same id, or same user and once
    /// key) are skipped. Returns the ids that were inserted now.
    async fn insert_notifications(&self, rows: &[NotificationRow])
    -> Result<Vec<Uuid>, StoreError>;

    /// Newest first, the user's coupons (as `coupon.issued`) among their
    /// notifications; `before` is the last id of the previous page.
    async fn inbox(
        &self,
        user: UserId,
        unread_only: bool,
        limit: u32,
        before: Option<Uuid>,
    ) -> Result<Vec<StoredNotification>, StoreError>;

    async fn unread_count(&self, user: UserId) -> Result<u64, StoreError>;

    /// Mark the user's notifications (and coupons' `coupon.issued`
    /// entries) read: these ids, or all when `None`.
    async fn mark_read(
        &self,
        user: UserId,
        ids: Option<&[Uuid]>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Available coupons of a campaign expiring in `(after, until]` whose
    /// owner has no `coupon.expiring_soon:<id>` notification yet.
    async fn expiring_unreminded(
        &self,
        campaign: CampaignId,
        after: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<ExpiringCoupon>, StoreError>;
}

/// A user's inbox page: their notifications and their coupons as
/// `coupon.issued` entries (whose payload is made from `seq` and
/// `valid_until`; a notification's columns for them are NULL), each side
/// cut to the page before they are merged. `$1` user, `$2` before, `$3`
/// unread only, `$4` limit. The `coupon.issued` rows stored before
/// migration 19 are not read: the coupons stand for them.
pub(super) const INBOX_PAGE: &str = "SELECT * FROM (\
     SELECT * FROM (SELECT id, kind, campaign_id, payload, created_at, read_at, \
       CAST(NULL AS BIGINT) AS seq, CAST(NULL AS BIGINT) AS valid_until \
       FROM notifications WHERE user_id = $1 AND kind <> 'coupon.issued' AND ($2 IS NULL OR id < $2) \
       AND ($3 = 0 OR read_at IS NULL) ORDER BY id DESC LIMIT $4) n \
     UNION ALL \
     SELECT * FROM (SELECT id, 'coupon.issued' AS kind, campaign_id, CAST(NULL AS TEXT) AS payload, \
       issued_at AS created_at, inbox_read_at AS read_at, CAST(seq AS BIGINT) AS seq, valid_until \
       FROM coupons WHERE user_id = $1 AND ($2 IS NULL OR id < $2) \
       AND ($3 = 0 OR inbox_read_at IS NULL) ORDER BY id DESC LIMIT $4) c\
     ) page ORDER BY id DESC LIMIT $4";

pub(super) fn notification(row: &impl Columns) -> Result<StoredNotification, sqlx::Error> {
    let id = parse_id(&row.text("id")?)?;
    let payload = match row.opt_text("payload")? {
        Some(payload) => payload,
        // A coupon's own entry: the payload `coupon.issued` was pushed with.
        None => crate::events::Payload::CouponIssued {
            coupon_id: CouponId(id),
            seq: row.int("seq")? as u32,
            valid_until: Timestamp(row.int("valid_until")?),
        }
        .data_json(),
    };
    Ok(StoredNotification {
        id,
        kind: row.text("kind")?,
        campaign: row
            .opt_text("campaign_id")?
            .map(|c| parse_id(&c))
            .transpose()?,
        payload,
        at: Timestamp(row.int("created_at")?),
        read_at: row.opt_int("read_at")?.map(Timestamp),
    })
}

/// [`InboxStore`] for a store with a `pool` of database `$db`.
macro_rules! inbox_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::InboxStore for $store {
            async fn insert_notifications(
                &self,
                rows: &[$crate::store::NotificationRow],
            ) -> Result<Vec<uuid::Uuid>, StoreError> {
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                let _turn = self.write_turn().await;
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO notifications (id, user_id, kind, campaign_id, payload, created_at, once_key) ",
                );
                q.push_values(rows, |mut b, r| {
                    b.push_bind(r.id.to_string())
                        .push_bind(r.user.to_string())
                        .push_bind(r.kind.clone())
                        .push_bind(r.campaign.map(|c| c.to_string()))
                        .push_bind(r.payload.clone())
                        .push_bind(r.at.0)
                        .push_bind(r.once_key.clone());
                });
                q.push(" ON CONFLICT DO NOTHING RETURNING id");
                let done = q.build().fetch_all(&self.pool).await?;
                done.iter()
                    .map(|row| Ok(parse_id(&$crate::store::columns::Columns::text(row, "id")?)?))
                    .collect()
            }

            async fn inbox(
                &self,
                user: UserId,
                unread_only: bool,
                limit: u32,
                before: Option<uuid::Uuid>,
            ) -> Result<Vec<$crate::store::StoredNotification>, StoreError> {
                let rows = sqlx::query($crate::store::inbox::INBOX_PAGE)
                .bind(user.to_string())
                .bind(before.map(|b| b.to_string()))
                .bind(unread_only as i64)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::inbox::notification)
                    .collect::<Result<_, _>>()?)
            }

            async fn unread_count(&self, user: UserId) -> Result<u64, StoreError> {
                let row = sqlx::query(
                    "SELECT (SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL \
                     AND kind <> 'coupon.issued') \
                     + (SELECT COUNT(*) FROM coupons WHERE user_id = $1 AND inbox_read_at IS NULL) AS n",
                )
                .bind(user.to_string())
                .fetch_one(&self.pool)
                .await?;
                Ok($crate::store::columns::Columns::int(&row, "n")? as u64)
            }

            async fn mark_read(
                &self,
                user: UserId,
                ids: Option<&[uuid::Uuid]>,
                now: Timestamp,
            ) -> Result<u64, StoreError> {
                if ids.is_some_and(<[_]>::is_empty) {
                    return Ok(0);
                }
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                let mut marked = 0;
                // (The `coupon.issued` rows kept from before migration 19
                // are not inbox entries any more.)
                for (table, read_at, rows) in [
                    ("notifications", "read_at", " AND kind <> 'coupon.issued'"),
                    ("coupons", "inbox_read_at", ""),
                ] {
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!("UPDATE {table} SET {read_at} = "));
                    q.push_bind(now.0)
                        .push(format!(" WHERE {read_at} IS NULL{rows} AND user_id = "))
                        .push_bind(user.to_string());
                    if let Some(ids) = ids {
                        q.push(" AND id IN (");
                        let mut list = q.separated(", ");
                        for id in ids {
                            list.push_bind(id.to_string());
                        }
                        q.push(")");
                    }
                    marked += q.build().execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(marked)
            }

            async fn expiring_unreminded(
                &self,
                campaign: CampaignId,
                after: Timestamp,
                until: Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::store::ExpiringCoupon>, StoreError> {
                let rows = sqlx::query(
                    "SELECT c.id, c.user_id, c.valid_until FROM coupons c \
                     WHERE c.campaign_id = $1 AND c.status = 'available' \
                     AND c.valid_until > $2 AND c.valid_until <= $3 AND NOT EXISTS \
                     (SELECT 1 FROM notifications n WHERE n.user_id = c.user_id \
                      AND n.once_key = 'coupon.expiring_soon:' || c.id) \
                     ORDER BY c.seq LIMIT $4",
                )
                .bind(campaign.to_string())
                .bind(after.0)
                .bind(until.0)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::ExpiringCoupon {
                            id: parse_id(&$crate::store::columns::Columns::text(r, "id")?)?,
                            user: parse_id(&$crate::store::columns::Columns::text(r, "user_id")?)?,
                            valid_until: Timestamp($crate::store::columns::Columns::int(r, "valid_until")?),
                        })
                    })
                    .collect()
            }
        }
    };
}
pub(super) use inbox_queries;
