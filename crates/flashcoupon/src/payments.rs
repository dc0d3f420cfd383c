//! Payment events: what a shop's payment system tells us about an order
//! (`payment.succeeded`, `payment.failed`, `order.cancelled`,
//! `order.refunded`), from the queue `flashcoupon.payments` (`broker`) or
//! `POST /api/v1/payment-events`. One door for both, so they take effect
//! the same way: exactly once per `event_id` (promise 10), the event
//! recorded in the same transaction as its effect.
//!
//! An order ties a checkout together: a succeeded payment confirms every
//! live hold the order has, a failed or cancelled one releases them, a
//! refund cancels its spends. A payment for holds that had already run out
//! confirms nothing and is published as `payment.after_expiry` (refund it).

use std::collections::HashMap;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::InvalidInput;
use crate::domain::coupon::{Coupon, check_order_id, check_reference};
use crate::domain::ids::{CouponId, OrderId};
use crate::domain::sale::{Order, OrderStatus};
use crate::domain::timestamp::{self, Timestamp};
use crate::events::{Event, Payload};
use crate::notify::CouponEvent;
use crate::points;
use crate::spending::{SpendError, cancelled_event, used_event};
use crate::state::Shared;
use crate::store::{
    Applied, HoldChange, HoldRecord, HoldState, InboundItem, InboundRecord, LedgerWrite, OrderStep,
    PointEntry, PointHold, Reports, StoreError,
};

/// How many times an event is read and tried again when concurrent changes
/// to its order (a confirm over HTTP, the expiry) win the race.
const ROUNDS: usize = 4;

/// The longest message the consumer reads (and the HTTP body's limit is
/// the API's): an event is four short fields.
pub const MAX_MESSAGE_BYTES: usize = 4_096;

/// What happened to the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
pub enum PaymentEventType {
    #[serde(rename = "payment.succeeded")]
    PaymentSucceeded,
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
    #[serde(rename = "order.refunded")]
    OrderRefunded,
}

impl PaymentEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentSucceeded => "payment.succeeded",
            Self::PaymentFailed => "payment.failed",
            Self::OrderCancelled => "order.cancelled",
            Self::OrderRefunded => "order.refunded",
        }
    }
}

/// A payment event, as a message on `flashcoupon.payments` or the body of
/// `POST /api/v1/payment-events`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentEvent {
    /// The sender's id for this event: the same id again is a repeat.
    /// 1 to 128 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: PaymentEventType,
    /// The order, as the reservation named it.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    pub order_id: String,
    #[serde(deserialize_with = "timestamp::client")]
    #[schema(schema_with = timestamp::client_schema)]
    pub occurred_at: Timestamp,
    /// The request its message came from (its `x-request-id` and
    /// `traceparent` headers), for what it causes; over HTTP, the request's.
    #[serde(skip)]
    pub trace: Option<std::sync::Arc<crate::trace::Trace>>,
}

impl PaymentEvent {
    /// Parse a message body; the error says what is wrong, for the dead
    /// letter's reason.
    pub fn from_json(body: &[u8]) -> Result<Self, InvalidInput> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(InvalidInput::new(
                "body",
                format!("is {} bytes; at most {MAX_MESSAGE_BYTES}", body.len()),
            ));
        }
        let event: Self = serde_json::from_slice(body)
            .map_err(|e| InvalidInput::new("body", format!("is not a payment event: {e}")))?;
        event.validate()?;
        Ok(event)
    }

    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_reference("event_id", &self.event_id)?;
        check_order_id(&self.order_id)
    }
}

/// Where an event came from (kept with it in the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Amqp,
    Http,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Amqp => "amqp",
            Source::Http => "http",
        }
    }
}

/// An event taken in: the first time (its effect committed now), or a
/// repeat (the first time's record; nothing changed).
#[derive(Debug, Clone)]
pub enum Processed {
    First(InboundRecord),
    Repeat(InboundRecord),
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// No coupon was ever held or spent by this order.
    #[error("no reservation or spend is known for order {0:?}")]
    UnknownOrder(String),
    /// This id was taken in before for another event (type or order).
    #[error("event_id {event_id:?} was already used by a {event_type} for order {order_id:?}")]
    EventIdReused {
        event_id: String,
        event_type: String,
        order_id: String,
    },
    /// Concurrent changes to the order kept winning: try again later.
    #[error("the order kept changing while this event was applied; retry")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SpendError> for PaymentError {
    fn from(e: SpendError) -> Self {
        match e {
            SpendError::Store(e) => PaymentError::Store(e),
            // Only the record can fail in what this module calls.
            other => PaymentError::Store(StoreError::Constraint(other.to_string())),
        }
    }
}

