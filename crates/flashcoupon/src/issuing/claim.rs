//! Claiming a coupon, the hot path: the gate decides (in memory, or in one
//! Redis script in scale-out mode), the group
//! commit makes an admitted claim durable, and only then is it "issued".
//!
//! ```text
//! gate.claim(user, key, now) ── Rejected ──────────────▶ 409 sold_out / limit_reached / …
//!          │ Admitted(ticket: seq, user_seq)
//!          ▼
//! group_commit.submit(row) ── batch committed ─────────▶ 201 coupon
//!                          └─ commit failed (stock back) ▶ 503 unavailable
//! ```

use super::drop_of;
use crate::admission::{Decision, GateError, Rejection, UnitId};
use crate::domain::coupon::{Coupon, StoredStatus};
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::state::Shared;
use crate::store::{NewCouponRow, StoreError};

#[derive(Debug)]
pub enum ClaimOutcome {
    /// Issued now, and durable.
    Issued(Coupon),
    /// This Idempotency-Key issued this coupon before.
    Replayed(Coupon),
    Rejected(Rejection),
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("no such campaign")]
    NoSuchCampaign,
    /// Nothing was issued; the stock went back to the pool (or will, once
    /// the reconciler checked the record).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<GateError> for ClaimError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::NoSuchDrop => ClaimError::NoSuchCampaign,
            GateError::Unavailable(why) => ClaimError::Unavailable(why),
        }
    }
}

pub async fn claim_coupon(
    state: &Shared,
    campaign: CampaignId,
    user: UserId,
    key: Option<&str>,
) -> Result<ClaimOutcome, ClaimError> {
    let terms = state
        .catalog
        .get(&*state.store, campaign)
        .await
        .map_err(|e| ClaimError::Unavailable(format!("the record is unreachable: {e}")))?
        .ok_or(ClaimError::NoSuchCampaign)?;
    let now = state.clock.now();
    let id = CouponId::generate();
    match state
        .gate
        .claim(drop_of(campaign), user, UnitId(id.0), key, now)
        .await?
    {
        Decision::Rejected(reason) => Ok(ClaimOutcome::Rejected(reason)),
        Decision::Replay(unit) => replay(state, CouponId(unit.0)).await,
        Decision::Retry(why) => Err(ClaimError::Unavailable(why.into())),
        Decision::Admitted(ticket) => {
            let (valid_from, valid_until) = terms.terms.validity.for_issue(now);
            let row = NewCouponRow {
                id,
                campaign_id: campaign,
                user_id: user,
                seq: ticket.seq,
                user_seq: ticket.user_seq,
                idempotency_key: ticket.key.clone(),
                issued_at: now,
                valid_from,
                valid_until,
                gate_epoch: ticket.epoch,
            };
            let coupon = Coupon {
                id: row.id,
                campaign_id: campaign,
                user_id: user,
                seq: row.seq,
                stored_status: StoredStatus::Available,
                issued_at: now,
                valid_from,
                valid_until,
                terms: terms.terms.clone(),
                spend: None,
            };
            match state.commit.submit(ticket, row).await {
                Ok(Ok(())) => {
                    state.notifier.coupon_issued(&coupon);
                    Ok(ClaimOutcome::Issued(coupon))
                }
                Ok(Err(failed)) => Err(ClaimError::Unavailable(failed.to_string())),
                Err(_) => Err(ClaimError::Unavailable(
                    "the writer stopped before answering".into(),
                )),
            }
        }
    }
}

async fn replay(state: &Shared, id: CouponId) -> Result<ClaimOutcome, ClaimError> {
    // The gate only learns a key's coupon after it committed, so it is there.
    let coupon =
        state.store.get_coupon(id).await?.ok_or_else(|| {
            ClaimError::Unavailable("the replayed coupon is not readable yet".into())
        })?;
    Ok(ClaimOutcome::Replayed(coupon))
}
