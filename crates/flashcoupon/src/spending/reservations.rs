//! Reservations: a coupon held for an order until it is paid (confirm: the
//! coupon is used), given back (release), or run out (expiry, by the
//! platform, once, on whichever instance gets there first). Each ends
//! exactly once: the record's conditional updates decide (`store::holds`).

use std::time::Duration;

use serde::Deserialize;
use utoipa::ToSchema;

use super::SpendError;
use crate::domain::coupon::{
    Coupon, Reservation, ReserveDecision, UseRejection, check_order, check_order_id,
};
use crate::domain::ids::{CouponId, UserId};
use crate::domain::timestamp::Timestamp;
use crate::domain::{InvalidInput, whole};
use crate::events::{Event, Payload};
use crate::state::Shared;
use crate::store::{HoldRecord, HoldState, Reports};

/// The longest hold a request may ask for.
pub const MAX_TTL_SECS: u64 = 86_400;

/// The body of `POST /api/v1/coupons/{id}/reserve`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// 1 to 128 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub order_id: String,
    #[serde(deserialize_with = "whole::number")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub order_amount: i64,
    /// How long the coupon is held (1..=86,400 s; default 900, the
    /// server's `--reservation-ttl-secs`).
    #[schema(minimum = 1, maximum = 86_400)]
    #[serde(default, deserialize_with = "whole::optional")]
    pub ttl_secs: Option<i64>,
}

impl ReserveRequest {
    fn ttl(&self, default: Duration) -> Result<Duration, InvalidInput> {
        check_order(&self.order_id, self.order_amount)?;
        match self.ttl_secs {
            None => Ok(default),
            Some(s) if (1..=MAX_TTL_SECS as i64).contains(&s) => Ok(Duration::from_secs(s as u64)),
            Some(_) => Err(InvalidInput::new(
                "ttl_secs",
                format!("must be between 1 and {MAX_TTL_SECS}"),
            )),
        }
    }
}

/// Who acts on a reservation: the coupon's owner, or the shop (a service
/// key, or an admin where the contract allows one), who may act on anyone's.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    Owner(UserId),
    Shop,
}

/// A hold, with the coupon as it now reads.
#[derive(Debug)]
pub struct Held {
    pub coupon: Coupon,
    pub reservation: Reservation,
}

/// A time-sale order's coupon moves only with the order.
async fn not_a_sale_order(state: &Shared, order_id: &str) -> Result<(), SpendError> {
    if crate::selling::orders::is_sale_order(state, order_id).await? {
        return Err(SpendError::SaleOrder);
    }
    Ok(())
}

/// Holds live on the record's clock (see `Store::now`), not this host's.
async fn record_now(state: &Shared) -> Result<Timestamp, SpendError> {
    Ok(state.record_now().await?)
}

async fn coupon_for(state: &Shared, actor: Actor, id: CouponId) -> Result<Coupon, SpendError> {
    state
        .store
        .get_coupon(id)
        .await?
        .filter(|c| match actor {
            Actor::Owner(user) => c.user_id == user,
            Actor::Shop => true,
        })
        .ok_or(SpendError::NotFound)
}

/// Hold a coupon for an order. The same order again answers as the first
/// time; another order's hold is `Reserved`.
pub async fn reserve(
    state: &Shared,
    actor: Actor,
    id: CouponId,
    request: &ReserveRequest,
) -> Result<Held, SpendError> {
    let ttl = request.ttl(state.reservation_ttl)?;
    not_a_sale_order(state, &request.order_id).await?;
    // Two rounds at most: if a concurrent reserve or spend wins the
    // conditional update, the second read decides.
    for _ in 0..2 {
        let coupon = coupon_for(state, actor, id).await?;
        let now = record_now(state).await?;
        match coupon
            .decide_reserve(&request.order_id, request.order_amount, now)
            .map_err(SpendError::Rejected)?
        {
            ReserveDecision::Replay(reservation) => {
                return Ok(Held {
                    coupon,
                    reservation,
                });
            }
            ReserveDecision::Hold { discount_amount } => {
                let hold = HoldRecord {
                    id: uuid::Uuid::now_v7(),
                    coupon_id: id,
                    user_id: coupon.user_id,
                    order_id: request.order_id.clone(),
                    order_amount: request.order_amount,
                    discount_amount,
                    reserved_at: now,
                    expires_at: now.plus_millis(ttl.as_millis() as i64),
                    state: HoldState::Held,
                };
                if !state.store.reserve(&hold).await? {
                    continue;
                }
                let coupon = coupon_for(state, actor, id).await?;
                let reservation = coupon
                    .reservation
                    .clone()
                    .ok_or(SpendError::Rejected(UseRejection::Reserved))?;
                return Ok(Held {
                    coupon,
                    reservation,
                });
            }
        }
    }
    Err(SpendError::Rejected(UseRejection::Reserved))
}