/// What an event does to an order as it now reads.
#[derive(Debug, Default)]
struct Plan {
    /// In coupon order, so two events on one order lock rows alike.
    steps: Vec<OrderStep>,
    /// A payment that confirms nothing because the order's holds had ended:
    /// those coupons, reported as `payment.after_expiry` for a refund.
    late: Vec<CouponId>,
    /// Points whose holds for the order had ended, for the same report.
    late_points: i64,
    /// The payable amount of a time-sale order that had ended unpaid (0:
    /// none), for the same report.
    late_order: i64,
    /// The time-sale order as its step leaves it, for its outbound event.
    sale_moved: Option<Order>,
    /// `expired`, or `released` if none of them expired.
    late_reason: &'static str,
    outcome: String,
}

/// What `kind` does to an order with these holds and spends. The same
/// outcome whatever order events come in (the consumer takes several at
/// once, and a sender may reorder): a failure, a cancellation or a refund
/// releases whatever is still held, and a payment that finds its holds
/// ended (expired, or released by an earlier failure) is reported.
fn plan(kind: PaymentEventType, holds: &[HoldRecord], spends: &[CouponId], now: Timestamp) -> Plan {
    // Each coupon's latest hold for the order decides (it may have been
    // held, run out and held again).
    let mut latest: Vec<&HoldRecord> = Vec::new();
    for h in holds {
        match latest.iter_mut().find(|l| l.coupon_id == h.coupon_id) {
            Some(l) if (l.reserved_at, l.id) < (h.reserved_at, h.id) => *l = h,
            Some(_) => {}
            None => latest.push(h),
        }
    }
    latest.sort_by_key(|h| h.coupon_id);
    let release_live = |plan: &mut Plan| {
        plan.steps.extend(
            latest
                .iter()
                .filter(|h| h.state == HoldState::Held)
                .map(|h| OrderStep::Release(h.coupon_id)),
        );
    };
    let mut plan = Plan::default();
    match kind {
        PaymentEventType::PaymentSucceeded => {
            let mut expired = false;
            let mut ended = Vec::new();
            for h in &latest {
                match h.state {
                    HoldState::Held if h.expires_at > now => {
                        plan.steps.push(OrderStep::Confirm(h.coupon_id));
                    }
                    HoldState::Held | HoldState::Expired => {
                        expired = true;
                        ended.push(h.coupon_id);
                    }
                    HoldState::Released => ended.push(h.coupon_id),
                    HoldState::Confirmed => {}
                }
            }
            // Something confirmed: the payment is for that (an order may
            // have let one coupon run out and held another instead).
            if plan.steps.is_empty() {
                plan.late = ended;
                plan.late_reason = if expired { "expired" } else { "released" };
            }
            plan.outcome = match (plan.steps.len(), plan.late.len()) {
                (0, 0) => "nothing to confirm (already confirmed)".into(),
                (0, e) => format!(
                    "{e} reservation(s) had {}: published payment.after_expiry",
                    if expired { "expired" } else { "been released" }
                ),
                (n, _) => format!("confirmed {n} reservation(s)"),
            };
        }
        PaymentEventType::PaymentFailed | PaymentEventType::OrderCancelled => {
            release_live(&mut plan);
            plan.outcome = match plan.steps.len() {
                0 => "nothing to release (already ended)".into(),
                n => format!("released {n} reservation(s)"),
            };
        }
        PaymentEventType::OrderRefunded => {
            let mut spent = spends.to_vec();
            spent.sort();
            plan.steps = spent.into_iter().map(OrderStep::CancelUse).collect();
            let cancelled = plan.steps.len();
            release_live(&mut plan);
            let released = plan.steps.len() - cancelled;
            plan.outcome = match (cancelled, released) {
                (0, 0) => "nothing to refund (no coupon is spent or held by the order)".into(),
                (c, 0) => format!("cancelled {c} coupon use(s)"),
                (0, r) => format!("released {r} reservation(s)"),
                (c, r) => format!("cancelled {c} coupon use(s); released {r} reservation(s)"),
            };
        }
    }
    plan
}

