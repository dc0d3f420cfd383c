//! Time sales and their orders: the sale's terms, the order rows the group
//! commit writes (fenced on the sale's gate generation, like coupons), and
//! the conditional moves that take an order out of `pending_payment` once.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use super::StoreError;
use super::columns::{Columns, parse_id};
use super::sql::{Sql, args};
use crate::domain::ids::{OrderId, SaleId, UserId};
use crate::domain::sale::{Order, OrderStatus, Product, Sale};
use crate::domain::timestamp::Timestamp;

/// An admitted order, as the group commit writes it: with the coupon it
/// reserves and the points it holds, all in one step or none of it.
#[derive(Debug, Clone)]
pub struct NewOrderRow {
    pub order: Order,
    /// The sale's gate generation that admitted it (scale-out fencing).
    pub gate_epoch: u64,
    /// The coupon reserved for the order.
    pub hold: Option<super::HoldRecord>,
    /// The points held for the order.
    pub points: Option<super::LedgerWrite>,
    /// Also write its `order.created` to the outbox, in its transaction.
    pub outbound: bool,
    /// Why the record would not take the coupon or the points (they changed
    /// since they were checked): the order is not written and its unit goes
    /// back; its request reads why here.
    pub refusal: std::sync::Arc<std::sync::OnceLock<Refusal>>,
    /// The request that placed it, for its outbound `order.created`.
    pub trace: Option<std::sync::Arc<crate::trace::Trace>>,
}

impl NewOrderRow {
    pub fn new(order: Order, gate_epoch: u64) -> Self {
        Self {
            order,
            gate_epoch,
            hold: None,
            points: None,
            outbound: false,
            refusal: Default::default(),
            trace: crate::trace::current(),
        }
    }

    pub(super) fn has_extras(&self) -> bool {
        self.hold.is_some() || self.points.is_some()
    }
}

/// Why an order's coupon or points could not be held in its step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The coupon was reserved, used or otherwise taken meanwhile.
    CouponTaken,
    /// The points ledger refused the hold (e.g. `Insufficient`).
    Points(super::Written),
}

/// What a sale's gate is rebuilt from: the sale, its new generation, the
/// orders holding a unit, and the keyed orders that gave theirs back.
#[derive(Debug, Clone)]
pub struct FencedSale {
    pub sale: Sale,
    pub epoch: u64,
    pub orders: Vec<Order>,
}

/// A sale's orders, summed up from the record (API.md "Statistics").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaleSummary {
    /// How many orders are in each state.
    pub orders: HashMap<OrderStatus, u64>,
    /// Paid (and later refunded) orders: units that left the stock for good.
    pub units_sold: u64,
    /// What paid orders pay (refunded ones excluded).
    pub revenue: i64,
    /// Coupon discounts and points on paid orders.
    pub discount_total: i64,
    pub points_total: i64,
    /// When the last unit was first taken (the first order with the top seq).
    pub sold_out_at: Option<Timestamp>,
}

