//! Orders of a time sale: one unit each, taken through the admission core
//! exactly as a coupon is claimed (gate, then group commit: every promise
//! of the hot path), then paid, or ended unpaid (expired, cancelled), which
//! gives the unit back to the stock for the next buyer.
//!
//! Giving a unit back is two steps: the record ends the order (a
//! conditional update: once, whichever instance or event gets there first),
//! then the gate frees exactly that unit ([`Gate::give_back`]) and the
//! record notes it (`unit_returned`). A crash between the two leaves the
//! order unreturned in the record; [`return_units`] runs every round on
//! every instance and finishes it (the gate's give-back is idempotent).
//!
//! First come, first served stays honest: a unit given back goes to whoever
//! orders next, and its seq is the lowest free one, so the units that
//! orders hold never share a seq, never go above the stock, and are exactly
//! `1..=total` whenever the sale is sold out (a unit back in stock leaves
//! its seq free until then). Nobody is promised a unit they did not order;
//! someone who came late simply finds stock again.
//!
//! [`Gate::give_back`]: crate::admission::Gate::give_back

use std::time::Instant;

use super::{SellError, drop_of, held};
use crate::admission::{Decision, Rejection, UnitId};
use crate::domain::InvalidInput;
use crate::domain::coupon::{ReserveDecision, UseRejection};
use crate::domain::ids::{CouponId, OrderId, SaleId, UserId};
use crate::domain::sale::{Order, OrderStatus, Sale};
use crate::domain::timestamp::Timestamp;
use crate::state::Shared;
use crate::store::{HoldRecord, HoldState, NewOrderRow, Refusal, Written};

/// What a buyer pays an order with besides money.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// One of the buyer's coupons, reserved for the order.
    pub coupon_id: Option<CouponId>,
    /// Points held for the order (1 up to the price after the coupon).
    pub points: Option<i64>,
}

/// The coupon hold and the points an order takes, as checked before its
/// unit is: bad input costs nobody a unit. The record checks again in the
/// order's own step (they may change meanwhile).
struct Checked {
    hold: Option<HoldRecord>,
    discount: i64,
    points: i64,
}

async fn check_extras(
    state: &Shared,
    user: UserId,
    sale: &Sale,
    order: OrderId,
    extras: Extras,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<Checked, SellError> {
    let mut checked = Checked {
        hold: None,
        discount: 0,
        points: 0,
    };
    // The buyer's balance, when it came with the coupon's read.
    let mut balance = None;
    if let Some(id) = extras.coupon_id {
        let coupon = match extras.points {
            Some(_) => {
                let (coupon, points) = state.store.coupon_and_points(id, user).await?;
                balance = Some(points);
                coupon
            }
            None => state.store.get_coupon(id).await?,
        };
        let coupon = coupon
            .filter(|c| c.user_id == user)
            .ok_or(SellError::NoSuchCoupon)?;
        let order_id = order.to_string();
        // The discount is computed on the sale price.
        let discount = match coupon
            .decide_reserve(&order_id, sale.sale_price, now)
            .map_err(SellError::Coupon)?
        {
            ReserveDecision::Hold { discount_amount } => discount_amount,
            // A fresh order id holds nothing yet.
            ReserveDecision::Replay(_) => return Err(SellError::Coupon(UseRejection::Reserved)),
        };
        checked.discount = discount;
        checked.hold = Some(HoldRecord {
            id: uuid::Uuid::now_v7(),
            coupon_id: id,
            user_id: user,
            order_id,
            order_amount: sale.sale_price,
            discount_amount: discount,
            reserved_at: now,
            expires_at,
            state: HoldState::Held,
        });
    }
    if let Some(points) = extras.points {
        let most = sale.sale_price - checked.discount;
        if !(1..=most).contains(&points) {
            return Err(InvalidInput::new(
                "points",
                format!("must be between 1 and the price after the coupon ({most})"),
            )
            .into());
        }
        let balance = match balance {
            Some(b) => b,
            None => state.store.point_balance_only(user).await?,
        };
        if balance < points {
            return Err(SellError::InsufficientPoints(points));
        }
        checked.points = points;
    }
    Ok(checked)
}

/// How an order request ended.
#[derive(Debug)]
pub enum Placed {
    /// Taken now, and durable.
    New(Order),
    /// This Idempotency-Key placed this order before.
    Replayed(Order),
    Rejected(Rejection),
}

/// How many ended orders a round gives back at most.
const ROUND: u32 = 500;

/// Take one unit of `sale` for `user`: the per-user rate limit, the gate
/// (window, pause, key, limit, stock), then the group commit; answered only
/// once the order is durable.
pub async fn place(
    state: &Shared,
    sale: SaleId,
    user: UserId,
    key: Option<&str>,
    extras: Extras,
) -> Result<Placed, SellError> {
    let started = Instant::now();
    state
        .limits
        .check_claim(user)
        .map_err(SellError::RateLimited)?;
    let result = take_unit(state, sale, user, key, extras).await;
    state
        .metrics
        .order_outcomes
        .with_label_values(&[outcome_label(&result)])
        .inc();
    state
        .metrics
        .order_latency
        .observe(started.elapsed().as_secs_f64());
    result
}

fn outcome_label(result: &Result<Placed, SellError>) -> &'static str {
    match result {
        Ok(Placed::New(_)) => "placed",
        Ok(Placed::Replayed(_)) => "replayed",
        Ok(Placed::Rejected(r)) => crate::issuing::claim::refusal(*r).0,
        Err(SellError::NoSuchSale) => "not_found",
        Err(SellError::Unavailable(_)) => "unavailable",
        Err(_) => "error",
    }
}