/// The order was paid: the held coupon is used (`coupon.used`). Too late
/// (the hold ran out) is `ReservationExpired` and changes nothing; a
/// repeat for the same order answers as the first time.
pub async fn confirm(state: &Shared, id: CouponId, order_id: &str) -> Result<Coupon, SpendError> {
    check_order_id(order_id)?;
    not_a_sale_order(state, order_id).await?;
    let coupon = coupon_for(state, Actor::Shop, id).await?;
    let now = record_now(state).await?;
    if let Some(r) = coupon
        .reservation
        .as_ref()
        .filter(|r| r.order_id == order_id)
    {
        let event = super::used_event(
            state,
            &coupon,
            &r.order_id,
            r.order_amount,
            r.discount_amount,
        )
        .await?;
        if state
            .store
            .resolve_hold(id, order_id, HoldState::Confirmed, now, &event.reports)
            .await?
        {
            state.notifier.coupon_event_committed(event);
            return coupon_for(state, Actor::Shop, id).await;
        }
    }
    // No live hold for this order: say why, from its latest hold.
    match state.store.latest_hold(id, order_id).await? {
        Some(h) if h.state == HoldState::Confirmed => coupon_for(state, Actor::Shop, id).await,
        Some(h)
            if h.state == HoldState::Expired
                || (h.state == HoldState::Held && now >= h.expires_at) =>
        {
            Err(SpendError::Rejected(UseRejection::ReservationExpired))
        }
        _ => Err(SpendError::NotReserved),
    }
}

/// Give a held coupon back. Releasing a hold that already ended (released
/// or expired) answers with the coupon as it is; one that was confirmed, or
/// never made, is `NotReserved`.
pub async fn release(
    state: &Shared,
    actor: Actor,
    id: CouponId,
    order_id: &str,
) -> Result<Coupon, SpendError> {
    check_order_id(order_id)?;
    not_a_sale_order(state, order_id).await?;
    coupon_for(state, actor, id).await?;
    let now = record_now(state).await?;
    if state
        .store
        .resolve_hold(id, order_id, HoldState::Released, now, &Reports::default())
        .await?
    {
        return coupon_for(state, actor, id).await;
    }
    match state.store.latest_hold(id, order_id).await? {
        Some(h) if matches!(h.state, HoldState::Released | HoldState::Expired) => {
            coupon_for(state, actor, id).await
        }
        _ => Err(SpendError::NotReserved),
    }
}

/// One round of the expiry: end the holds due by now (each once, whatever
/// other instances do), then tell the owners of expired holds not told yet
/// (once each: the inbox row's once-key decides who pushes). Returns how
/// many this round expired.
pub async fn expire_due(state: &Shared) -> Result<usize, SpendError> {
    let now = record_now(state).await?;
    let expired = state.store.expire_holds(now, 500).await?.len();
    let untold = state.store.unnotified_expiries(500).await?;
    if !untold.is_empty() {
        let events: Vec<(Event, String)> = untold
            .iter()
            .map(|h| {
                let payload = Payload::ReservationExpired {
                    coupon_id: h.coupon_id,
                    order_id: h.order_id.clone(),
                    expired_at: h.expires_at,
                };
                let mut event = Event::new(payload, now, Some(h.user_id), None);
                event.id = h.id;
                (event, format!("reservation_expired:{}", h.id))
            })
            .collect();
        let outbox: Vec<_> = events
            .iter()
            .filter_map(|(e, _)| state.notifier.outbound(e))
            .collect();
        state.notifier.emit_once(events).await?;
        let ids: Vec<uuid::Uuid> = untold.iter().map(|h| h.id).collect();
        state.store.mark_notified(&ids, &outbox).await?;
        if !outbox.is_empty() {
            state.notifier.outbox_written();
        }
    }
    Ok(expired)
}