/// What `event` does to the points the order holds or spent, added to
/// the coupons' `plan`: a payment confirms live holds and reports ended
/// ones (always: an order's points hold is never replaced); a failure or a
/// cancellation releases; a refund gives spends back and releases.
fn plan_points(
    state: &Shared,
    event: &PaymentEvent,
    holds: &[PointHold],
    spends: &[PointEntry],
    now: Timestamp,
    plan: &mut Plan,
) {
    if holds.is_empty() && spends.is_empty() {
        return;
    }
    let coupon_steps = plan.steps.len();
    let release_live = |plan: &mut Plan| {
        for h in holds.iter().filter(|h| h.state == HoldState::Held) {
            let w = points::ending(h, HoldState::Released, now);
            plan.steps.push(OrderStep::Points(Box::new(w)));
        }
    };
    let mut said = String::new();
    match event.kind {
        PaymentEventType::PaymentSucceeded => {
            let (mut ended, mut expired) = (0, false);
            for h in holds {
                match h.state {
                    HoldState::Held if h.expires_at > now => {
                        let w = points::ending(h, HoldState::Confirmed, now);
                        let (w, _) = points::announcing(state, w, points::spent);
                        plan.steps.push(OrderStep::Points(Box::new(w)));
                    }
                    HoldState::Held | HoldState::Expired => {
                        expired = true;
                        ended += h.amount;
                    }
                    HoldState::Released => ended += h.amount,
                    HoldState::Confirmed => {}
                }
            }
            let confirmed = plan.steps.len() - coupon_steps;
            // An order holds points once (one hold per user and order):
            // one that ended is never replaced by another, so the payment
            // was for it too, whatever else it confirms. Report it.
            if ended > 0 {
                plan.late_points = ended;
                if expired || plan.late.is_empty() {
                    plan.late_reason = if expired { "expired" } else { "released" };
                }
            }
            let mut parts = Vec::new();
            if confirmed > 0 {
                parts.push(format!("confirmed {confirmed} points hold(s)"));
            }
            if ended > 0 {
                parts.push(format!(
                    "a points hold of {ended} had {}: published payment.after_expiry",
                    if expired { "expired" } else { "been released" }
                ));
            }
            said = parts.join("; ");
        }
        PaymentEventType::PaymentFailed | PaymentEventType::OrderCancelled => {
            release_live(plan);
            let n = plan.steps.len() - coupon_steps;
            if n > 0 {
                said = format!("released {n} points hold(s)");
            }
        }
        PaymentEventType::OrderRefunded => {
            for spend in spends {
                let reason = format!("order {} refunded", event.order_id);
                let w = LedgerWrite::refund_spend(spend, None, reason, now);
                plan.steps.push(OrderStep::Points(Box::new(w)));
            }
            release_live(plan);
            let n = plan.steps.len() - coupon_steps;
            if n > 0 {
                said = format!(
                    "refunded {} points spend(s), released {} points hold(s)",
                    spends.len(),
                    n - spends.len()
                );
            }
        }
    }
    if !said.is_empty() {
        plan.outcome = if coupon_steps == 0 && plan.late.is_empty() {
            said
        } else {
            format!("{}; {said}", plan.outcome)
        };
    }
}