async fn take_unit(
    state: &Shared,
    sale: SaleId,
    user: UserId,
    key: Option<&str>,
    extras: Extras,
) -> Result<Placed, SellError> {
    let terms = state
        .catalog
        .sale(&*state.store, sale)
        .await
        .map_err(|e| SellError::Unavailable(format!("the record is unreachable: {e}")))?
        .ok_or(SellError::NoSuchSale)?;
    let with_extras = extras.coupon_id.is_some() || extras.points.is_some();
    // Holds live on the record's clock (payment events judge them by it);
    // a plain order needs no extra round trip for it.
    let now = if with_extras {
        state.record_now().await?
    } else {
        state.clock.now()
    };
    let id = OrderId::generate();
    let expires_at = now.plus_millis(i64::from(terms.payment_ttl_secs) * 1_000);
    let checked = if with_extras {
        match check_extras(state, user, &terms, id, extras, now, expires_at).await {
            Ok(checked) => Some(checked),
            // A retry of an order that was placed: its coupon is reserved
            // and its points held by that very order. The key answers it.
            Err(e) => match key {
                Some(key) => match state.store.order_by_key(user, sale, key).await? {
                    Some(first) => return Ok(Placed::Replayed(first)),
                    None => return Err(e),
                },
                None => return Err(e),
            },
        }
    } else {
        None
    };
    let ticket = match state
        .gate
        .claim(drop_of(sale), user, UnitId(id.0), key, now)
        .await?
    {
        Decision::Admitted(ticket) => ticket,
        Decision::Rejected(r) => return Ok(Placed::Rejected(r)),
        Decision::Retry(why) => return Err(SellError::Unavailable(why.into())),
        Decision::Replay(unit) => {
            // The gate learns a key's order only after it committed.
            let order = state
                .store
                .get_order(OrderId(unit.0))
                .await?
                .ok_or_else(|| {
                    SellError::Unavailable("the replayed order is not readable yet".into())
                })?;
            return Ok(Placed::Replayed(order));
        }
    };
    let (discount, points) = checked.as_ref().map_or((0, 0), |c| (c.discount, c.points));
    let order = Order {
        id,
        sale_id: sale,
        user_id: user,
        seq: ticket.seq,
        user_seq: ticket.user_seq,
        idempotency_key: ticket.key.as_deref().map(str::to_owned),
        unit_price: terms.sale_price,
        coupon_id: extras.coupon_id,
        coupon_discount: discount,
        points_used: points,
        payable_amount: terms.sale_price - discount - points,
        status: OrderStatus::PendingPayment,
        created_at: now,
        expires_at,
        ended_at: None,
        refunded_at: None,
    };
    let mut row = NewOrderRow::new(order.clone(), ticket.epoch);
    row.outbound = state.notifier.outbound_on();
    if let Some(c) = checked {
        row.hold = c.hold;
        row.points = (c.points > 0)
            .then(|| crate::points::hold_write(user, &id.to_string(), c.points, expires_at, now));
    }
    let refusal = row.refusal.clone();
    let outbound = row.outbound;
    match state.orders.submit(ticket, row).await {
        Ok(Ok(())) => {
            if outbound {
                state.notifier.outbox_written();
            }
            Ok(Placed::New(order))
        }
        // The order's step could not hold its coupon or points: nothing of
        // it was written and its unit went back.
        Ok(Err(failed)) => Err(match refusal.get() {
            Some(Refusal::CouponTaken) => SellError::Coupon(UseRejection::Reserved),
            Some(Refusal::Points(Written::Insufficient)) => SellError::InsufficientPoints(points),
            Some(Refusal::Points(_)) => SellError::Unavailable(
                "the points changed while the order was placed; retry".into(),
            ),
            None => SellError::Unavailable(format!("the order could not be recorded: {failed}")),
        }),
        Err(_) => Err(SellError::Unavailable(
            "the writer stopped before answering".into(),
        )),
    }
}

/// Does `order_id` name a time-sale order? Its coupon and points move only
/// with the order (its payment events, its cancel, its expiry), never by
/// the generic reservation and points-hold endpoints: a coupon released
/// alone would leave the order paying with a discount it no longer holds.
pub async fn is_sale_order(
    state: &Shared,
    order_id: &str,
) -> Result<bool, crate::store::StoreError> {
    match order_id.parse::<OrderId>() {
        Ok(id) => Ok(state.store.get_order(id).await?.is_some()),
        Err(_) => Ok(false),
    }
}