#[async_trait]
pub trait SaleStore {
    async fn insert_sale(&self, sale: &Sale) -> Result<(), StoreError>;
    async fn get_sale(&self, id: SaleId) -> Result<Option<Sale>, StoreError>;
    /// Newest first.
    async fn all_sales(&self) -> Result<Vec<Sale>, StoreError>;
    /// Apply the fields that are `Some`, in one transaction; a stock cut
    /// below a unit an order holds is refused by the record.
    async fn update_sale(
        &self,
        id: SaleId,
        paused: Option<bool>,
        ends_at: Option<Timestamp>,
        total_quantity: Option<u32>,
    ) -> Result<(), StoreError>;
    /// Every order that holds a unit or carries an Idempotency-Key, by sale
    /// (the embedded gate's start-up).
    async fn gate_orders(&self) -> Result<HashMap<SaleId, Vec<Order>>, StoreError>;
    /// Start a new gate generation for the sale and read its gate orders,
    /// as one step (see `Stockpile::fence_and_load`).
    async fn fence_and_load_sale(&self, sale: SaleId) -> Result<FencedSale, StoreError>;
    /// Which of these claims (seq, order id) landed; the others are written
    /// off so no commit lands them later (see `Stockpile::resolve_stale`).
    async fn resolve_stale_orders(
        &self,
        sale: SaleId,
        claims: &[(u32, OrderId)],
    ) -> Result<HashMap<u32, Order>, StoreError>;
    /// Write a group-commit batch of orders in one transaction, leaving out
    /// those of a fenced generation or written off; the ones that landed.
    async fn insert_orders(&self, rows: &[&NewOrderRow]) -> Result<HashSet<OrderId>, StoreError>;
    /// Which of these orders exist, once transactions writing them ended.
    async fn existing_orders(&self, rows: &[&NewOrderRow]) -> Result<HashSet<OrderId>, StoreError>;
    async fn get_order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;
    /// The order a user placed on a sale with this Idempotency-Key.
    async fn order_by_key(
        &self,
        user: UserId,
        sale: SaleId,
        key: &str,
    ) -> Result<Option<Order>, StoreError>;
    /// A user's orders, newest first; `before` is the last id of the previous page.
    async fn user_orders(
        &self,
        user: UserId,
        limit: u32,
        before: Option<OrderId>,
    ) -> Result<Vec<Order>, StoreError>;
    async fn sale_summary(&self, sale: SaleId) -> Result<SaleSummary, StoreError>;
    /// Expire up to `limit` pending orders due by `now`, each once whatever
    /// other instances do; the ones this call expired.
    /// With `outbound`, each expiry's `order.expired` goes to the outbox in
    /// the same transaction.
    async fn expire_orders(
        &self,
        now: Timestamp,
        limit: u32,
        outbound: bool,
    ) -> Result<Vec<Order>, StoreError>;
    /// Expired or cancelled orders whose unit is not back in the gate yet.
    async fn unreturned_orders(&self, limit: u32) -> Result<Vec<Order>, StoreError>;
    /// These orders' units are back in the gate.
    async fn mark_returned(&self, ids: &[OrderId]) -> Result<(), StoreError>;
}

pub(super) const SALE_COLUMNS: &str = "id, name, sku, product_name, list_price, sale_price, total_quantity, \
     per_user_limit, starts_at, ends_at, payment_ttl_secs, paused, created_at";

pub(super) const ORDER_COLUMNS: &str = "id, sale_id, user_id, seq, user_seq, idempotency_key, unit_price, \
     coupon_id, coupon_discount, points_used, payable_amount, status, created_at, expires_at, ended_at, \
     refunded_at";

/// Orders a gate is built from: those holding a unit, and keyed ones that
/// gave it back (their key still replays them).
pub(super) const GATE_ORDERS: &str = "(status IN ('pending_payment', 'paid', 'refunded') \
     OR idempotency_key IS NOT NULL)";

/// The outbound event of an order that just moved to its status (a pending
/// one was just created), stamped `at`, caused by the request `trace`: the
/// same row whoever writes it (the group commit, a payment, the expiry).
pub fn order_outbox(
    o: &Order,
    at: Timestamp,
    trace: Option<std::sync::Arc<crate::trace::Trace>>,
) -> super::OutboxRow {
    let payload = crate::events::Payload::of_order(o);
    let kind = payload.kind();
    // The creation's id is the order's: a consumer deduplicates on it.
    let id = if o.status == OrderStatus::PendingPayment {
        o.id.0
    } else {
        uuid::Uuid::now_v7()
    };
    super::OutboxRow {
        id,
        event_type: kind.as_str().to_owned(),
        body: crate::events::outbound_json(id, kind, at, payload.data(), Some(o.user_id), None),
        created_at: at,
        trace,
    }
}

