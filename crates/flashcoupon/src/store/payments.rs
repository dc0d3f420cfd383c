//! Payment events in the record (promise 10): the inbox of processed
//! `event_id`s, written in the same transaction as the event's effect on an
//! order (its holds confirmed or released, its spends cancelled), so a
//! repeat finds the first and changes nothing.

use async_trait::async_trait;

use super::StoreError;
use super::columns::Columns;
use super::holds::HoldState;
use super::sql::{Arg, Sql, args, values};
use crate::domain::ids::CouponId;
use crate::domain::timestamp::Timestamp;

/// A payment event as processed: what arrived, and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRecord {
    pub event_id: String,
    pub event_type: String,
    pub order_id: String,
    pub occurred_at: Timestamp,
    pub received_at: Timestamp,
    /// `amqp` or `http`.
    pub source: String,
    /// For the operator: e.g. `confirmed 1 reservation`.
    pub outcome: String,
}

/// One change an event makes to its order, each a conditional update: if
/// any finds its row no longer as read, the whole event is undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderStep {
    /// The live hold of this coupon for the order is confirmed (not run out).
    Confirm(CouponId),
    /// The live hold of this coupon for the order is released.
    Release(CouponId),
    /// The coupon's spend on the order is cancelled (a refund).
    CancelUse(CouponId),
    /// A write to the points of the order's buyer: a hold confirmed or
    /// released, a spend refunded (see `LedgerWrite`'s constructors).
    Points(Box<super::LedgerWrite>),
    /// The time-sale order moves to this state (see `sales::end_order_in`).
    Sale {
        order: crate::domain::ids::OrderId,
        to: crate::domain::sale::OrderStatus,
    },
}

/// An event to commit: its record (whose `received_at` is the time its
/// steps are judged at), its steps, and its reports.
#[derive(Debug, Clone)]
pub struct InboundItem {
    pub record: InboundRecord,
    pub steps: Vec<OrderStep>,
    pub reports: super::Reports,
}

/// How [`PaymentStore::apply_inbound`] ended for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The event and its effect are committed.
    Done,
    /// The event was processed before: nothing written.
    Repeat,
    /// A step found its row changed since it was read (a concurrent
    /// confirm, release or expiry): nothing written; read again.
    Raced,
}

#[async_trait]
pub trait PaymentStore {
    async fn inbound_event(&self, event_id: &str) -> Result<Option<InboundRecord>, StoreError>;
    /// Every hold ever made for these orders (one read for a batch).
    async fn holds_of_orders(&self, orders: &[&str]) -> Result<Vec<super::HoldRecord>, StoreError>;
    /// The coupons an order has spent (used, not cancelled).
    async fn order_spends(&self, order_id: &str) -> Result<Vec<CouponId>, StoreError>;
    /// In one transaction, for each event in turn (each in a savepoint of
    /// its own, so one that is a repeat or raced leaves no trace): record
    /// it (a repeat stops there), apply its steps to the order
    /// `record.order_id`, write its reports. One answer per event.
    async fn apply_inbound(&self, items: &[InboundItem]) -> Result<Vec<Applied>, StoreError>;
}

pub(super) fn inbound(row: &impl Columns) -> Result<InboundRecord, sqlx::Error> {
    Ok(InboundRecord {
        event_id: row.text("event_id")?,
        event_type: row.text("event_type")?,
        order_id: row.text("order_id")?,
        occurred_at: Timestamp(row.int("occurred_at")?),
        received_at: Timestamp(row.int("received_at")?),
        source: row.text("source")?,
        outcome: row.text("outcome")?,
    })
}

