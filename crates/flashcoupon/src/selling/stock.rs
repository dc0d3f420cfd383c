//! Time sales as a kind of stock of the admission core: a sale is a drop
//! (kind `s`), an order is one unit. Unlike a coupon, a unit comes back: an
//! order that is never paid gives its seq and its buyer's slot back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::admission::{
    DropId, Fenced, GateError, Held, Kind, Row, RowWriter, Stockpile, Terms, UnitId, WriteError,
};
use crate::domain::ids::{OrderId, SaleId};
use crate::domain::sale::{Order, Sale};
use crate::store::{NewOrderRow, Store, StoreError};

/// Time sales: Redis keys `{s:<sale id>}`.
pub const SALES: Kind = Kind {
    tag: "s",
    drop_name: "sale",
    returns: true,
};

/// A sale's drop in the admission core.
pub fn drop_of(sale: SaleId) -> DropId {
    DropId {
        kind: SALES,
        id: sale.0,
    }
}

/// What the gate decides a sale's orders against.
pub fn terms_of(s: &Sale) -> Terms {
    Terms {
        total: s.total_quantity,
        per_user_limit: s.per_user_limit,
        starts_at: s.starts_at,
        ends_at: s.ends_at,
        paused: s.paused,
    }
}

impl Row for NewOrderRow {
    fn unit(&self) -> UnitId {
        UnitId(self.order.id.0)
    }
}

/// An order as the gate knows it: an expired or cancelled one gave its unit
/// back (only its key is kept).
pub fn held(o: &Order) -> Held {
    Held {
        id: UnitId(o.id.0),
        user: o.user_id,
        seq: o.seq,
        user_seq: o.user_seq,
        key: o.idempotency_key.clone(),
        returned: !o.status.holds_unit(),
    }
}

/// The sales and orders tables, as the admission core sees them.
#[derive(Debug, Clone)]
pub struct SaleStock(pub Arc<dyn Store>);

#[async_trait]
impl Stockpile for SaleStock {
    fn kind(&self) -> Kind {
        SALES
    }

    async fn load_all(&self) -> anyhow::Result<Vec<(Uuid, Terms, Vec<Held>)>> {
        let mut orders = self.0.gate_orders().await?;
        Ok(self
            .0
            .all_sales()
            .await?
            .into_iter()
            .map(|s| {
                let rows = orders.remove(&s.id).unwrap_or_default();
                (s.id.0, terms_of(&s), rows.iter().map(held).collect())
            })
            .collect())
    }

    async fn drops(&self) -> anyhow::Result<Vec<Uuid>> {
        Ok(self
            .0
            .all_sales()
            .await?
            .into_iter()
            .map(|s| s.id.0)
            .collect())
    }

    async fn fence_and_load(&self, drop: Uuid) -> Result<Fenced, GateError> {
        let fenced = self
            .0
            .fence_and_load_sale(SaleId(drop))
            .await
            .map_err(|e| match e {
                StoreError::Db(sqlx::Error::RowNotFound) => GateError::NoSuchDrop,
                other => GateError::Unavailable(format!("the record is unreachable: {other}")),
            })?;
        Ok(Fenced {
            terms: terms_of(&fenced.sale),
            epoch: fenced.epoch,
            held: fenced.orders.iter().map(held).collect(),
        })
    }

    async fn resolve_stale(
        &self,
        drop: Uuid,
        claims: &[(u32, UnitId)],
    ) -> anyhow::Result<HashMap<u32, Held>> {
        let claims: Vec<(u32, OrderId)> = claims
            .iter()
            .map(|&(seq, unit)| (seq, OrderId(unit.0)))
            .collect();
        let landed = self.0.resolve_stale_orders(SaleId(drop), &claims).await?;
        // An order that landed is settled as committed even if it has ended
        // since: its unit then comes back through the return round.
        Ok(landed
            .into_iter()
            .map(|(seq, o)| {
                (
                    seq,
                    Held {
                        returned: false,
                        ..held(&o)
                    },
                )
            })
            .collect())
    }
}

/// The record as a group-commit writer of orders.
#[derive(Debug)]
pub struct OrderRows(pub Arc<dyn Store>);

fn write_error(e: StoreError) -> WriteError {
    WriteError {
        refused: e.is_constraint(),
        taken: false,
        message: e.to_string(),
    }
}

fn units(ids: HashSet<OrderId>) -> HashSet<UnitId> {
    ids.into_iter().map(|id| UnitId(id.0)).collect()
}

#[async_trait]
impl RowWriter<NewOrderRow> for OrderRows {
    async fn insert(&mut self, rows: &[&NewOrderRow]) -> Result<HashSet<UnitId>, WriteError> {
        self.0
            .insert_orders(rows)
            .await
            .map(units)
            .map_err(write_error)
    }

    async fn existing(&mut self, rows: &[&NewOrderRow]) -> Result<HashSet<UnitId>, WriteError> {
        self.0
            .existing_orders(rows)
            .await
            .map(units)
            .map_err(write_error)
    }
}