pub(super) fn sale(row: &impl Columns) -> Result<Sale, sqlx::Error> {
    Ok(Sale {
        id: parse_id(&row.text("id")?)?,
        name: row.text("name")?,
        product: Product {
            sku: row.text("sku")?,
            name: row.text("product_name")?,
            list_price: row.int("list_price")?,
        },
        sale_price: row.int("sale_price")?,
        total_quantity: row.int("total_quantity")? as u32,
        per_user_limit: row.int("per_user_limit")? as u32,
        starts_at: Timestamp(row.int("starts_at")?),
        ends_at: Timestamp(row.int("ends_at")?),
        payment_ttl_secs: row.int("payment_ttl_secs")? as u32,
        paused: row.flag("paused")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}

pub(super) fn order(row: &impl Columns) -> Result<Order, sqlx::Error> {
    Ok(Order {
        id: parse_id(&row.text("id")?)?,
        sale_id: parse_id(&row.text("sale_id")?)?,
        user_id: parse_id(&row.text("user_id")?)?,
        seq: row.int("seq")? as u32,
        user_seq: row.int("user_seq")? as u32,
        idempotency_key: row.opt_text("idempotency_key")?,
        unit_price: row.int("unit_price")?,
        coupon_id: row
            .opt_text("coupon_id")?
            .map(|c| parse_id(&c))
            .transpose()?,
        coupon_discount: row.int("coupon_discount")?,
        points_used: row.int("points_used")?,
        payable_amount: row.int("payable_amount")?,
        status: OrderStatus::parse(&row.text("status")?)
            .ok_or_else(|| sqlx::Error::Decode("unknown order status in the record".into()))?,
        created_at: Timestamp(row.int("created_at")?),
        expires_at: Timestamp(row.int("expires_at")?),
        ended_at: row.opt_int("ended_at")?.map(Timestamp),
        refunded_at: row.opt_int("refunded_at")?.map(Timestamp),
    })
}

/// Inside the caller's transaction: insert the order `o` unless the
/// reconciler wrote it off; `true` if it landed.
async fn insert_order<S: Sql>(tx: &mut S, o: &Order) -> Result<bool, StoreError> {
    let landed = tx
        .execute(
            "INSERT INTO orders (id, sale_id, user_id, seq, user_seq, idempotency_key, unit_price, \
             coupon_id, coupon_discount, points_used, payable_amount, created_at, expires_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 \
             WHERE NOT EXISTS (SELECT 1 FROM abandoned_orders WHERE order_id = $1)",
            args![
                o.id.to_string(),
                o.sale_id.to_string(),
                o.user_id.to_string(),
                i64::from(o.seq),
                i64::from(o.user_seq),
                o.idempotency_key.as_deref(),
                o.unit_price,
                o.coupon_id.map(|c| c.to_string()),
                o.coupon_discount,
                o.points_used,
                o.payable_amount,
                o.created_at.0,
                o.expires_at.0,
            ],
        )
        .await?;
    Ok(landed == 1)
}

/// How [`insert_orders_in`] writes the orders with extras (a refusal is
/// rare: the request checked the coupon and the points just before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Extras {
    /// All under one savepoint; on a refusal, rolled back to it and written
    /// again one by one, in the same transaction (PostgreSQL: the batch's
    /// `FOR SHARE` locks are held throughout).
    Savepoint,
    /// With no savepoint (on SQLite a savepoint copies each page it touches
    /// once more: 8–19% of these orders' rate, docs/benchmarks.md); a
    /// refusal answers `None`, and the caller rolls the whole transaction
    /// back and writes the batch again [`Extras::OneByOne`]. The SQLite
    /// writer does, under the same write turn, so nothing comes between.
    AtOnce,
    /// Each in a savepoint of its own, so a refused one leaves no trace.
    OneByOne,
}

/// One group-commit batch of orders, inside the caller's transaction: each
/// order whose sale is still at its gate generation; those with a coupon or
/// points all or nothing each (a refused one leaves no trace and names why
/// in its `refusal`; with [`Extras::AtOnce`], once the caller has rolled
/// back and written the batch again one by one).
/// `share` is the dialect's shared row lock on the sales (` FOR SHARE` on
/// PostgreSQL; SQLite's write turn serialises writers already). The orders
/// that landed.
pub(super) async fn insert_orders_in<S: Sql>(
    tx: &mut S,
    rows: &[&NewOrderRow],
    share: &str,
    extras_as: Extras,
) -> Result<Option<HashSet<OrderId>>, StoreError> {
    let mut sales: Vec<SaleId> = rows.iter().map(|r| r.order.sale_id).collect();
    // Sorted, so two writers lock sales in the same order.
    sales.sort_unstable();
    sales.dedup();
    let mut epochs = HashMap::new();
    for s in sales {
        let row = tx
            .fetch_optional(
                &format!("SELECT gate_epoch FROM sales WHERE id = $1{share}"),
                args![s.to_string()],
            )
            .await?;
        if let Some(row) = row {
            epochs.insert(s, row.int("gate_epoch")? as u64);
        }
    }
    let mut landed = HashSet::new();
    // Only orders of the generation the sale is at; those with extras
    // sorted by buyer, so two writers lock points accounts in the same order.
    let (mut extras, plain): (Vec<&NewOrderRow>, Vec<&NewOrderRow>) = rows
        .iter()
        .copied()
        .filter(|r| epochs.get(&r.order.sale_id) == Some(&r.gate_epoch))
        .partition(|r| r.has_extras());
    extras.sort_by_key(|r| r.order.user_id);
    for r in plain {
        // Nothing of a plain order can be refused: it lands or was written
        // off.
        if order_step(tx, r).await? == Ok(true) {
            landed.insert(r.order.id);
        }
    }
    if extras.is_empty() {
        return Ok(Some(landed));
    }
    if extras_as == Extras::OneByOne {
        landed.extend(one_by_one(tx, &extras).await?);
        return Ok(Some(landed));
    }
    let savepoint = extras_as == Extras::Savepoint;
    if savepoint {
        tx.execute("SAVEPOINT order_batch", args![]).await?;
    }
    let mut all = HashSet::new();
    for r in &extras {
        match order_step(tx, r).await? {
            Ok(true) => {
                all.insert(r.order.id);
            }
            // Written off by the reconciler: nothing written.
            Ok(false) => {}
            // Part of it is written: the caller rolls everything back.
            Err(_) if !savepoint => return Ok(None),
            Err(_) => {
                tx.execute("ROLLBACK TO SAVEPOINT order_batch", args![])
                    .await?;
                tx.execute("RELEASE SAVEPOINT order_batch", args![]).await?;
                landed.extend(one_by_one(tx, &extras).await?);
                return Ok(Some(landed));
            }
        }
    }
    if savepoint {
        tx.execute("RELEASE SAVEPOINT order_batch", args![]).await?;
    }
    landed.extend(all);
    Ok(Some(landed))
}

/// [`insert_orders_in`] in a mode that always answers: `None` there would
/// mean a refusal with nothing rolled back, so it is an error (the caller's
/// transaction is not committed).
pub(super) fn answered(landed: Option<HashSet<OrderId>>) -> Result<HashSet<OrderId>, StoreError> {
    landed.ok_or_else(|| {
        StoreError::Constraint("an order batch was refused without a savepoint".into())
    })
}

/// Orders with extras each in a savepoint of its own, so one refused
/// leaves no trace and names why in its `refusal`: those that landed.
async fn one_by_one<S: Sql>(
    tx: &mut S,
    extras: &[&NewOrderRow],
) -> Result<HashSet<OrderId>, StoreError> {
    let mut landed = HashSet::new();
    for r in extras {
        tx.execute("SAVEPOINT order_step", args![]).await?;
        let stepped = order_step(tx, r).await?;
        if stepped == Ok(true) {
            landed.insert(r.order.id);
        } else {
            tx.execute("ROLLBACK TO SAVEPOINT order_step", args![])
                .await?;
        }
        tx.execute("RELEASE SAVEPOINT order_step", args![]).await?;
        if let Err(refusal) = stepped {
            let _ = r.refusal.set(refusal);
        }
    }
    Ok(landed)
}

/// An order with its coupon and points: `Ok(false)` if the order was
/// written off by the reconciler (nothing written); `Err` with why if the
/// coupon or the points were refused, after part of it was written (the
/// caller rolls its savepoint back).
async fn order_step<S: Sql>(
    tx: &mut S,
    r: &NewOrderRow,
) -> Result<Result<bool, Refusal>, StoreError> {
    if !insert_order(tx, &r.order).await? {
        return Ok(Ok(false));
    }
    if let Some(h) = &r.hold
        && !super::holds::reserve_in(tx, h).await?
    {
        return Ok(Err(Refusal::CouponTaken));
    }
    if let Some(w) = &r.points {
        let written = super::points::ledger_write(tx, w).await?;
        if !matches!(written, super::Written::Done(_)) {
            return Ok(Err(Refusal::Points(written)));
        }
    }
    if r.outbound {
        let row = order_outbox(&r.order, r.order.created_at, r.trace.clone());
        super::outbox::insert_outbox(tx, std::slice::from_ref(&row)).await?;
    }
    Ok(Ok(true))
}

/// Inside the caller's transaction: move the order `id` to `to` at `now`,
/// once: paid or cancelled only while pending (paid
/// only before it runs out), refunded only once paid. The order as it now
/// reads, or `None` if it was not in the state to move from (nothing
/// written). A first paid order of its buyer also writes the
/// `first_order_paid` trigger event, in the same transaction.
pub(super) async fn end_order_in<S: Sql>(
    tx: &mut S,
    id: OrderId,
    to: OrderStatus,
    now: Timestamp,
) -> Result<Option<Order>, StoreError> {
    let (from, cutoff) = match to {
        OrderStatus::Paid => ("pending_payment", now.0),
        OrderStatus::Refunded => ("paid", i64::MIN),
        _ => ("pending_payment", i64::MIN),
    };
    let row = tx
        .fetch_optional(
            &END_ORDER,
            args![to.as_str(), now.0, id.to_string(), from, cutoff],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let ended = order(&row)?;
    if to == OrderStatus::Paid {
        // Once per user: later paid orders find the event there.
        let (request_id, traceparent) =
            super::triggers::trace_binds(crate::trace::current().as_deref());
        tx.execute(
            super::triggers::INSERT_TRIGGER_EVENT,
            args![
                format!("first_order_paid:{}", ended.user_id),
                "first_order_paid",
                ended.user_id.to_string(),
                "order",
                now.0,
                request_id,
                traceparent,
            ],
        )
        .await?;
    }
    Ok(Some(ended))
}

/// [`end_order_in`]'s statement: the order moves on from `$4` if it may.
static END_ORDER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE orders SET status = $1, \
         ended_at = CASE WHEN $1 = 'refunded' THEN ended_at ELSE $2 END, \
         refunded_at = CASE WHEN $1 = 'refunded' THEN $2 ELSE NULL END \
         WHERE id = $3 AND status = $4 AND (status <> 'pending_payment' OR expires_at > $5) \
         RETURNING {ORDER_COLUMNS}"
    )
});