/// The rows one step kind changes, all events of a batch at once: one
/// statement per table, each checked to change exactly as many rows as
/// there are steps (else the batch goes the careful way).
pub(super) struct AtOnce<'a> {
    pub confirms: Vec<(&'a str, String)>,
    pub releases: Vec<(&'a str, String)>,
    pub cancels: Vec<(&'a str, String)>,
    /// Some step writes points or moves a time-sale order: the batch goes
    /// the careful way.
    pub careful: bool,
}

impl<'a> AtOnce<'a> {
    pub fn of(items: &'a [InboundItem]) -> Self {
        let mut at = Self {
            confirms: Vec::new(),
            releases: Vec::new(),
            cancels: Vec::new(),
            careful: false,
        };
        for item in items {
            let order = item.record.order_id.as_str();
            for step in &item.steps {
                match *step {
                    OrderStep::Confirm(c) => at.confirms.push((order, c.to_string())),
                    OrderStep::Release(c) => at.releases.push((order, c.to_string())),
                    OrderStep::CancelUse(c) => at.cancels.push((order, c.to_string())),
                    OrderStep::Points(_) | OrderStep::Sale { .. } => at.careful = true,
                }
            }
        }
        at
    }
}

/// Inside the caller's transaction, [`PaymentStore::apply_inbound`]: the
/// whole batch in a few multi-row statements if it can (no repeat, no race,
/// no points or order steps), else each event in a savepoint of its own.
pub(super) async fn apply_inbound_in<S: Sql>(
    tx: &mut S,
    items: &[InboundItem],
) -> Result<Vec<Applied>, StoreError> {
    let at = AtOnce::of(items);
    if items.len() > 1 && !at.careful {
        tx.execute("SAVEPOINT at_once", args![]).await?;
        if at_once(tx, items, &at).await? {
            tx.execute("RELEASE SAVEPOINT at_once", args![]).await?;
            return Ok(vec![Applied::Done; items.len()]);
        }
        // Undone now: the careful pass must not meet these rows.
        tx.execute("ROLLBACK TO SAVEPOINT at_once", args![]).await?;
        tx.execute("RELEASE SAVEPOINT at_once", args![]).await?;
    }
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        tx.execute("SAVEPOINT one_event", args![]).await?;
        let applied = one_event(tx, item).await?;
        if applied != Applied::Done {
            tx.execute("ROLLBACK TO SAVEPOINT one_event", args![])
                .await?;
        }
        tx.execute("RELEASE SAVEPOINT one_event", args![]).await?;
        results.push(applied);
    }
    Ok(results)
}

/// The columns of an `inbound_events` row, in [`record_args`]' order.
const INSERT_INBOUND: &str = "INSERT INTO inbound_events (event_id, event_type, order_id, \
     occurred_at, received_at, source, outcome) ";

fn record_args(r: &InboundRecord, args: &mut Vec<Arg>) {
    args.extend(args![
        r.event_id.as_str(),
        r.event_type.as_str(),
        r.order_id.as_str(),
        r.occurred_at.0,
        r.received_at.0,
        r.source.as_str(),
        r.outcome.as_str(),
    ]);
}

/// One event, the careful way (inside a savepoint the caller undoes unless
/// this answers `Done`): record it (a repeat stops there), apply its steps
/// one by one, write its reports.
async fn one_event<S: Sql>(tx: &mut S, item: &InboundItem) -> Result<Applied, StoreError> {
    let record = &item.record;
    let mut one = Vec::with_capacity(7);
    record_args(record, &mut one);
    // First, so a concurrent delivery of the same event waits here for this
    // one's commit (PostgreSQL) and then skips.
    let recorded = tx.execute(&INSERT_ONE_INBOUND, one).await?;
    if recorded != 1 {
        return Ok(Applied::Repeat);
    }
    let order_id = record.order_id.as_str();
    let now = record.received_at;
    for step in &item.steps {
        let done = match step {
            OrderStep::Points(w) => matches!(
                super::points::ledger_write(tx, w).await?,
                super::Written::Done(_)
            ),
            &OrderStep::Confirm(coupon) => {
                super::holds::end_hold(tx, coupon, order_id, HoldState::Confirmed, now).await?
            }
            &OrderStep::Release(coupon) => {
                super::holds::end_hold(tx, coupon, order_id, HoldState::Released, now).await?
            }
            &OrderStep::Sale { order, to } => super::sales::end_order_in(tx, order, to, now)
                .await?
                .is_some(),
            &OrderStep::CancelUse(coupon) => {
                tx.execute(
                    super::coupons::CANCEL_USE,
                    args![coupon.to_string(), order_id],
                )
                .await?
                    == 1
            }
        };
        if !done {
            return Ok(Applied::Raced);
        }
    }
    super::outbox::insert_reports(tx, &item.reports).await?;
    Ok(Applied::Done)
}

static INSERT_ONE_INBOUND: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| values(INSERT_INBOUND, 1, 7, " ON CONFLICT DO NOTHING"));

