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
//! orders hold are always `1..=n`. Nobody is promised a unit they did not
//! order; someone who came late simply finds stock again.
//!
//! [`Gate::give_back`]: crate::admission::Gate::give_back

use std::time::Instant;

use super::{SellError, drop_of, held};
use crate::admission::{Decision, Rejection, UnitId};
use crate::domain::ids::{OrderId, SaleId, UserId};
use crate::domain::sale::{Order, OrderStatus};
use crate::state::Shared;
use crate::store::{NewOrderRow, Reports};

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
) -> Result<Placed, SellError> {
    let started = Instant::now();
    state
        .limits
        .check_claim(user)
        .map_err(SellError::RateLimited)?;
    let result = take_unit(state, sale, user, key).await;
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
) -> Result<Placed, SellError> {
    let terms = state
        .catalog
        .sale(&*state.store, sale)
        .await
        .map_err(|e| SellError::Unavailable(format!("the record is unreachable: {e}")))?
        .ok_or(SellError::NoSuchSale)?;
    let now = state.clock.now();
    let id = OrderId::generate();
    match state
        .gate
        .claim(drop_of(sale), user, UnitId(id.0), key, now)
        .await?
    {
        Decision::Rejected(r) => Ok(Placed::Rejected(r)),
        Decision::Retry(why) => Err(SellError::Unavailable(why.into())),
        Decision::Replay(unit) => {
            // The gate learns a key's order only after it committed.
            let order = state
                .store
                .get_order(OrderId(unit.0))
                .await?
                .ok_or_else(|| {
                    SellError::Unavailable("the replayed order is not readable yet".into())
                })?;
            Ok(Placed::Replayed(order))
        }
        Decision::Admitted(ticket) => {
            let order = Order {
                id,
                sale_id: sale,
                user_id: user,
                seq: ticket.seq,
                user_seq: ticket.user_seq,
                idempotency_key: ticket.key.as_deref().map(str::to_owned),
                unit_price: terms.sale_price,
                coupon_id: None,
                coupon_discount: 0,
                points_used: 0,
                payable_amount: terms.sale_price,
                status: OrderStatus::PendingPayment,
                created_at: now,
                expires_at: now.plus_millis(i64::from(terms.payment_ttl_secs) * 1_000),
                ended_at: None,
                refunded_at: None,
            };
            let row = NewOrderRow {
                order: order.clone(),
                gate_epoch: ticket.epoch,
            };
            match state.orders.submit(ticket, row).await {
                Ok(Ok(())) => Ok(Placed::New(order)),
                Ok(Err(failed)) => Err(SellError::Unavailable(format!(
                    "the order could not be recorded: {failed}"
                ))),
                Err(_) => Err(SellError::Unavailable(
                    "the writer stopped before answering".into(),
                )),
            }
        }
    }
}

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

/// End a pending order as `to`, once; an order no longer pending answers
/// why (expired, or its state). Ended unpaid: its unit goes back.
async fn end(state: &Shared, order: Order, to: OrderStatus) -> Result<Order, SellError> {
    let now = state.record_now().await?;
    match state
        .store
        .end_order(order.id, to, now, &Reports::default())
        .await?
    {
        Some(ended) => {
            if !ended.status.holds_unit() {
                return_units(state, std::slice::from_ref(&ended)).await;
            }
            Ok(ended)
        }
        None => {
            let now_reads = get(state, order.id).await?;
            match now_reads.status {
                // The same move again answers the order as it stands.
                s if s == to => Ok(now_reads),
                OrderStatus::Expired => Err(SellError::OrderExpired),
                // Pending, yet not payable: it ran out and the round has not
                // expired it yet.
                OrderStatus::PendingPayment => Err(SellError::OrderExpired),
                other => Err(SellError::NotPending(other)),
            }
        }
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
    let expired = state.store.expire_orders(now, ROUND).await?;
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