/// What the generic endpoints answer for a time-sale order's holds.
pub const SALE_ORDER: &str = "this order is a time-sale order: its coupon and points move with it \
    (send its payment event, or cancel it with POST /api/v1/orders/{id}/cancel)";

/// The order, for its buyer (or anyone the caller checked may see it).
pub async fn get(state: &Shared, id: OrderId) -> Result<Order, SellError> {
    state
        .store
        .get_order(id)
        .await?
        .ok_or(SellError::NoSuchOrder)
}

/// The buyer's own order: another's is "no such order" (no hint it exists).
async fn own(state: &Shared, id: OrderId, user: UserId) -> Result<Order, SellError> {
    let order = get(state, id).await?;
    if order.user_id != user {
        return Err(SellError::NoSuchOrder);
    }
    Ok(order)
}

/// End a pending order as `to` (paid, cancelled) the way a payment event
/// would, through `payments::take`: its coupon and points move with it in
/// one transaction, once (the event's id is the order's), and a cancelled
/// order's unit goes back. An order no longer pending answers why.
async fn end(state: &Shared, order: Order, to: OrderStatus) -> Result<Order, SellError> {
    use crate::payments::{PaymentError, PaymentEvent, PaymentEventType, Source};
    let now = state.record_now().await?;
    match order.status {
        s if s == to => return Ok(order),
        OrderStatus::PendingPayment if to == OrderStatus::Paid && order.expires_at <= now => {
            return Err(SellError::OrderExpired);
        }
        OrderStatus::PendingPayment => {}
        OrderStatus::Expired => return Err(SellError::OrderExpired),
        other => return Err(SellError::NotPending(other)),
    }
    let (kind, by) = match to {
        OrderStatus::Paid => (PaymentEventType::PaymentSucceeded, "test-pay"),
        _ => (PaymentEventType::OrderCancelled, "buyer-cancel"),
    };
    let event = PaymentEvent {
        event_id: format!("{by}:{}", order.id),
        kind,
        order_id: order.id.to_string(),
        occurred_at: now,
        trace: None,
    };
    crate::payments::take(state, &event, Source::Http)
        .await
        .map_err(|e| match e {
            PaymentError::Store(e) => SellError::Store(e),
            other => SellError::Unavailable(other.to_string()),
        })?;
    let ended = get(state, order.id).await?;
    match ended.status {
        s if s == to => Ok(ended),
        // Ran out meanwhile (the event found it too late).
        OrderStatus::Expired | OrderStatus::PendingPayment => Err(SellError::OrderExpired),
        other => Err(SellError::NotPending(other)),
    }
}

/// The buyer cancels a pending order: its unit goes back to the stock.
pub async fn cancel(state: &Shared, id: OrderId, user: UserId) -> Result<Order, SellError> {
    let order = own(state, id, user).await?;
    end(state, order, OrderStatus::Cancelled).await
}

/// `--test-payments`: the buyer pays a pending order at once.
pub async fn pay(state: &Shared, id: OrderId, user: UserId) -> Result<Order, SellError> {
    if !state.test_payments {
        return Err(SellError::TestPaymentsOff);
    }
    let order = own(state, id, user).await?;
    end(state, order, OrderStatus::Paid).await
}

/// One round on every instance: expire the orders whose payment time is up
/// (each once, whatever other instances do) and give their units back,
/// then finish giving back any unit a crash left out. How many expired.
pub async fn expire_due(state: &Shared) -> Result<usize, SellError> {
    let now = state.record_now().await?;
    let outbound = state.notifier.outbound_on();
    let expired = state.store.expire_orders(now, ROUND, outbound).await?;
    if outbound && !expired.is_empty() {
        state.notifier.outbox_written();
    }
    return_units(state, &expired).await;
    let left = state.store.unreturned_orders(ROUND).await?;
    return_units(state, &left).await;
    Ok(expired.len())
}

/// Give these ended orders' units back to the gate and note it in the
/// record. An order whose give-back failed (Redis unreachable) stays
/// unreturned for the next round.
pub async fn return_units(state: &Shared, orders: &[Order]) {
    let mut returned = Vec::with_capacity(orders.len());
    for o in orders {
        // As the gate holds it: a committed unit.
        let unit = crate::admission::Held {
            returned: false,
            ..held(o)
        };
        match state.gate.give_back(drop_of(o.sale_id), &unit).await {
            Ok(_) => returned.push(o.id),
            Err(crate::admission::GateError::NoSuchDrop) => returned.push(o.id),
            Err(e) => {
                tracing::warn!(error = %e, order = %o.id, "could not give a unit back; the next round will")
            }
        }
    }
    if returned.is_empty() {
        return;
    }
    if let Err(e) = state.store.mark_returned(&returned).await {
        // Given back but not noted: the next round gives back again, which
        // the gate answers as a no-op.
        tracing::warn!(error = %e, "could not note units given back; the next round will");
    }
}