/// [`SaleStore`] for a store with a `pool` of database `$db`; the store
/// writes a group commit's orders itself (`write_orders`: SQLite on its
/// writer thread), both through [`insert_orders_in`].
macro_rules! sale_queries {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Lock a sale's row against every writer of its orders (an
            /// UPDATE that changes nothing: PostgreSQL's row lock, which
            /// waits for batches holding it `FOR SHARE`).
            async fn lock_sale(
                tx: &mut sqlx::Transaction<'_, $db>,
                sale: $crate::domain::ids::SaleId,
            ) -> Result<Option<i64>, StoreError> {
                use $crate::store::columns::Columns as _;
                let row = sqlx::query(
                    "UPDATE sales SET gate_epoch = gate_epoch WHERE id = $1 RETURNING gate_epoch",
                )
                .bind(sale.to_string())
                .fetch_optional(&mut **tx)
                .await?;
                Ok(row.map(|r| r.int("gate_epoch")).transpose()?)
            }

            async fn orders_where(
                &self,
                filter: &str,
                bind: &[String],
            ) -> Result<Vec<$crate::domain::sale::Order>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM orders WHERE {filter}",
                    $crate::store::sales::ORDER_COLUMNS
                );
                let mut q = sqlx::query(&sql);
                for b in bind {
                    q = q.bind(b);
                }
                let rows = q.fetch_all(&self.pool).await?;
                Ok(rows
                    .iter()
                    .map($crate::store::sales::order)
                    .collect::<Result<_, _>>()?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::SaleStore for $store {
            async fn insert_sale(&self, s: &$crate::domain::sale::Sale) -> Result<(), StoreError> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "INSERT INTO sales (id, name, sku, product_name, list_price, sale_price, total_quantity, \
                     per_user_limit, starts_at, ends_at, payment_ttl_secs, paused, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(s.id.to_string())
                .bind(&s.name)
                .bind(&s.product.sku)
                .bind(&s.product.name)
                .bind(s.product.list_price)
                .bind(s.sale_price)
                .bind(i64::from(s.total_quantity))
                .bind(i64::from(s.per_user_limit))
                .bind(s.starts_at.0)
                .bind(s.ends_at.0)
                .bind(i64::from(s.payment_ttl_secs))
                .bind(s.paused)
                .bind(s.created_at.0)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_sale(
                &self,
                id: $crate::domain::ids::SaleId,
            ) -> Result<Option<$crate::domain::sale::Sale>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {} FROM sales WHERE id = $1",
                    $crate::store::sales::SALE_COLUMNS
                ))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.as_ref().map($crate::store::sales::sale).transpose()?)
            }

            async fn all_sales(&self) -> Result<Vec<$crate::domain::sale::Sale>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM sales ORDER BY id DESC",
                    $crate::store::sales::SALE_COLUMNS
                ))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .iter()
                    .map($crate::store::sales::sale)
                    .collect::<Result<_, _>>()?)
            }

            async fn update_sale(
                &self,
                id: $crate::domain::ids::SaleId,
                paused: Option<bool>,
                ends_at: Option<Timestamp>,
                total_quantity: Option<u32>,
            ) -> Result<(), StoreError> {
                let _turn = self.write_turn().await;
                sqlx::query(
                    "UPDATE sales SET paused = COALESCE($1, paused), ends_at = COALESCE($2, ends_at), \
                     total_quantity = COALESCE($3, total_quantity) WHERE id = $4",
                )
                .bind(paused)
                .bind(ends_at.map(|t| t.0))
                .bind(total_quantity.map(i64::from))
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn gate_orders(
                &self,
            ) -> Result<
                std::collections::HashMap<
                    $crate::domain::ids::SaleId,
                    Vec<$crate::domain::sale::Order>,
                >,
                StoreError,
            > {
                let mut by_sale: std::collections::HashMap<_, Vec<_>> = Default::default();
                for o in self
                    .orders_where($crate::store::sales::GATE_ORDERS, &[])
                    .await?
                {
                    by_sale.entry(o.sale_id).or_default().push(o);
                }
                Ok(by_sale)
            }

            async fn fence_and_load_sale(
                &self,
                sale: $crate::domain::ids::SaleId,
            ) -> Result<$crate::store::FencedSale, StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                // Bumping the generation takes the row lock: it waits for
                // every batch holding the sale FOR SHARE, and batches that
                // come later carry the old generation and are skipped.
                let row = sqlx::query(&format!(
                    "UPDATE sales SET gate_epoch = gate_epoch + 1 WHERE id = $1 RETURNING gate_epoch, {}",
                    $crate::store::sales::SALE_COLUMNS
                ))
                .bind(sale.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::Db(sqlx::Error::RowNotFound))?;
                use $crate::store::columns::Columns as _;
                let epoch = row.int("gate_epoch")? as u64;
                let sale_row = $crate::store::sales::sale(&row)?;
                let rows = sqlx::query(&format!(
                    "SELECT {} FROM orders WHERE sale_id = $1 AND {}",
                    $crate::store::sales::ORDER_COLUMNS,
                    $crate::store::sales::GATE_ORDERS
                ))
                .bind(sale.to_string())
                .fetch_all(&mut *tx)
                .await?;
                let orders = rows
                    .iter()
                    .map($crate::store::sales::order)
                    .collect::<Result<_, _>>()?;
                tx.commit().await?;
                Ok($crate::store::FencedSale {
                    sale: sale_row,
                    epoch,
                    orders,
                })
            }

            async fn resolve_stale_orders(
                &self,
                sale: $crate::domain::ids::SaleId,
                claims: &[(u32, $crate::domain::ids::OrderId)],
            ) -> Result<std::collections::HashMap<u32, $crate::domain::sale::Order>, StoreError>
            {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                Self::lock_sale(&mut tx, sale).await?;
                let mut landed = std::collections::HashMap::new();
                for (seq, id) in claims {
                    let row = sqlx::query(&format!(
                        "SELECT {} FROM orders WHERE id = $1",
                        $crate::store::sales::ORDER_COLUMNS
                    ))
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                    match row {
                        Some(row) => {
                            landed.insert(*seq, $crate::store::sales::order(&row)?);
                        }
                        None => {
                            sqlx::query(
                                "INSERT INTO abandoned_orders (order_id) VALUES ($1) ON CONFLICT DO NOTHING",
                            )
                            .bind(id.to_string())
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                tx.commit().await?;
                Ok(landed)
            }

            async fn insert_orders(
                &self,
                rows: &[&$crate::store::NewOrderRow],
            ) -> Result<std::collections::HashSet<$crate::domain::ids::OrderId>, StoreError> {
                self.write_orders(rows).await
            }

            async fn existing_orders(
                &self,
                rows: &[&$crate::store::NewOrderRow],
            ) -> Result<std::collections::HashSet<$crate::domain::ids::OrderId>, StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                let mut sales: Vec<$crate::domain::ids::SaleId> =
                    rows.iter().map(|r| r.order.sale_id).collect();
                sales.sort_unstable();
                sales.dedup();
                for s in sales {
                    Self::lock_sale(&mut tx, s).await?;
                }
                let mut found = std::collections::HashSet::new();
                for r in rows {
                    let hit = sqlx::query("SELECT 1 FROM orders WHERE id = $1")
                        .bind(r.order.id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                    if hit.is_some() {
                        found.insert(r.order.id);
                    }
                }
                tx.commit().await?;
                Ok(found)
            }

            async fn get_order(
                &self,
                id: $crate::domain::ids::OrderId,
            ) -> Result<Option<$crate::domain::sale::Order>, StoreError> {
                Ok(self
                    .orders_where("id = $1", &[id.to_string()])
                    .await?
                    .pop())
            }

            async fn order_by_key(
                &self,
                user: $crate::domain::ids::UserId,
                sale: $crate::domain::ids::SaleId,
                key: &str,
            ) -> Result<Option<$crate::domain::sale::Order>, StoreError> {
                Ok(self
                    .orders_where(
                        "user_id = $1 AND sale_id = $2 AND idempotency_key = $3",
                        &[user.to_string(), sale.to_string(), key.to_owned()],
                    )
                    .await?
                    .pop())
            }

            async fn user_orders(
                &self,
                user: $crate::domain::ids::UserId,
                limit: u32,
                before: Option<$crate::domain::ids::OrderId>,
            ) -> Result<Vec<$crate::domain::sale::Order>, StoreError> {
                // Ids are UUIDv7: newest first is descending id order.
                let limit = limit.clamp(1, 100);
                match before {
                    Some(b) => {
                        self.orders_where(
                            &format!("user_id = $1 AND id < $2 ORDER BY id DESC LIMIT {limit}"),
                            &[user.to_string(), b.to_string()],
                        )
                        .await
                    }
                    None => {
                        self.orders_where(
                            &format!("user_id = $1 ORDER BY id DESC LIMIT {limit}"),
                            &[user.to_string()],
                        )
                        .await
                    }
                }
            }

            async fn sale_summary(
                &self,
                sale: $crate::domain::ids::SaleId,
            ) -> Result<$crate::store::SaleSummary, StoreError> {
                use $crate::domain::sale::OrderStatus;
                use $crate::store::columns::Columns as _;
                let rows = sqlx::query(
                    // SUM of a BIGINT is a NUMERIC on PostgreSQL: cast back.
                    "SELECT status, COUNT(*) AS n, CAST(COALESCE(SUM(payable_amount), 0) AS BIGINT) AS paid, \
                     CAST(COALESCE(SUM(coupon_discount), 0) AS BIGINT) AS discount, \
                     CAST(COALESCE(SUM(points_used), 0) AS BIGINT) AS points \
                     FROM orders WHERE sale_id = $1 GROUP BY status",
                )
                .bind(sale.to_string())
                .fetch_all(&self.pool)
                .await?;
                let mut summary = $crate::store::SaleSummary::default();
                for row in &rows {
                    let Some(status) = OrderStatus::parse(&row.text("status")?) else {
                        continue;
                    };
                    let n = row.int("n")? as u64;
                    summary.orders.insert(status, n);
                    if matches!(status, OrderStatus::Paid | OrderStatus::Refunded) {
                        summary.units_sold += n;
                    }
                    if status == OrderStatus::Paid {
                        summary.revenue = row.int("paid")?;
                        summary.discount_total = row.int("discount")?;
                        summary.points_total = row.int("points")?;
                    }
                }
                let first = sqlx::query(
                    "SELECT MIN(o.created_at) AS at FROM orders o JOIN sales s ON s.id = o.sale_id \
                     WHERE o.sale_id = $1 AND o.seq = s.total_quantity",
                )
                .bind(sale.to_string())
                .fetch_one(&self.pool)
                .await?;
                summary.sold_out_at = first.opt_int("at")?.map(Timestamp);
                Ok(summary)
            }

            async fn expire_orders(
                &self,
                now: Timestamp,
                limit: u32,
                outbound: bool,
            ) -> Result<Vec<$crate::domain::sale::Order>, StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                // `status = 'pending_payment'` is checked again on each row
                // as it is updated: an instance that finds a row another just
                // expired (or a payment just ended) leaves it alone.
                let rows = sqlx::query(&format!(
                    "UPDATE orders SET status = 'expired', ended_at = $1 \
                     WHERE id IN (SELECT id FROM orders WHERE status = 'pending_payment' AND expires_at <= $1 \
                     ORDER BY expires_at LIMIT $2) AND status = 'pending_payment' RETURNING {}",
                    $crate::store::sales::ORDER_COLUMNS
                ))
                .bind(now.0)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                let expired: Vec<$crate::domain::sale::Order> = rows
                    .iter()
                    .map($crate::store::sales::order)
                    .collect::<Result<_, _>>()?;
                if outbound && !expired.is_empty() {
                    let events: Vec<_> = expired
                        .iter()
                        .map(|o| $crate::store::sales::order_outbox(o, now, None))
                        .collect();
                    $crate::store::outbox::insert_outbox(&mut *tx, &events).await?;
                }
                tx.commit().await?;
                Ok(expired)
            }

            async fn unreturned_orders(
                &self,
                limit: u32,
            ) -> Result<Vec<$crate::domain::sale::Order>, StoreError> {
                self.orders_where(
                    &format!(
                        "status IN ('expired', 'cancelled') AND NOT unit_returned ORDER BY ended_at LIMIT {}",
                        limit
                    ),
                    &[],
                )
                .await
            }

            async fn mark_returned(
                &self,
                ids: &[$crate::domain::ids::OrderId],
            ) -> Result<(), StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = self.pool.begin().await?;
                for id in ids {
                    sqlx::query("UPDATE orders SET unit_returned = TRUE WHERE id = $1")
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(crate) use sale_queries;