/// What `kind` does to the time-sale order `order` (the order id names
/// it), added to the plan: a payment pays a pending order that has not run
/// out, and reports one that ended unpaid; a failure or a cancellation
/// cancels a pending order (its unit goes back once committed); a refund
/// refunds a paid one.
fn plan_sale(kind: PaymentEventType, order: &Order, now: Timestamp, plan: &mut Plan) {
    let pending = order.status == OrderStatus::PendingPayment;
    // An order is paid whole or not at all: with the coupon and the points
    // it was placed with, each confirmed by this very event.
    let coupon_confirmed = order.coupon_id.is_none_or(|c| {
        plan.steps
            .iter()
            .any(|s| matches!(s, OrderStep::Confirm(x) if *x == c))
    });
    let points_confirmed = order.points_used == 0
        || plan.steps.iter().any(|s| {
            matches!(s, OrderStep::Points(w)
                if matches!(w.hold, HoldChange::End { to: HoldState::Confirmed, .. }))
        });
    let whole = coupon_confirmed && points_confirmed;
    let to = match kind {
        PaymentEventType::PaymentSucceeded if pending && order.expires_at > now && whole => {
            Some(OrderStatus::Paid)
        }
        PaymentEventType::PaymentSucceeded
            if pending || matches!(order.status, OrderStatus::Expired | OrderStatus::Cancelled) =>
        {
            let expired = order.status == OrderStatus::Expired || order.expires_at <= now;
            plan.late_order = order.payable_amount;
            if plan.late.is_empty() && plan.late_points == 0 || expired {
                plan.late_reason = if expired { "expired" } else { "released" };
            }
            None
        }
        PaymentEventType::PaymentFailed | PaymentEventType::OrderCancelled if pending => {
            Some(OrderStatus::Cancelled)
        }
        PaymentEventType::OrderRefunded if order.status == OrderStatus::Paid => {
            Some(OrderStatus::Refunded)
        }
        _ => None,
    };
    let said = match to {
        Some(to) => {
            plan.steps.push(OrderStep::Sale {
                order: order.id,
                to,
            });
            plan.sale_moved = Some(Order {
                status: to,
                ..order.clone()
            });
            format!("order {}", to.as_str())
        }
        None if plan.late_order > 0 => format!(
            "the order could not be paid (its holds had {}): published payment.after_expiry",
            plan.late_reason
        ),
        None => format!("the order stays {}", order.status.as_str()),
    };
    plan.outcome = if plan.outcome.is_empty() || plan.outcome.starts_with("nothing") {
        said
    } else {
        format!("{}; {said}", plan.outcome)
    };
}

/// An event read and planned, ready to commit: the record, its steps and
/// reports, and the coupon events to announce once committed.
#[derive(Debug)]
struct Ready {
    item: InboundItem,
    committed: Vec<CouponEvent>,
}

#[derive(Debug)]
enum Prepared {
    Repeat(InboundRecord),
    Ready(Ready),
}

