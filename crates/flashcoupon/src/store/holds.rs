//! Coupon holds (reservations): one row per hold, which leaves `held` for
//! exactly one of confirmed, released or expired by a conditional UPDATE
//! (promise 8), together with the coupon's row in the same transaction.

use async_trait::async_trait;
use uuid::Uuid;

use super::columns::{Columns, parse_id};
use super::{OutboxRow, Reports, StoreError};
use crate::domain::ids::{CouponId, UserId};
use crate::domain::timestamp::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    Held,
    Confirmed,
    Released,
    Expired,
}

impl HoldState {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::Held => "held",
            HoldState::Confirmed => "confirmed",
            HoldState::Released => "released",
            HoldState::Expired => "expired",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
        [
            HoldState::Held,
            HoldState::Confirmed,
            HoldState::Released,
            HoldState::Expired,
        ]
        .into_iter()
        .find(|h| h.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRecord {
    pub id: Uuid,
    pub coupon_id: CouponId,
    pub user_id: UserId,
    pub order_id: String,
    pub order_amount: i64,
    pub discount_amount: i64,
    pub reserved_at: Timestamp,
    pub expires_at: Timestamp,
    pub state: HoldState,
}

#[async_trait]
pub trait HoldStore {
    /// Hold an available coupon for `hold.order_id` (the state is ignored:
    /// a new hold is `held`). `false`: the coupon was not available any more.
    async fn reserve(&self, hold: &HoldRecord) -> Result<bool, StoreError>;
    /// End the coupon's live hold for `order_id` as `to` (confirmed: the
    /// coupon is used, if the hold has not run out by `now`; released: it is
    /// available again), with the reports of it. `false`:
    /// no such live hold, nothing written.
    async fn resolve_hold(
        &self,
        coupon: CouponId,
        order_id: &str,
        to: HoldState,
        now: Timestamp,
        reports: &Reports,
    ) -> Result<bool, StoreError>;
    /// Expire up to `limit` holds due by `now`, each exactly once whichever
    /// instances run this at the same time; the ones this call expired.
    async fn expire_holds(&self, now: Timestamp, limit: u32)
    -> Result<Vec<HoldRecord>, StoreError>;
    /// Expired holds whose owner was not told yet.
    async fn unnotified_expiries(&self, limit: u32) -> Result<Vec<HoldRecord>, StoreError>;
    /// The owners of these expired holds were told; `outbox` reports the
    /// expiries to the broker, written in the same transaction (so each is
    /// written once, and surely: a hold stays unnotified until it is).
    async fn mark_notified(&self, holds: &[Uuid], outbox: &[OutboxRow]) -> Result<(), StoreError>;
    /// The latest hold of a coupon for an order, in any state.
    async fn latest_hold(
        &self,
        coupon: CouponId,
        order_id: &str,
    ) -> Result<Option<HoldRecord>, StoreError>;
}

pub(super) const HOLD_COLUMNS: &str = "id, coupon_id, user_id, order_id, order_amount, discount_amount, \
     reserved_at, expires_at, state";

pub(super) fn hold(row: &impl Columns) -> Result<HoldRecord, sqlx::Error> {
    Ok(HoldRecord {
        id: parse_id(&row.text("id")?)?,
        coupon_id: parse_id(&row.text("coupon_id")?)?,
        user_id: parse_id(&row.text("user_id")?)?,
        order_id: row.text("order_id")?,
        order_amount: row.int("order_amount")?,
        discount_amount: row.int("discount_amount")?,
        reserved_at: Timestamp(row.int("reserved_at")?),
        expires_at: Timestamp(row.int("expires_at")?),
        state: HoldState::parse(&row.text("state")?)
            .ok_or_else(|| sqlx::Error::Decode("unknown hold state in the record".into()))?,
    })
}

/// The coupon's row as a hold ends: used (kept order and amounts) or
/// available again (cleared). Must match exactly the coupon the hold holds.
pub(super) const COUPON_CONFIRMED: &str = "UPDATE coupons SET status = 'used', used_at = $1, reserved_until = NULL \
     WHERE id = $2 AND status = 'reserved' AND order_id = $3";
pub(super) const COUPON_FREED: &str = "UPDATE coupons SET status = 'available', order_id = NULL, order_amount = NULL, \
     discount_amount = NULL, reserved_until = NULL WHERE id = $1 AND status = 'reserved' AND order_id = $2";

/// Inside the caller's transaction: end the live hold of `coupon` for
/// `order_id` as `to` at `now`, and the coupon's row with it. `false` if
/// there is no such live hold (nothing written); a coupon that disagrees
/// with its hold is an error (the caller's transaction is dropped).
pub(super) async fn end_hold<S: super::sql::Sql>(
    tx: &mut S,
    coupon: CouponId,
    order_id: &str,
    to: HoldState,
    now: Timestamp,
) -> Result<bool, StoreError> {
    use super::sql::args;
    // A confirm must come before the hold runs out; a release may come
    // any time while it is held.
    let cutoff = if to == HoldState::Confirmed {
        now.0
    } else {
        i64::MIN
    };
    let ended = tx
        .execute(
            "UPDATE coupon_holds SET state = $1, resolved_at = $2 \
             WHERE coupon_id = $3 AND order_id = $4 AND state = 'held' AND expires_at > $5",
            args![to.as_str(), now.0, coupon.to_string(), order_id, cutoff],
        )
        .await?;
    if ended != 1 {
        return Ok(false);
    }
    let changed = if to == HoldState::Confirmed {
        tx.execute(COUPON_CONFIRMED, args![now.0, coupon.to_string(), order_id])
            .await?
    } else {
        tx.execute(COUPON_FREED, args![coupon.to_string(), order_id])
            .await?
    };
    if changed != 1 {
        return Err(StoreError::Constraint(format!(
            "coupon {coupon} is not reserved for the live hold of order {order_id}"
        )));
    }
    Ok(true)
}

/// Inside the caller's transaction: hold the available coupon of `h` for
/// its order, the coupon's row and the hold's row together. `false` if the
/// coupon was not available (nothing written).
pub(super) async fn reserve_in<S: super::sql::Sql>(
    tx: &mut S,
    h: &HoldRecord,
) -> Result<bool, StoreError> {
    use super::sql::args;
    let held = tx
        .execute(
            "UPDATE coupons SET status = 'reserved', order_id = $1, order_amount = $2, \
             discount_amount = $3, reserved_until = $4 WHERE id = $5 AND status = 'available'",
            args![
                &h.order_id,
                h.order_amount,
                h.discount_amount,
                h.expires_at.0,
                h.coupon_id.to_string()
            ],
        )
        .await?;
    if held != 1 {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO coupon_holds (id, coupon_id, user_id, order_id, order_amount, \
         discount_amount, reserved_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            h.id.to_string(),
            h.coupon_id.to_string(),
            h.user_id.to_string(),
            &h.order_id,
            h.order_amount,
            h.discount_amount,
            h.reserved_at.0,
            h.expires_at.0
        ],
    )
    .await?;
    Ok(true)
}

/// [`HoldStore`] for a store with a `pool` of database `$db`.
macro_rules! hold_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::HoldStore for $store {
            async fn reserve(&self, h: &$crate::store::HoldRecord) -> Result<bool, StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                if !$crate::store::holds::reserve_in(&mut *tx, h).await? {
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn resolve_hold(
                &self,
                coupon: CouponId,
                order_id: &str,
                to: $crate::store::HoldState,
                now: Timestamp,
                reports: &$crate::store::Reports,
            ) -> Result<bool, StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                if !$crate::store::holds::end_hold(&mut *tx, coupon, order_id, to, now).await? {
                    return Ok(false);
                }
                $crate::store::outbox::insert_reports(&mut *tx, reports).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn expire_holds(
                &self,
                now: Timestamp,
                limit: u32,
            ) -> Result<Vec<$crate::store::HoldRecord>, StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                // `state = 'held'` is checked again on each row as it is
                // updated: an instance that finds a row another just expired
                // (or a confirm just ended) leaves it alone.
                let rows = sqlx::query(&format!(
                    "UPDATE coupon_holds SET state = 'expired', resolved_at = $1 \
                     WHERE id IN (SELECT id FROM coupon_holds WHERE state = 'held' AND expires_at <= $1 \
                     ORDER BY expires_at LIMIT $2) AND state = 'held' RETURNING {}",
                    $crate::store::holds::HOLD_COLUMNS
                ))
                .bind(now.0)
                .bind(limit as i64)
                .fetch_all(&mut *tx)
                .await?;
                let expired = rows
                    .iter()
                    .map($crate::store::holds::hold)
                    .collect::<Result<Vec<_>, _>>()?;
                for h in &expired {
                    let freed = sqlx::query($crate::store::holds::COUPON_FREED)
                        .bind(h.coupon_id.to_string())
                        .bind(&h.order_id)
                        .execute(&mut *tx)
                        .await?;
                    if freed.rows_affected() != 1 {
                        // The hold and its coupon disagree (an operator's
                        // edit?): the hold still ends, and one bad pair
                        // must not stop every other expiry for good.
                        tracing::error!(
                            hold = %h.id, coupon = %h.coupon_id,
                            "an expiring hold's coupon is not reserved for it; left as it is"
                        );
                    }
                }
                tx.commit().await?;
                Ok(expired)
            }

            async fn unnotified_expiries(
                &self,
                limit: u32,
            ) -> Result<Vec<$crate::store::HoldRecord>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM coupon_holds WHERE state = 'expired' AND NOT notified \
                     ORDER BY resolved_at LIMIT $1",
                    $crate::store::holds::HOLD_COLUMNS
                ))
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::holds::hold)
                    .collect::<Result<_, _>>()?)
            }

            async fn mark_notified(
                &self,
                holds: &[uuid::Uuid],
                outbox: &[$crate::store::OutboxRow],
            ) -> Result<(), StoreError> {
                if holds.is_empty() {
                    return Ok(());
                }
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE coupon_holds SET notified = TRUE WHERE NOT notified AND id IN (",
                );
                let mut ids = q.separated(", ");
                for id in holds {
                    ids.push_bind(id.to_string());
                }
                q.push(") RETURNING id");
                let flipped: std::collections::HashSet<String> = q
                    .build()
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| $crate::store::columns::Columns::text(r, "id"))
                    .collect::<Result<_, _>>()?;
                // Only the holds this call flipped: another instance that
                // flipped one wrote its event (which the relay may already
                // have published and deleted).
                let outbox: Vec<_> = outbox
                    .iter()
                    .filter(|r| flipped.contains(&r.id.to_string()))
                    .cloned()
                    .collect();
                if !outbox.is_empty() {
                    $crate::store::outbox::insert_outbox(&mut *tx, &outbox).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn latest_hold(
                &self,
                coupon: CouponId,
                order_id: &str,
            ) -> Result<Option<$crate::store::HoldRecord>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM coupon_holds WHERE coupon_id = $1 AND order_id = $2 \
                     ORDER BY id DESC LIMIT 1",
                    $crate::store::holds::HOLD_COLUMNS
                ))
                .bind(coupon.to_string())
                .bind(order_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map($crate::store::holds::hold).transpose()?)
            }
        }
    };
}
pub(super) use hold_queries;
