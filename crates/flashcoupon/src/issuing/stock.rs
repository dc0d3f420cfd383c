//! Coupon campaigns as a kind of stock: what the admission core needs to
//! know of them (their terms, their rows, their rebuild from the record and
//! their stale-claim check), and nothing more.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::admission::{
    DropId, Fenced, GateError, Held, Kind, Row, RowWriter, Stockpile, Terms, UnitId, WriteError,
};
use crate::domain::campaign::Campaign;
use crate::domain::ids::{CampaignId, CouponId};
use crate::store::{CouponWriter, IssuedRow, NewCouponRow, Store, StoreError};

/// Coupon campaigns. The tag keeps the Redis keys `{c:<campaign id>}` they
/// always had.
pub const COUPONS: Kind = Kind {
    tag: "c",
    drop_name: "campaign",
    returns: false,
};

/// A campaign's drop in the admission core.
pub fn drop_of(campaign: CampaignId) -> DropId {
    DropId {
        kind: COUPONS,
        id: campaign.0,
    }
}

/// What the gate decides a campaign's claims against.
pub fn terms_of(c: &Campaign) -> Terms {
    Terms {
        total: c.total_quantity,
        per_user_limit: c.per_user_limit,
        starts_at: c.issue_starts_at,
        ends_at: c.issue_ends_at,
        paused: c.paused,
    }
}

impl Row for NewCouponRow {
    fn unit(&self) -> UnitId {
        UnitId(self.id.0)
    }
}

fn held(r: IssuedRow) -> Held {
    Held {
        id: UnitId(r.id.0),
        user: r.user,
        seq: r.seq,
        user_seq: r.user_seq,
        key: r.key,
        returned: false,
    }
}

/// The coupons table, as the admission core sees it.
#[derive(Debug, Clone)]
pub struct CouponStock(pub Arc<dyn Store>);

#[async_trait]
impl Stockpile for CouponStock {
    fn kind(&self) -> Kind {
        COUPONS
    }

    async fn load_all(&self) -> anyhow::Result<Vec<(Uuid, Terms, Vec<Held>)>> {
        let mut issued = self.0.issued_by_campaign().await?;
        Ok(self
            .0
            .all_campaigns()
            .await?
            .into_iter()
            .map(|c| {
                let rows = issued.remove(&c.id).unwrap_or_default();
                (c.id.0, terms_of(&c), rows.into_iter().map(held).collect())
            })
            .collect())
    }

    async fn drops(&self) -> anyhow::Result<Vec<Uuid>> {
        Ok(self
            .0
            .all_campaigns()
            .await?
            .into_iter()
            .map(|c| c.id.0)
            .collect())
    }

    async fn fence_and_load(&self, drop: Uuid) -> Result<Fenced, GateError> {
        let fenced = self
            .0
            .fence_and_load(CampaignId(drop))
            .await
            .map_err(|e| match e {
                StoreError::Db(sqlx::Error::RowNotFound) => GateError::NoSuchDrop,
                other => GateError::Unavailable(format!("the record is unreachable: {other}")),
            })?;
        Ok(Fenced {
            terms: terms_of(&fenced.campaign),
            epoch: fenced.epoch,
            held: fenced.issued.into_iter().map(held).collect(),
        })
    }

    async fn resolve_stale(
        &self,
        drop: Uuid,
        claims: &[(u32, UnitId)],
    ) -> anyhow::Result<HashMap<u32, Held>> {
        let claims: Vec<(u32, CouponId)> = claims
            .iter()
            .map(|&(seq, unit)| (seq, CouponId(unit.0)))
            .collect();
        let landed = self.0.resolve_stale(CampaignId(drop), &claims).await?;
        Ok(landed
            .into_iter()
            .map(|(seq, row)| (seq, held(row)))
            .collect())
    }
}

/// A coupon writer of the record, as a group-commit writer.
pub struct CouponRows(pub Box<dyn CouponWriter>);

impl std::fmt::Debug for CouponRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CouponRows")
    }
}

fn write_error(e: StoreError) -> WriteError {
    WriteError {
        refused: e.is_constraint(),
        // The unique code a coupon carries (index `coupons_code`; SQLite
        // names the column): another coupon has it already.
        taken: matches!(&e, StoreError::Unique(m) if m.contains("coupons_code") || m.contains("coupons.code")),
        message: e.to_string(),
    }
}

fn units(ids: HashSet<CouponId>) -> HashSet<UnitId> {
    ids.into_iter().map(|id| UnitId(id.0)).collect()
}

#[async_trait]
impl RowWriter<NewCouponRow> for CouponRows {
    async fn insert(&mut self, rows: &[&NewCouponRow]) -> Result<HashSet<UnitId>, WriteError> {
        self.0.insert(rows).await.map(units).map_err(write_error)
    }

    async fn existing(&mut self, rows: &[&NewCouponRow]) -> Result<HashSet<UnitId>, WriteError> {
        self.0.existing(rows).await.map(units).map_err(write_error)
    }
}