/// The fast way: every event of the batch in a few multi-row statements,
/// each checked to change exactly one row per step. `false` (the caller
/// undoes what was written) if any event is a repeat or any step finds its
/// row changed. `at` is the batch's steps by kind; not for a batch with a
/// step that writes points or moves an order (`AtOnce::careful`): it writes
/// nothing of those.
async fn at_once<S: Sql>(
    tx: &mut S,
    items: &[InboundItem],
    at: &AtOnce<'_>,
) -> Result<bool, StoreError> {
    let mut records = Vec::with_capacity(items.len() * 7);
    for item in items {
        record_args(&item.record, &mut records);
    }
    let sql = values(INSERT_INBOUND, items.len(), 7, " ON CONFLICT DO NOTHING");
    if tx.execute_once(&sql, records).await? != items.len() as u64 {
        return Ok(false);
    }
    // The strictest time of the batch judges every confirm.
    let now = items
        .iter()
        .map(|i| i.record.received_at.0)
        .max()
        .unwrap_or_default();
    // `now` is our own integer: written into the text, not bound.
    let statements: [(String, &[(&str, String)]); 5] = [
        (
            format!(
                "UPDATE coupon_holds SET state = 'confirmed', resolved_at = {now} \
                 WHERE state = 'held' AND expires_at > {now} AND (coupon_id, order_id) IN ("
            ),
            &at.confirms,
        ),
        (
            format!(
                "UPDATE coupons SET status = 'used', used_at = {now}, reserved_until = NULL \
                 WHERE status = 'reserved' AND (id, order_id) IN ("
            ),
            &at.confirms,
        ),
        (
            format!(
                "UPDATE coupon_holds SET state = 'released', resolved_at = {now} \
                 WHERE state = 'held' AND (coupon_id, order_id) IN ("
            ),
            &at.releases,
        ),
        (
            "UPDATE coupons SET status = 'available', order_id = NULL, order_amount = NULL, \
             discount_amount = NULL, reserved_until = NULL \
             WHERE status = 'reserved' AND (id, order_id) IN ("
                .to_owned(),
            &at.releases,
        ),
        (
            "UPDATE coupons SET status = 'available', used_at = NULL, order_id = NULL, \
             order_amount = NULL, discount_amount = NULL \
             WHERE status = 'used' AND (id, order_id) IN ("
                .to_owned(),
            &at.cancels,
        ),
    ];
    for (mut sql, steps) in statements {
        if steps.is_empty() {
            continue;
        }
        // Each row must be the step's own: its coupon, held for (or spent
        // by) that very order.
        let mut pairs = Vec::with_capacity(steps.len() * 2);
        for (i, (order, coupon)) in steps.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
            pairs.extend(args![coupon.as_str(), *order]);
        }
        sql.push(')');
        if tx.execute_once(&sql, pairs).await? != steps.len() as u64 {
            return Ok(false);
        }
    }
    let mut reports = super::Reports::default();
    for item in items {
        reports
            .deliveries
            .extend(item.reports.deliveries.iter().cloned());
        reports.outbox.extend(item.reports.outbox.iter().cloned());
    }
    super::outbox::insert_reports(tx, &reports).await?;
    Ok(true)
}

/// [`PaymentStore`] for a store with a `pool` of database `$db`; the store
/// writes a batch itself (`apply_payments`: SQLite on a writer thread),
/// through [`apply_inbound_in`].
macro_rules! payment_queries {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::PaymentStore for $store {
            async fn inbound_event(
                &self,
                event_id: &str,
            ) -> Result<Option<$crate::store::InboundRecord>, StoreError> {
                let row = sqlx::query(
                    "SELECT event_id, event_type, order_id, occurred_at, received_at, source, outcome \
                     FROM inbound_events WHERE event_id = $1",
                )
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map($crate::store::payments::inbound).transpose()?)
            }

            async fn holds_of_orders(
                &self,
                orders: &[&str],
            ) -> Result<Vec<$crate::store::HoldRecord>, StoreError> {
                if orders.is_empty() {
                    return Ok(Vec::new());
                }
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM coupon_holds WHERE order_id IN (",
                    $crate::store::holds::HOLD_COLUMNS
                ));
                let mut list = q.separated(", ");
                for order in orders {
                    list.push_bind(order.to_string());
                }
                q.push(") ORDER BY reserved_at, id");
                let rows = q.build().fetch_all(&self.pool).await?;
                Ok(rows
                    .iter()
                    .map($crate::store::holds::hold)
                    .collect::<Result<_, _>>()?)
            }

            async fn order_spends(&self, order_id: &str) -> Result<Vec<CouponId>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id FROM coupons WHERE order_id = $1 AND status = 'used' ORDER BY id",
                )
                .bind(order_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        $crate::store::columns::parse_id(&$crate::store::columns::Columns::text(
                            r, "id",
                        )?)
                    })
                    .collect::<Result<_, _>>()?)
            }

            async fn apply_inbound(
                &self,
                items: &[$crate::store::InboundItem],
            ) -> Result<Vec<$crate::store::Applied>, StoreError> {
                self.apply_payments(items).await
            }
        }
    };
}
pub(super) use payment_queries;