/// Read the orders of `events` and plan what each does (writing nothing):
/// one read of all their holds, one of the coupons their events report on.
/// `seen`: look for each event's first time before planning (one read
/// each); without it a repeat is found by the commit (`Applied::Repeat`),
/// which saves that read for the many events that are not repeats. An
/// error of the batch's own reads is the `Err`.
async fn prepare_many(
    state: &Shared,
    events: &[&PaymentEvent],
    source: Source,
    seen: bool,
) -> Result<Vec<Result<Prepared, PaymentError>>, StoreError> {
    let mut out: Vec<Option<Result<Prepared, PaymentError>>> =
        events.iter().map(|_| None).collect();
    if seen {
        for (i, event) in events.iter().enumerate() {
            match repeat_of(state, event).await {
                Ok(Some(first)) => out[i] = Some(Ok(Prepared::Repeat(first))),
                Ok(None) => {}
                Err(e) => out[i] = Some(Err(e)),
            }
        }
    }
    let orders: Vec<&str> = events.iter().map(|e| e.order_id.as_str()).collect();
    let mut holds: HashMap<String, Vec<HoldRecord>> = HashMap::new();
    for h in state.store.holds_of_orders(&orders).await? {
        holds.entry(h.order_id.clone()).or_default().push(h);
    }
    let mut point_holds: HashMap<String, Vec<PointHold>> = HashMap::new();
    for h in state.store.point_holds_of_orders(&orders).await? {
        point_holds.entry(h.order_id.clone()).or_default().push(h);
    }
    let now = state.record_now().await?;
    let mut plans = Vec::new();
    for (i, event) in events.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let order_holds = holds.get(&event.order_id).map_or(&[][..], Vec::as_slice);
        let order_point_holds = point_holds
            .get(&event.order_id)
            .map_or(&[][..], Vec::as_slice);
        // A time-sale order is named by its id.
        let sale_order = match event.order_id.parse::<OrderId>() {
            Ok(id) => match state.store.get_order(id).await {
                Ok(found) => found,
                Err(e) => {
                    out[i] = Some(Err(e.into()));
                    continue;
                }
            },
            Err(_) => None,
        };
        // Spends matter to a refund, and to tell an unknown order.
        let look = event.kind == PaymentEventType::OrderRefunded
            || (order_holds.is_empty() && order_point_holds.is_empty());
        let spends = if look {
            let coupons = state.store.order_spends(&event.order_id).await;
            let points = state.store.order_point_spends(&event.order_id).await;
            match coupons.and_then(|c| Ok((c, points?))) {
                Ok(spends) => spends,
                Err(e) => {
                    out[i] = Some(Err(e.into()));
                    continue;
                }
            }
        } else {
            (Vec::new(), Vec::new())
        };
        if order_holds.is_empty()
            && order_point_holds.is_empty()
            && spends.0.is_empty()
            && spends.1.is_empty()
            && sale_order.is_none()
        {
            out[i] = Some(Err(PaymentError::UnknownOrder(event.order_id.clone())));
            continue;
        }
        let mut plan = plan(event.kind, order_holds, &spends.0, now);
        // The points' events are made here: in the event's trace (see below).
        crate::trace::sync_scope(trace_of(event), || {
            plan_points(state, event, order_point_holds, &spends.1, now, &mut plan)
        });
        if let Some(order) = &sale_order {
            plan_sale(event.kind, order, now, &mut plan);
        }
        plans.push((i, plan));
    }
    let reported: Vec<CouponId> = plans
        .iter()
        .flat_map(|(_, p)| p.steps.iter())
        .filter_map(|step| match *step {
            OrderStep::Confirm(id) | OrderStep::CancelUse(id) => Some(id),
            OrderStep::Release(_) | OrderStep::Points(_) | OrderStep::Sale { .. } => None,
        })
        .collect();
    let coupons: HashMap<CouponId, Coupon> = state
        .store
        .get_coupons(&reported)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    for (i, plan) in plans {
        let event = events[i];
        let reported = crate::trace::scope(
            trace_of(event),
            reports_for(state, event, &plan, now, &coupons),
        );
        out[i] = Some(reported.await.map(|(committed, reports)| {
            Prepared::Ready(Ready {
                item: InboundItem {
                    record: InboundRecord {
                        event_id: event.event_id.clone(),
                        event_type: event.kind.as_str().to_owned(),
                        order_id: event.order_id.clone(),
                        occurred_at: event.occurred_at,
                        received_at: now,
                        source: source.as_str().to_owned(),
                        outcome: plan.outcome,
                    },
                    steps: plan.steps,
                    reports,
                },
                committed,
            })
        }));
    }
    Ok(out
        .into_iter()
        .map(|o| o.unwrap_or(Err(PaymentError::Busy)))
        .collect())
}

/// Committed: wake the webhook deliverer and the relay, tell the owners;
/// a time-sale order cancelled gives its unit back, one paid wakes the
/// trigger runner (its `first_order_paid` event was written with it).
async fn announce(state: &Shared, item: InboundItem, committed: Vec<CouponEvent>) -> Processed {
    for step in &item.steps {
        match step {
            OrderStep::Points(w) => {
                let entries = w.planned();
                points::count(state, &entries);
            }
            &OrderStep::Sale {
                order,
                to: OrderStatus::Cancelled,
            } => {
                // Unreadable now: the return round gives it back later.
                if let Ok(Some(o)) = state.store.get_order(order).await {
                    crate::selling::orders::return_units(state, &[o]).await;
                }
            }
            OrderStep::Sale {
                to: OrderStatus::Paid,
                ..
            } => state.triggers_arrived.notify_one(),
            _ => {}
        }
    }
    if !item.reports.deliveries.is_empty() {
        state.notifier.webhooks.wake();
    }
    if !item.reports.outbox.is_empty() {
        state.notifier.outbox_written();
    }
    for event in committed {
        state.notifier.coupon_event_committed(event);
    }
    Processed::First(item.record)
}

