//! Spending coupons: use one on an order, preview what that would take off,
//! cancel a use, and hold one for an order until it is paid
//! (`reservations`). Owner only: somebody else's coupon is "not found", as
//! if it did not exist. Called by the HTTP handlers and by payment events
//! (`crate::payments`), so the rules and the notifications live here.

pub mod reservations;

use crate::domain::InvalidInput;
use crate::domain::coupon::{Coupon, Spend, UseDecision, UseRejection, UseRequest, check_order_id};
use crate::domain::ids::{CouponId, UserId};
use crate::events::Payload;
use crate::state::Shared;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SpendError {
    #[error("no such coupon")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("the coupon cannot be used: {0:?}")]
    Rejected(UseRejection),
    /// A cancel for an order that did not spend this coupon.
    #[error("this coupon is not used by that order")]
    NotUsed,
    /// A confirm or release for an order that holds no reservation of it.
    #[error("this coupon is not reserved for that order")]
    NotReserved,
    /// The order is a time-sale order: its holds move only with it.
    #[error("{}", crate::selling::orders::SALE_ORDER)]
    SaleOrder,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A spend, with the coupon as it now reads.
#[derive(Debug)]
pub struct Spent {
    pub coupon: Coupon,
    pub spend: Spend,
}

async fn own_coupon(state: &Shared, owner: UserId, id: CouponId) -> Result<Coupon, SpendError> {
    state
        .store
        .get_coupon(id)
        .await?
        .filter(|c| c.user_id == owner)
        .ok_or(SpendError::NotFound)
}

/// Spend a coupon on an order. The same `order_id` again returns the first
/// spend (and tells nobody twice).
pub async fn use_coupon(
    state: &Shared,
    owner: UserId,
    id: CouponId,
    order: &UseRequest,
) -> Result<Spent, SpendError> {
    order.validate()?;
    // Two rounds at most: if a concurrent spend wins the conditional update,
    // the second read decides (a replay for the same order, else already_used).
    for _ in 0..2 {
        let coupon = own_coupon(state, owner, id).await?;
        let now = state.clock.now();
        let spend = match coupon.decide_use(&order.order_id, order.order_amount, now) {
            UseDecision::Reject(r) => return Err(SpendError::Rejected(r)),
            UseDecision::Replay(spend) => spend,
            UseDecision::Apply { discount_amount } => {
                let spend = Spend {
                    order_id: order.order_id.clone(),
                    order_amount: order.order_amount,
                    discount_amount,
                    used_at: now,
                };
                let event = used_event(
                    state,
                    &coupon,
                    &spend.order_id,
                    spend.order_amount,
                    spend.discount_amount,
                )
                .await?;
                if !state.store.mark_used(id, &spend, &event.reports).await? {
                    continue;
                }
                state.notifier.coupon_event_committed(event);
                spend
            }
        };
        let coupon = own_coupon(state, owner, id).await?;
        return Ok(Spent { coupon, spend });
    }
    Err(SpendError::Rejected(UseRejection::AlreadyUsed))
}

/// `coupon.used` for a spend (at once, or a confirmed reservation), with the
/// reports to write in the same transaction.
pub(crate) async fn used_event(
    state: &Shared,
    coupon: &Coupon,
    order_id: &str,
    order_amount: i64,
    discount_amount: i64,
) -> Result<crate::notify::CouponEvent, StoreError> {
    let id = coupon.id;
    let used = Payload::CouponUsed {
        coupon_id: id,
        order_id: order_id.to_owned(),
        order_amount,
        discount_amount,
    };
    let text =
        format!("🧾 Coupon {id} used on order {order_id}: {discount_amount} off {order_amount}.");
    state
        .notifier
        .prepare_coupon_event(coupon, used, &text)
        .await
}

/// `coupon.use_cancelled` for a spend undone (by the shop, or a refund),
/// with the reports to write in the same transaction.
pub(crate) async fn cancelled_event(
    state: &Shared,
    coupon: &Coupon,
    order_id: &str,
) -> Result<crate::notify::CouponEvent, StoreError> {
    let id = coupon.id;
    let cancelled = Payload::UseCancelled {
        coupon_id: id,
        order_id: order_id.to_owned(),
    };
    let text = format!("↩️ Coupon {id}: the use on order {order_id} was cancelled.");
    state
        .notifier
        .prepare_coupon_event(coupon, cancelled, &text)
        .await
}

/// What [`use_coupon`] would take off this order, writing nothing: the same
/// rules and refusals. The order that already spent the coupon previews its
/// recorded spend. Returns `(order amount, discount)`.
pub async fn preview(
    state: &Shared,
    owner: UserId,
    id: CouponId,
    order: &UseRequest,
) -> Result<(i64, i64), SpendError> {
    order.validate()?;
    let coupon = own_coupon(state, owner, id).await?;
    match coupon.decide_use(&order.order_id, order.order_amount, state.clock.now()) {
        UseDecision::Reject(r) => Err(SpendError::Rejected(r)),
        UseDecision::Replay(spend) => Ok((spend.order_amount, spend.discount_amount)),
        UseDecision::Apply { discount_amount } => Ok((order.order_amount, discount_amount)),
    }
}

/// Cancel the use made by `order_id`; the coupon is available again if
/// still valid. A shop action (the caller checked who asks): a shopper who
/// could cancel their own spends could pay for many orders with one coupon.
pub async fn cancel_use(
    state: &Shared,
    id: CouponId,
    order_id: &str,
) -> Result<Coupon, SpendError> {
    check_order_id(order_id)?;
    let read = async || {
        state
            .store
            .get_coupon(id)
            .await?
            .ok_or(SpendError::NotFound)
    };
    let coupon = read().await?;
    if !coupon.can_cancel_use(order_id) {
        return Err(SpendError::NotUsed);
    }
    let event = cancelled_event(state, &coupon, order_id).await?;
    if !state.store.cancel_use(id, order_id, &event.reports).await? {
        return Err(SpendError::NotUsed);
    }
    state.notifier.coupon_event_committed(event);
    let coupon = read().await?;
    Ok(coupon)
}