/// Take a payment event in: apply it to its order once, whichever door it
/// came by and however often.
pub async fn take(
    state: &Shared,
    event: &PaymentEvent,
    source: Source,
) -> Result<Processed, PaymentError> {
    event.validate()?;
    for _ in 0..ROUNDS {
        let prepared = prepare_many(state, &[event], source, true).await?.pop();
        let ready = match prepared.unwrap_or(Err(PaymentError::Busy)) {
            Ok(Prepared::Repeat(first)) => return Ok(Processed::Repeat(first)),
            Ok(Prepared::Ready(ready)) => ready,
            // The order changed between its reads: read it again.
            Err(PaymentError::Busy) => continue,
            Err(e) => return Err(e),
        };
        // In the event's trace: what the commit itself writes (a first
        // paid order's trigger row) records the message that caused it.
        let applied = crate::trace::scope(
            trace_of(event),
            state.store.apply_inbound(std::slice::from_ref(&ready.item)),
        )
        .await?;
        // Repeat or Raced: the next round reads again (and finds the
        // first one's record, or the order as it now is).
        if applied.first() == Some(&Applied::Done) {
            return Ok(announce(state, ready.item, ready.committed).await);
        }
    }
    // The last round may have lost to the same event from elsewhere.
    match repeat_of(state, event).await? {
        Some(first) => Ok(Processed::Repeat(first)),
        None => Err(PaymentError::Busy),
    }
}

/// Take many events in at once (the consumer's batch): those that can go
/// together in one transaction (one per order and per id; one commit, so
/// one fsync, for all), the rest one by one with [`take`]. The same effect
/// as taking each alone; results in the events' order.
pub async fn take_many(
    state: &Shared,
    events: &[PaymentEvent],
    source: Source,
) -> Vec<Result<Processed, PaymentError>> {
    let mut results: Vec<Option<Result<Processed, PaymentError>>> =
        events.iter().map(|_| None).collect();
    let mut orders = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    let mut together = Vec::new();
    let mut alone = Vec::new();
    for (i, event) in events.iter().enumerate() {
        if let Err(e) = event.validate() {
            results[i] = Some(Err(e.into()));
        } else if orders.insert(event.order_id.as_str()) && ids.insert(event.event_id.as_str()) {
            together.push(i);
        } else {
            // A second event of an order was planned on the same read as
            // the first: it goes after, alone.
            alone.push(i);
        }
    }
    let batch: Vec<&PaymentEvent> = together.iter().map(|&i| &events[i]).collect();
    let prepared = match prepare_many(state, &batch, source, false).await {
        Ok(prepared) => prepared,
        Err(e) => {
            // The batch's reads failed: each goes alone (and meets the
            // same trouble, or not, on its own).
            tracing::debug!(error = %e, "reading a batch of payment events failed");
            alone.extend(together.iter().copied());
            Vec::new()
        }
    };
    let mut ready = Vec::new();
    for (&i, p) in together.iter().zip(prepared) {
        match p {
            Ok(Prepared::Repeat(first)) => results[i] = Some(Ok(Processed::Repeat(first))),
            // Points lock their buyer's account row: in one transaction
            // with other events, two batches taking two buyers in opposite
            // orders would deadlock. Each in its own.
            Ok(Prepared::Ready(r))
                if r.item
                    .steps
                    .iter()
                    .any(|s| matches!(s, OrderStep::Points(_) | OrderStep::Sale { .. })) =>
            {
                alone.push(i)
            }
            Ok(Prepared::Ready(r)) => ready.push((i, r)),
            // Planned without looking for a first time: a repeat of an
            // event that emptied its order (a refund) reads as an unknown
            // order. Alone, the careful way looks first.
            Err(_) => alone.push(i),
        }
    }
    if !ready.is_empty() {
        let (heads, items): (Vec<(usize, Vec<CouponEvent>)>, Vec<InboundItem>) = ready
            .into_iter()
            .map(|(i, r)| ((i, r.committed), r.item))
            .unzip();
        match state.store.apply_inbound(&items).await {
            Ok(applied) => {
                for (((i, committed), item), applied) in heads.into_iter().zip(items).zip(applied) {
                    match applied {
                        Applied::Done => {
                            results[i] = Some(Ok(announce(state, item, committed).await))
                        }
                        // A repeat (answered from its first record) or
                        // raced (read again): alone, the careful way.
                        Applied::Repeat | Applied::Raced => alone.push(i),
                    }
                }
            }
            // One bad event must not sink the others: each goes alone.
            Err(e) => {
                tracing::debug!(error = %e, "a batch of payment events failed; taking them one by one");
                alone.extend(heads.iter().map(|(i, _)| *i));
            }
        }
    }
    alone.sort_unstable();
    for i in alone {
        results[i] = Some(take(state, &events[i], source).await);
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(PaymentError::Busy)))
        .collect()
}

/// The first time's record of this event id, if it came before: a repeat
/// must be the same event (type and order), not another one reusing its id.
async fn repeat_of(
    state: &Shared,
    event: &PaymentEvent,
) -> Result<Option<InboundRecord>, PaymentError> {
    let Some(first) = state.store.inbound_event(&event.event_id).await? else {
        return Ok(None);
    };
    if first.event_type != event.kind.as_str() || first.order_id != event.order_id {
        return Err(PaymentError::EventIdReused {
            event_id: first.event_id,
            event_type: first.event_type,
            order_id: first.order_id,
        });
    }
    Ok(Some(first))
}

/// What an event causes carries its message's trace (a batch from the
/// broker mixes requests); over HTTP, the request's own.
fn trace_of(event: &PaymentEvent) -> Option<std::sync::Arc<crate::trace::Trace>> {
    event.trace.clone().or_else(crate::trace::current)
}

/// The events the plan's steps report (each written with them), and the
/// reports of all of them plus `payment.after_expiry` where holds ran out.
async fn reports_for(
    state: &Shared,
    event: &PaymentEvent,
    plan: &Plan,
    now: Timestamp,
    coupons: &HashMap<CouponId, Coupon>,
) -> Result<(Vec<CouponEvent>, Reports), PaymentError> {
    let mut committed = Vec::new();
    let mut reports = Reports::default();
    for step in &plan.steps {
        let (OrderStep::Confirm(id) | OrderStep::CancelUse(id)) = *step else {
            continue; // a release is not published (as over HTTP)
        };
        let Some(coupon) = coupons.get(&id) else {
            // Gone since the plan's read: the step races. Read again rather
            // than commit a confirm without its report.
            return Err(PaymentError::Busy);
        };
        let coupon_event = match *step {
            OrderStep::Confirm(_) => {
                let Some(r) = coupon.reservation.as_ref() else {
                    return Err(PaymentError::Busy); // changed since the read: read again
                };
                used_event(
                    state,
                    coupon,
                    &r.order_id,
                    r.order_amount,
                    r.discount_amount,
                )
                .await?
            }
            _ => cancelled_event(state, coupon, &event.order_id).await?,
        };
        reports
            .deliveries
            .extend(coupon_event.reports.deliveries.iter().cloned());
        reports
            .outbox
            .extend(coupon_event.reports.outbox.iter().cloned());
        committed.push(coupon_event);
    }
    if let Some(moved) = &plan.sale_moved
        && state.notifier.outbound_on()
    {
        reports.outbox.push(crate::store::sales::order_outbox(
            moved,
            now,
            crate::trace::current(),
        ));
    }
    if !plan.late.is_empty() || plan.late_points > 0 || plan.late_order > 0 {
        let late = Event::new(
            Payload::PaymentAfterExpiry {
                event_id: event.event_id.clone(),
                order_id: event.order_id.clone(),
                coupon_ids: plan.late.clone(),
                points: plan.late_points,
                order_amount: plan.late_order,
                reason: plan.late_reason,
            },
            now,
            None,
            None,
        );
        let text = format!(
            "💸 Payment {} for order {} came after its reservation {}: refund it.",
            event.event_id, event.order_id, plan.late_reason
        );
        let key = format!("{}:{}", late.kind, event.event_id);
        reports.deliveries.extend(
            state
                .notifier
                .webhooks
                .deliveries_for(&late, &key, &text, |_| true)
                .await?,
        );
        reports.outbox.extend(state.notifier.outbound(&late));
    }
    Ok((committed, reports))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::UserId;

    fn hold(coupon: u128, state: HoldState, expires_at: i64) -> HoldRecord {
        HoldRecord {
            id: uuid::Uuid::from_u128(coupon * 10),
            coupon_id: CouponId(uuid::Uuid::from_u128(coupon)),
            user_id: UserId(uuid::Uuid::from_u128(99)),
            order_id: "o".into(),
            order_amount: 100,
            discount_amount: 10,
            reserved_at: Timestamp(0),
            expires_at: Timestamp(expires_at),
            state,
        }
    }

    fn coupon(n: u128) -> CouponId {
        CouponId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn a_success_confirms_live_holds_and_reports_the_ones_that_ran_out() {
        let now = Timestamp(1_000);
        let holds = [
            hold(1, HoldState::Held, 2_000),
            hold(2, HoldState::Held, 1_000), // due now: ran out
            hold(3, HoldState::Expired, 500),
        ];
        let p = plan(PaymentEventType::PaymentSucceeded, &holds, &[], now);
        assert_eq!(p.steps, [OrderStep::Confirm(coupon(1))]);
        assert!(p.late.is_empty(), "the payment was for the live hold");
        let p = plan(PaymentEventType::PaymentSucceeded, &holds[1..], &[], now);
        assert!(p.steps.is_empty());
        assert_eq!(
            (p.late, p.late_reason),
            (vec![coupon(2), coupon(3)], "expired")
        );
        let released = [hold(4, HoldState::Released, 2_000)];
        let p = plan(PaymentEventType::PaymentSucceeded, &released, &[], now);
        assert_eq!((p.late, p.late_reason), (vec![coupon(4)], "released"));
    }

    #[test]
    fn a_success_after_a_confirm_is_nothing_and_reports_no_expiry() {
        let mut again = hold(3, HoldState::Confirmed, 2_000);
        again.id = uuid::Uuid::from_u128(31);
        again.reserved_at = Timestamp(600);
        let holds = [
            hold(3, HoldState::Expired, 500), // held again, then confirmed
            again,
            hold(1, HoldState::Confirmed, 2_000),
        ];
        let p = plan(
            PaymentEventType::PaymentSucceeded,
            &holds,
            &[],
            Timestamp(1_000),
        );
        assert!(p.steps.is_empty() && p.late.is_empty(), "{p:?}");
    }

    #[test]
    fn a_failure_releases_every_live_hold_even_one_past_due_and_a_refund_cancels_spends() {
        let holds = [
            hold(1, HoldState::Held, 2_000),
            hold(2, HoldState::Held, 10),
            hold(3, HoldState::Released, 500),
        ];
        for kind in [
            PaymentEventType::PaymentFailed,
            PaymentEventType::OrderCancelled,
        ] {
            let p = plan(kind, &holds, &[coupon(7)], Timestamp(1_000));
            assert_eq!(
                p.steps,
                [OrderStep::Release(coupon(1)), OrderStep::Release(coupon(2))]
            );
        }
        // A refund cancels the spends and releases what is still held (it
        // may come before the payment it refunds).
        let p = plan(
            PaymentEventType::OrderRefunded,
            &holds,
            &[coupon(7)],
            Timestamp(1_000),
        );
        assert_eq!(
            p.steps,
            [
                OrderStep::CancelUse(coupon(7)),
                OrderStep::Release(coupon(1)),
                OrderStep::Release(coupon(2))
            ]
        );
    }

    #[test]
    fn messages_that_are_not_payment_events_say_why() {
        let ok = br#"{"event_id":"e1","type":"payment.failed","order_id":"o1","occurred_at":"2026-12-02T10:00:00Z"}"#;
        assert_eq!(
            PaymentEvent::from_json(ok).unwrap().kind,
            PaymentEventType::PaymentFailed
        );
        for (bad, says) in [
            (&b"not json"[..], "not a payment event"),
            (br#"{"event_id":"e1","type":"payment.maybe","order_id":"o1","occurred_at":"2026-12-02T10:00:00Z"}"#, "unknown variant"),
            (br#"{"event_id":"","type":"payment.failed","order_id":"o1","occurred_at":"2026-12-02T10:00:00Z"}"#, "event_id"),
            (br#"{"event_id":"e","type":"payment.failed","order_id":"o\u0000","occurred_at":"2026-12-02T10:00:00Z"}"#, "order_id"),
            (br#"{"event_id":"e","type":"payment.failed","order_id":"o","occurred_at":"yesterday"}"#, "RFC 3339"),
            (br#"{"event_id":"e","type":"payment.failed","order_id":"o","occurred_at":"2026-12-02T10:00:00Z","amount":1}"#, "unknown field"),
        ] {
            let err = PaymentEvent::from_json(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{err} should say {says}");
        }
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(
            PaymentEvent::from_json(&huge)
                .unwrap_err()
                .to_string()
                .contains("bytes")
        );
    }
}
